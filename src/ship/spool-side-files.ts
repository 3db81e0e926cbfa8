import path from 'node:path';
import type { Logger } from '../core/logger.js';
import { DirtyBitmap } from './spool-dirty-bitmap.js';
import { readFileChecked, readSpoolState, writeFileAtomic, writeSpoolState } from './spool-state.js';

/**
 * The spool's state next to its journal: acked seq, the dirty bitmap and the full-resync
 * flag, with the rules for when the bitmap can be trusted (DESIGN §1, US 5907672):
 * - The first mark after a save writes the bitmap with clean = 0 BEFORE the write it
 *   covers is acknowledged; sync/close write it with clean = 1.
 * - On open, a bitmap that fails its checksum, does not fit the volume, says clean = 0,
 *   or is missing while state.json says one must exist ⇒ `needsFullResync`.
 */
export class SpoolSideFiles {
  ackedSeq = 0n;
  needsFullResync = false;
  bitmap: DirtyBitmap | null = null;
  private bitmapExpected = false;
  private uncleanPending: Promise<void> | null = null;
  private bitmapChain: Promise<void> = Promise.resolve();
  private stateChain: Promise<void> = Promise.resolve();

  private constructor(
    private readonly dir: string,
    private readonly volumeSize: bigint,
    private readonly blockSize: number,
  ) {}

  get statePath(): string {
    return path.join(this.dir, 'state.json');
  }
  get bitmapPath(): string {
    return path.join(this.dir, 'dirty.bitmap');
  }

  static async load(dir: string, volumeSize: bigint, blockSize: number, log: Logger): Promise<SpoolSideFiles> {
    const s = new SpoolSideFiles(dir, volumeSize, blockSize);
    new DirtyBitmap(volumeSize, blockSize); // validates blockSize early
    const why: string[] = [];
    const st = await readSpoolState(s.statePath);
    if (st === 'bad') why.push('state.json failed its checksum');
    if (typeof st === 'object') {
      s.ackedSeq = BigInt(st.ackedSeq);
      s.bitmapExpected = st.bitmapExpected;
      if (st.needsFullResync) why.push('a full resync was pending');
    }
    const bm = await readFileChecked(s.bitmapPath);
    if (bm.state === 'bad-checksum') why.push('dirty.bitmap failed its checksum');
    else if (bm.state === 'missing' && (s.bitmapExpected || st === 'bad')) why.push('dirty.bitmap is missing but was expected');
    else if (bm.state === 'ok') {
      const dec = DirtyBitmap.decode(bm.body, volumeSize, blockSize);
      if (!dec) why.push('dirty.bitmap does not match the volume size or block size');
      else {
        s.bitmap = dec.bitmap;
        s.bitmapExpected = true;
        if (!dec.clean) why.push('dirty.bitmap was not saved cleanly (writes after the last save are unknown)');
      }
    }
    if (why.length > 0) {
      s.needsFullResync = true;
      log.error('spool cannot trust its dirty tracking: full resync required', { reasons: why });
    }
    return s;
  }

  saveState(): Promise<void> {
    const p = this.stateChain.then(() =>
      writeSpoolState(this.statePath, { version: 1, ackedSeq: this.ackedSeq.toString(), bitmapExpected: this.bitmapExpected, needsFullResync: this.needsFullResync }),
    );
    this.stateChain = p.catch(() => {});
    return p;
  }

  private writeBitmap(clean: boolean): Promise<void> {
    const p = this.bitmapChain.then(() => writeFileAtomic(this.bitmapPath, this.bitmap!.encode(clean)));
    this.bitmapChain = p.catch(() => {});
    return p;
  }

  /** Mark an extent dirty; resolves once the on-disk bitmap is known not to be clean. */
  async markDirty(offset: bigint, length: number): Promise<void> {
    this.bitmap ??= new DirtyBitmap(this.volumeSize, this.blockSize);
    this.bitmap.mark(offset, length);
    if (!this.uncleanPending) {
      this.uncleanPending = (async () => {
        if (!this.bitmapExpected) {
          this.bitmapExpected = true;
          await this.saveState();
        }
        await this.writeBitmap(false);
      })();
    }
    await this.uncleanPending;
  }

  async saveBitmapIfChanged(): Promise<void> {
    if (!this.bitmap || (!this.bitmap.changed && !this.uncleanPending)) return;
    this.bitmap.changed = false;
    // Marks from now on start a new unclean write, queued after this clean one.
    this.uncleanPending = null;
    await this.writeBitmap(true);
  }

  async requireFullResync(): Promise<void> {
    this.needsFullResync = true;
    await this.saveState();
  }

  async fullResyncDone(): Promise<void> {
    this.bitmap ??= new DirtyBitmap(this.volumeSize, this.blockSize);
    this.bitmap.clear([{ offset: 0n, length: Number(this.volumeSize) }]);
    this.bitmap.changed = true; // rewrite it clean even if it was unreadable
    await this.saveBitmapIfChanged();
    this.needsFullResync = false;
    await this.saveState();
  }
}
