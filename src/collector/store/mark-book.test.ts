import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCodes } from '../../core/errors.js';
import { RecordKind, type JournalRecord } from '../../journal/record.js';
import { CollectorStore } from './collector-store.js';

const KiB = 1024;
let dir: string;
let store: CollectorStore;
let seq = 0n;
let time = 1_800_000_000_000_000_000n;

function write(off: number, fill: number): JournalRecord {
  time += 10_000_000n;
  return { kind: RecordKind.Write, flags: 0, seq: ++seq, time, offset: BigInt(off), length: 4 * KiB, payload: Buffer.alloc(4 * KiB, fill) };
}
function mark(name: string): JournalRecord {
  time += 10_000_000n;
  return { kind: RecordKind.Mark, flags: 0, seq: ++seq, time, offset: 0n, length: 0, payload: Buffer.from(name, 'utf8') };
}
const reopen = async () => {
  await store.close();
  store = await CollectorStore.open(dir, { segmentBytes: 64 * KiB });
  return store.volume('v')!;
};

beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'rewind-markbook-'));
  store = await CollectorStore.open(dir, { segmentBytes: 64 * KiB });
  seq = 0n;
});
afterEach(async () => {
  await store.close();
  await fsp.rm(dir, { recursive: true, force: true });
});

describe('marks by id', () => {
  it('a second addMark with the same id returns the first mark (same seq and time), also after reopen', async () => {
    const v = await store.createVolume('v', BigInt(64 * KiB));
    await v.append([write(0, 1)]);
    const first = await v.addMark('before', undefined, { id: 'uid-1' });
    await v.append([write(0, 2)]);
    // Later, and even under another name or point: the id decides.
    expect(await v.addMark('before', undefined, { id: 'uid-1' })).toEqual(first);
    expect(await v.addMark('renamed', time, { id: 'uid-1' })).toEqual(first);
    expect(v.marks()).toEqual([{ name: 'before', seq: 1n, time: first.time, id: 'uid-1' }]);
    const w = await reopen();
    expect(w.marks()).toEqual([{ name: 'before', seq: 1n, time: first.time, id: 'uid-1' }]);
    expect(await w.addMark('before', undefined, { id: 'uid-1' })).toEqual(first);
    expect(w.resolve({ markId: 'uid-1' })).toEqual({ seq: 1n, time: first.time });
  });

  it('refuses a name another id already holds', async () => {
    const v = await store.createVolume('v', BigInt(64 * KiB));
    await v.append([write(0, 1)]);
    await v.addMark('x', undefined, { id: 'a' });
    await expect(v.addMark('x', undefined, { id: 'b' })).rejects.toMatchObject({ code: ErrorCodes.ALREADY_EXISTS });
    // An unkeyed mark at the same point takes the id it is asked with.
    await v.addMark('y');
    expect((await v.addMark('y', undefined, { id: 'c' })).id).toBe('c');
    expect(v.resolve({ markId: 'c' }).seq).toBe(1n);
  });

  it('deletes by id: gone from marks and points, a second delete is a no-op, still gone after reopen', async () => {
    const v = await store.createVolume('v', BigInt(64 * KiB));
    await v.append([write(0, 1)]);
    await v.addMark('keep', undefined, { id: 'k' });
    await v.addMark('drop', undefined, { id: 'd' });
    expect(await v.deleteMark({ id: 'd' })).toBe(true);
    expect(await v.deleteMark({ id: 'd' })).toBe(false);
    expect(await v.deleteMark({ id: 'never-was' })).toBe(false);
    expect(v.marks().map((m) => m.name)).toEqual(['keep']);
    expect(() => v.resolve({ markId: 'd' })).toThrow(expect.objectContaining({ code: ErrorCodes.NOT_FOUND }));
    expect(() => v.resolve({ mark: 'drop' })).toThrow(expect.objectContaining({ code: ErrorCodes.NOT_FOUND }));
    const w = await reopen();
    expect(w.marks().map((m) => m.name)).toEqual(['keep']);
    expect(() => w.resolve({ markId: 'd' })).toThrow(expect.objectContaining({ code: ErrorCodes.NOT_FOUND }));
    // The id and the name are free again.
    expect((await w.addMark('drop', undefined, { id: 'd' })).seq).toBe(1n);
  });

  it('a deleted mark whose record is in the journal stays deleted across reopen, until a new mark takes the name', async () => {
    const v = await store.createVolume('v', BigInt(64 * KiB));
    await v.append([write(0, 1), mark('from-stream'), write(0, 2)]);
    expect(v.marks().map((m) => m.name)).toEqual(['from-stream']);
    expect(await v.deleteMark({ name: 'from-stream' })).toBe(true);
    let w = await reopen();
    expect(w.marks()).toEqual([]);
    // A later record of the same name is a new mark, not the deleted one.
    await w.append([mark('from-stream')]);
    expect(w.marks().map((m) => [m.name, m.seq])).toEqual([['from-stream', 4n]]);
    w = await reopen();
    expect(w.marks().map((m) => [m.name, m.seq])).toEqual([['from-stream', 4n]]);
  });

  it('deleteVolume removes the volume and its history; a second delete is a no-op, and reopen does not bring it back', async () => {
    const v = await store.createVolume('v', BigInt(64 * KiB), { token: 't' });
    await v.append([write(0, 1)]);
    expect(await store.deleteVolume('v')).toBe(true);
    expect(await store.deleteVolume('v')).toBe(false);
    expect(store.volume('v')).toBeUndefined();
    expect(await fsp.readdir(path.join(dir, 'volumes'))).toEqual([]);
    await store.close();
    store = await CollectorStore.open(dir, { segmentBytes: 64 * KiB });
    expect(store.listVolumes()).toEqual([]);
    // The name can be used again, from an empty history.
    expect((await store.createVolume('v', BigInt(32 * KiB))).durableSeq).toBe(0n);
  });

  it('a token set by setToken is the one a reopened store checks', async () => {
    const v = await store.createVolume('v', BigInt(64 * KiB), { token: 'old' });
    await v.setToken('new');
    expect(v.token).toBe('new');
    expect((await reopen()).token).toBe('new');
  });
});
