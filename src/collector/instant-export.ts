import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fromSystemError } from '../core/errors.js';
import type { Backend, Extent } from '../nbd/backend.js';
import { FileBackend } from '../nbd/file-backend.js';
import { OverlayBackend } from '../nbd/overlay-filter.js';
import { HOLE_ZERO, ZeroMap } from '../nbd/zero-map.js';
import type { Point, VolumeStore } from './store/volume-store.js';

export interface InstantExportOptions {
  /** Writable throw-away copy-on-write overlay in this directory (deleted on close). */
  overlayDir?: string;
  /** Where the materialized image goes (default: the OS temp dir). Needs room for the allocated data. */
  tmpDir?: string;
  onProgress?: (done: bigint, total: bigint) => void;
}

export interface InstantBackend extends Backend {
  /** The state served: the point resolved to a seq and its time. */
  readonly seq: bigint;
  readonly time: bigint;
}

/**
 * A Backend serving a volume as of a point (instant, mark or seq), for the NBD server.
 *
 * Choice: materialize. The image is restored once into a sparse temp file (zero runs are
 * skipped, so only allocated data costs disk), then served by FileBackend read-only.
 * Materialization costs exactly one restore — whose cost tracks the volume size, not the
 * length of history — and afterwards reads are plain pread at file speed, with no store
 * locks held while a client is connected and consolidation free to proceed. Serving reads
 * lazily from the journal would avoid the up-front copy but couple every NBD read to the
 * store's index and to retention; not worth it for a repair/inspection export.
 *
 * With `overlayDir` the export is writable through a copy-on-write overlay
 * (src/nbd/overlay-filter.ts): the materialized base and the store's history are never
 * written. close() deletes the overlay and the temp image.
 */
export async function openInstantBackend(vol: VolumeStore, point: Point, opts: InstantExportOptions = {}): Promise<InstantBackend> {
  const r = vol.resolve(point);
  let dir: string;
  try {
    dir = await fsp.mkdtemp(path.join(opts.tmpDir ?? os.tmpdir(), 'rewind-instant-'));
  } catch (err) {
    throw fromSystemError(err, 'create a temp dir for the instant image');
  }
  const file = path.join(dir, `${vol.name}-${r.seq}.img`);
  const zeros = new ZeroMap();
  let base: FileBackend | undefined;
  try {
    const fh = await fsp.open(file, 'wx+');
    try {
      await fh.truncate(Number(vol.size));
      await vol.restore({ seq: r.seq }, async (c) => {
        if (!c.data) {
          zeros.set(Number(c.offset), Number(c.offset) + c.length, HOLE_ZERO);
          return;
        }
        let done = 0;
        while (done < c.length) done += (await fh.write(c.data, done, c.length - done, Number(c.offset) + done)).bytesWritten;
      }, opts.onProgress ? { onProgress: opts.onProgress } : {});
    } finally {
      await fh.close();
    }
    base = await FileBackend.open(file, { readOnly: true });
  } catch (err) {
    await fsp.rm(dir, { recursive: true, force: true });
    throw fromSystemError(err, `materialize volume ${vol.name} at seq ${r.seq}`);
  }
  const fb = base;
  // The file was opened read-only, so FileBackend knows nothing of its holes; the restore
  // told us where the zero runs are, which lets nbdcopy/qemu-img skip them.
  const materialized: Backend = {
    size: fb.size,
    capabilities: { ...fb.capabilities, readOnly: true, trim: false, zero: false, fua: false },
    blockSizes: fb.blockSizes,
    pread: (b, o) => fb.pread(b, o),
    pwrite: (b, o, f) => fb.pwrite(b, o, f),
    flush: () => fb.flush(),
    trim: (o, l, f) => fb.trim(o, l, f),
    zero: (o, l, f) => fb.zero(o, l, f),
    blockStatus: async (o, l): Promise<Extent[]> => zeros.query(Number(o), Number(o) + l).map((z) => ({ offset: BigInt(z.start), length: BigInt(z.end - z.start), flags: z.flags })),
    cache: (o, l) => fb.cache(o, l),
    close: async () => {
      await fb.close();
      await fsp.rm(dir, { recursive: true, force: true });
    },
  };
  let served: Backend = materialized;
  if (opts.overlayDir !== undefined) {
    try {
      served = await OverlayBackend.open(materialized, { dir: opts.overlayDir });
    } catch (err) {
      await materialized.close();
      throw err;
    }
  }
  return {
    seq: r.seq,
    time: r.time,
    size: served.size,
    capabilities: served.capabilities,
    blockSizes: served.blockSizes,
    pread: (b, o) => served.pread(b, o),
    pwrite: (b, o, f) => served.pwrite(b, o, f),
    flush: () => served.flush(),
    trim: (o, l, f) => served.trim(o, l, f),
    zero: (o, l, f) => served.zero(o, l, f),
    blockStatus: (o, l) => served.blockStatus(o, l),
    cache: (o, l) => served.cache(o, l),
    close: () => served.close(),
  };
}
