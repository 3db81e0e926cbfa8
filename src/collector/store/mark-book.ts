import path from 'node:path';
import { RESERVED_MARK_PREFIX } from '../../journal/resend-marks.js';
import { readJson, writeJsonAtomic } from './json-file.js';

/** A named point of a volume; `id` is the caller's key for it (e.g. a RestorePoint's UID). */
export interface MarkEntry { seq: bigint; time: bigint; id?: string }

/**
 * marks.json: `{ "<name>": { seq, time, id? }, ..., "rewind:deleted": [{ name, seq }] }`.
 *
 * Marks come from two places: named over the API (they live only here) and mark records
 * in the journal (learned again at every open; this file only caches them). A deleted
 * mark whose record is still in the journal would come back at the next open, so its
 * deletion is kept as a tombstone {name, seq} until consolidation folds that seq into the
 * checkpoint (the record is gone then). The tombstones sit under a key in Rewind's own
 * namespace, which no user mark can take (checkUserMarkName), so one atomic rename
 * writes marks and deletions together.
 */
const DELETED_KEY = `${RESERVED_MARK_PREFIX}deleted`;

type MarksFile = Record<string, { seq: string; time: string; id?: string } | Array<{ name: string; seq: string }>>;

export class MarkBook {
  private readonly byName = new Map<string, MarkEntry>();
  /** name → seqs of journal mark records deleted by the user. */
  private readonly deleted = new Map<string, Set<bigint>>();

  private constructor(private readonly file: string) {}

  static async load(dir: string): Promise<MarkBook> {
    const b = new MarkBook(path.join(dir, 'marks.json'));
    const o = (await readJson<MarksFile>(b.file)) ?? {};
    for (const [n, m] of Object.entries(o)) {
      if (n === DELETED_KEY && Array.isArray(m)) {
        for (const d of m) b.tombstone(d.name, BigInt(d.seq));
      } else if (!Array.isArray(m)) {
        b.byName.set(n, { seq: BigInt(m.seq), time: BigInt(m.time), ...(m.id ? { id: m.id } : {}) });
      }
    }
    return b;
  }

  get size(): number {
    return this.byName.size;
  }

  get(name: string): MarkEntry | undefined {
    return this.byName.get(name);
  }

  /** The mark with this id (ids are unique per volume: addMark returns the existing one). */
  byId(id: string): { name: string; mark: MarkEntry } | undefined {
    for (const [name, mark] of this.byName) if (mark.id === id) return { name, mark };
    return undefined;
  }

  set(name: string, m: MarkEntry): void {
    this.byName.set(name, m);
  }

  /** Forget a mark; a tombstone keeps its journal record (if any) from being learned again. */
  delete(name: string): MarkEntry | undefined {
    const m = this.byName.get(name);
    if (!m) return undefined;
    this.byName.delete(name);
    this.tombstone(name, m.seq);
    return m;
  }

  /** Only removes it from the book (retention, failed saves): no tombstone. */
  forget(name: string): void {
    this.byName.delete(name);
  }

  /** Whether a mark record (name at seq) from the journal was deleted by the user. */
  isDeleted(name: string, seq: bigint): boolean {
    return this.deleted.get(name)?.has(seq) ?? false;
  }

  entries(): IterableIterator<[string, MarkEntry]> {
    return this.byName.entries();
  }

  /** Tombstones at or below `checkpointSeq` name records consolidation has removed: drop them. */
  save(checkpointSeq: bigint): Promise<void> {
    const o: MarksFile = {};
    for (const [n, m] of this.byName) o[n] = { seq: m.seq.toString(), time: m.time.toString(), ...(m.id ? { id: m.id } : {}) };
    const tomb: Array<{ name: string; seq: string }> = [];
    for (const [name, seqs] of this.deleted) {
      for (const s of seqs) if (s > checkpointSeq) tomb.push({ name, seq: s.toString() });
    }
    if (tomb.length > 0) o[DELETED_KEY] = tomb;
    return writeJsonAtomic(this.file, o);
  }

  private tombstone(name: string, seq: bigint): void {
    let s = this.deleted.get(name);
    if (!s) this.deleted.set(name, (s = new Set()));
    s.add(seq);
  }
}
