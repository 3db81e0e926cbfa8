import { createHash, timingSafeEqual } from 'node:crypto';
import { planVolume } from '../planner/volume-plan.js';
import type { CollectorStore, Point, VolumeStore } from '../store/index.js';
import type { PointSpec, RestoreSink, StorePort, VolumePort, VolumeStatusInfo } from './store-port.js';

/** Compare digests, not the strings: equal length and constant time whatever the input. */
export function tokensEqual(a: string, b: string): boolean {
  const da = createHash('sha256').update(a).digest();
  const db = createHash('sha256').update(b).digest();
  return timingSafeEqual(da, db);
}

function volumePort(v: VolumeStore): VolumePort {
  const toPoint = (p: PointSpec): Point => ('now' in p ? { seq: v.durableSeq } : p);
  return {
    get name() { return v.name; },
    get size() { return v.size; },
    get durableSeq() { return v.durableSeq; },
    get latestTime() { return v.latestTime; },
    get generation() { return BigInt(v.generation); },
    // A volume stored without a token accepts no shipper: tokens are never optional on the wire.
    checkToken: (token) => v.token !== undefined && v.token !== '' && tokensEqual(token, v.token),
    append: (records) => v.append(records),
    addMark: (name, at, opts) => {
      if (at === undefined || 'now' in at) return v.addMark(name, undefined, opts);
      if ('time' in at) return v.addMark(name, at.time, opts);
      return v.addMark(name, v.resolve(at).time, opts);
    },
    deleteMark: (key) => v.deleteMark(key),
    setToken: (token) => v.setToken(token),
    noteRestore: (from, to) => v.noteRestore(from, to),
    marks: () => v.marks(),
    resolve: (p) => v.resolve(toPoint(p)),
    restore: async (p, sink: RestoreSink, opts) => {
      await v.restore(
        toPoint(p),
        (c) => (c.zero || !c.data ? sink.zero(c.offset, BigInt(c.length)) : sink.write(c.offset, c.data)),
        { changedSince: opts?.changedSince ? toPoint(opts.changedSince) : undefined, onProgress: opts?.onProgress ? (d) => opts.onProgress!(d) : undefined },
      );
    },
    diff: async (a, b) => (await v.diff(toPoint(a), toPoint(b))).map((e) => ({ offset: e.offset, length: e.length, zero: e.kind === 'zero' })),
    allocated: (p) => v.allocated(toPoint(p)),
    plan: (q) => planVolume(v, q),
    status: (): VolumeStatusInfo => {
      const s = v.status();
      return {
        name: s.name,
        size: s.size,
        generation: BigInt(s.generation),
        durableSeq: s.durableSeq,
        durableTime: s.latestTime,
        windowOldest: s.window.earliest,
        windowNewest: s.window.latest,
        journalBytes: BigInt(s.journalBytes),
        detail: { checkpointBytes: s.checkpointBytes, marks: s.marks, earliestSeq: s.window.earliestSeq, ...(s.resendingSinceSeq === undefined ? {} : { resendingSinceSeq: s.resendingSinceSeq }), ...(s.lastRestore ? { lastRestore: s.lastRestore } : {}) },
      };
    },
  };
}

/** The real collector store behind the gRPC service's port. */
export function storePort(store: CollectorStore): StorePort {
  const cache = new WeakMap<VolumeStore, VolumePort>();
  const wrap = (v: VolumeStore): VolumePort => {
    let p = cache.get(v);
    if (!p) cache.set(v, (p = volumePort(v)));
    return p;
  };
  return {
    volume: (name) => {
      const v = store.volume(name);
      return v ? wrap(v) : undefined;
    },
    createVolume: async (name, size, opts) => wrap(await store.createVolume(name, size, { token: opts.token })),
    volumeNames: () => store.listVolumes().map((v) => v.name),
    deleteVolume: (name) => store.deleteVolume(name),
  };
}
