import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openInstantBackend, type InstantBackend } from '../../src/collector/instant-export.js';
import { CollectorStore, type Point, type VolumeStore } from '../../src/collector/store/index.js';
import { ErrorCodes } from '../../src/core/errors.js';
import { ExportRegistry } from '../../src/nbd/export-registry.js';
import { createNbdServer, type NbdServer } from '../../src/nbd/server.js';
import { makeTempDir, nbdUri, qemuIo, requirePeer, runPeer, sha256File } from '../helpers/nbd-peers.js';
import { restoreToBuffer, Rng, VolumeModel } from './collector-store-model.js';

const SIZE = 4 * 1024 * 1024;
let dir: string;
let store: CollectorStore;
let vol: VolumeStore;
const model = new VolumeModel(SIZE, new Rng(424242));
const open: Array<{ server: NbdServer; backend: InstantBackend }> = [];

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function serve(point: Point, overlayDir?: string): Promise<{ uri: string; backend: InstantBackend; server: NbdServer }> {
  const backend = await openInstantBackend(vol, point, overlayDir ? { overlayDir, tmpDir: dir } : { tmpDir: dir });
  const server = createNbdServer({ exports: new ExportRegistry().add('instant', backend, { description: 'instant export' }) });
  const sock = path.join(dir, `nbd-${open.length}.sock`);
  await server.listen({ path: sock });
  open.push({ server, backend });
  return { uri: nbdUri({ path: sock }, 'instant'), backend, server };
}

async function download(uri: string, name: string): Promise<string> {
  const out = path.join(dir, name);
  await runPeer('nbdcopy', [uri, out], { timeoutMs: 60_000 });
  expect(fs.statSync(out).size).toBe(SIZE);
  return out;
}

beforeAll(async () => {
  for (const t of ['nbdcopy', 'qemu-io']) requirePeer(t);
  dir = makeTempDir('rewind-instant-test-');
  store = await CollectorStore.open(path.join(dir, 'store'), { segmentBytes: 256 * 1024 });
  vol = await store.createVolume('pvc-x', BigInt(SIZE));
  await model.drive(vol, 300, 30);
  await vol.addMark('golden', model.snapshots[4]!.time);
});

afterAll(async () => {
  for (const o of open) {
    await o.server.close().catch(() => undefined);
    await o.backend.close().catch(() => undefined);
  }
  await store?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('instant export over NBD', () => {
  it('serves an instant read-only: nbdcopy of the export equals store.restore of that point', async () => {
    const s = model.snapshots[6]!;
    const { uri, backend } = await serve({ time: s.time });
    expect(backend.seq).toBe(s.seq);
    expect(backend.capabilities.readOnly).toBe(true);
    const file = await download(uri, 'instant-6.img');
    const restored = await restoreToBuffer(vol, { time: s.time });
    expect(await sha256File(file)).toBe(sha(restored));
    expect(sha(restored)).toBe(sha(s.image));
    // Writes are refused: history is exported read-only.
    const w = await qemuIo(uri, ['write -P 0x11 0 4096'], { check: false });
    expect(w.code).not.toBe(0);
    expect(await sha256File(await download(uri, 'instant-6-again.img'))).toBe(sha(s.image));
  });

  it('serves a mark', async () => {
    const { uri } = await serve({ mark: 'golden' });
    expect(await sha256File(await download(uri, 'golden.img'))).toBe(sha(model.snapshots[4]!.image));
  });

  it('refuses a point the store does not know, with its code', async () => {
    await expect(openInstantBackend(vol, { mark: 'nope' })).rejects.toMatchObject({ code: ErrorCodes.NOT_FOUND });
  });

  it('with an overlay accepts writes, trims and zeroes, reads them back, and leaves history untouched', async () => {
    const s = model.snapshots[8]!;
    const historyBefore = sha(await restoreToBuffer(vol, { time: s.time }));
    const seqBefore = vol.durableSeq;
    const overlayDir = path.join(dir, 'overlay');
    const { uri, backend, server } = await serve({ time: s.time }, overlayDir);
    expect(backend.capabilities.readOnly).toBe(false);
    await qemuIo(uri, ['write -P 0xab 4096 65536', 'write -P 0xcd 1000000 3000', 'write -z 2097152 131072', 'discard 3145728 1048576', 'flush']);
    // A new connection sees the overlay (what a mount after repair would see).
    await qemuIo(uri, ['read -P 0xab 4096 65536', 'read -P 0xcd 1000000 3000', 'read -P 0 2097152 131072', 'read -P 0 3145728 1048576']);
    const expected = Buffer.from(s.image);
    expected.fill(0xab, 4096, 4096 + 65536);
    expected.fill(0xcd, 1000000, 1003000);
    expected.fill(0, 2097152, 2097152 + 131072);
    expected.fill(0, 3145728, 3145728 + 1048576);
    expect(await sha256File(await download(uri, 'overlay.img'))).toBe(sha(expected));
    expect(fs.readdirSync(overlayDir).length).toBe(1);
    // Close: the overlay is thrown away; the store's history is what it was.
    await server.close();
    await backend.close();
    open.splice(open.findIndex((o) => o.backend === backend), 1);
    expect(fs.readdirSync(overlayDir)).toEqual([]);
    expect(vol.durableSeq).toBe(seqBefore);
    expect(sha(await restoreToBuffer(vol, { time: s.time }))).toBe(historyBefore);
    expect(historyBefore).toBe(sha(s.image));
    // And a fresh export of the same instant shows the original bytes.
    const again = await serve({ time: s.time }, overlayDir);
    expect(await sha256File(await download(again.uri, 'overlay-again.img'))).toBe(sha(s.image));
  });
});
