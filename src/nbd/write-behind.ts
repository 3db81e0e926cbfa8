import { Worker } from 'node:worker_threads';
import { ErrorCodes, RewindError } from '../core/errors.js';

/**
 * Small backing-file writes made by a second thread, after the NBD reply has gone out.
 *
 * Why: under random 4 KiB writes the event loop spent a third of its time inside the
 * backing file's pwrite (ext4 delayed allocation for blocks the sparse file does not have
 * yet), in series with everything else it does, while nbdkit spreads the same kernel work
 * over its threads. Dropping those writes altogether took fio 4 KiB QD16 from 13–21k to
 * 29–38k IOPS. Here the write is copied into shared memory and a worker thread pwrites it,
 * which keeps most of that gain without dropping anything.
 *
 * Only for a backing file behind a journal used as its write-ahead log (journal-filter.ts
 * `wal`, node-volume.ts): a start after a crash redoes the spool onto the backing file, and
 * a FLUSH makes the spool durable (and, for writes the spool could not take, drains this
 * queue and syncs the file), so every flushed write survives a crash. A write acknowledged
 * but not yet flushed may be lost if the process dies before either the spool writer or
 * this thread wrote it, which NBD allows (before, the page cache kept it across a process
 * crash, not across a machine crash). Inside the process the owner keeps the device's
 * semantics:
 * - reads of a range with queued writes wait for them (waitFor / overlapping);
 * - flush, trim, zero and large writes wait for everything queued first (drained);
 * - writes leave in submission order (one ring, one thread), so overlapping writes land
 *   in the order their NBD replies went out.
 *
 * A failed write stops the worker (fail-stop): the backing file no longer holds what was
 * acknowledged, so every later call fails with the error; the journal still holds every
 * acknowledged write it took in, and the next start redoes them (the running marker stays).
 *
 * Shared memory: ctrl (Int32) counters, descriptors (offset, length, data position) for
 * SLOTS writes, and a DATA_BYTES ring of payloads. Counters are int32 and wrap; every
 * comparison is on their difference.
 */

const HEAD = 0; // writes submitted (main thread)
const TAIL = 1; // writes done (worker)
const SLEEPING = 2; // worker is (about to be) asleep on BELL
const WAITING = 3; // main thread waits on TAIL: the worker notifies after each write
const STOP = 4;
const BELL = 5; // bumped to wake the worker (new writes, or STOP)
const CTRL_INTS = 8;

const SLOTS = 4096;
const DATA_BYTES = 16 * 1024 * 1024;
/** Writes larger than this go the owner's own way (after drained()). */
export const WRITE_BEHIND_MAX = 64 * 1024;

// The worker is plain JavaScript evaluated from this string: a file beside this one would
// exist only after the TypeScript build, and the loop is this short.
const WORKER_SOURCE = `
const { workerData, parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const { ctrlSab, descSab, dataSab, fd, slots } = workerData;
const ctrl = new Int32Array(ctrlSab);
const desc = new Float64Array(descSab);
const data = Buffer.from(dataSab);
let tail = Atomics.load(ctrl, ${TAIL});
for (;;) {
  const head = Atomics.load(ctrl, ${HEAD});
  if (head === tail) {
    if (Atomics.load(ctrl, ${STOP}) !== 0) break;
    Atomics.store(ctrl, ${SLEEPING}, 1);
    // Sleep on the bell as it was before HEAD and STOP are read again: a submit or close in
    // between either moved them (seen here) or rings after this read (wait returns at once).
    const bell = Atomics.load(ctrl, ${BELL});
    if (Atomics.load(ctrl, ${HEAD}) === tail && Atomics.load(ctrl, ${STOP}) === 0) Atomics.wait(ctrl, ${BELL}, bell, 1000);
    Atomics.store(ctrl, ${SLEEPING}, 0);
    continue;
  }
  const i = ((tail >>> 0) % slots) * 3;
  const off = desc[i], len = desc[i + 1], pos = desc[i + 2];
  try {
    for (let done = 0; done < len; ) {
      const n = fs.writeSync(fd, data, pos + done, len - done, off + done);
      if (n === 0) throw Object.assign(new Error('pwrite wrote nothing'), { code: 'EIO' });
      done += n;
    }
  } catch (err) {
    parentPort.postMessage({ code: err.code || 'EIO', message: String(err.message || err), offset: off, length: len });
    break;
  }
  tail = (tail + 1) | 0;
  Atomics.store(ctrl, ${TAIL}, tail);
  if (Atomics.load(ctrl, ${WAITING}) !== 0) Atomics.notify(ctrl, ${TAIL});
}
`;

// In V8 since 8.7 (Node 16); TypeScript lists it from lib es2024 on.
const waitAsync = (Atomics as unknown as {
  waitAsync(a: Int32Array, i: number, v: number, timeoutMs: number): { async: false; value: string } | { async: true; value: Promise<string> };
}).waitAsync;

interface Pending {
  /** Submission number (unbounded JS integer). */
  id: number;
  offset: number;
  end: number;
  /** Ring bytes it holds: its payload, and the ring's end it skipped to start at 0. */
  used: number;
}

interface Waiter {
  id: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class WriteBehind {
  private readonly ctrl: Int32Array;
  private readonly desc: Float64Array;
  private readonly data: Buffer;
  private readonly worker: Worker;
  private readonly exited: Promise<void>;
  /** Next submission number; HEAD is its low 32 bits. */
  private submitted = 0;
  /** Known done (refreshed from TAIL). */
  private done = 0;
  private readonly pending: Pending[] = [];
  private pendingFirst = 0;
  private dataHead = 0;
  private dataUsed = 0;
  private waiters: Waiter[] = [];
  private waitingOnTail = false;
  private failed: RewindError | null = null;
  /** close() was called: no new writes. */
  private closing = false;
  /** STOP was set: the worker's exit is expected. */
  private stopped = false;

  constructor(
    fd: number,
    private readonly path: string,
    /** Told once when a write fails and the worker stops (the owner logs it). */
    private readonly onFail?: (err: RewindError) => void,
  ) {
    const ctrlSab = new SharedArrayBuffer(CTRL_INTS * 4);
    const descSab = new SharedArrayBuffer(SLOTS * 3 * 8);
    const dataSab = new SharedArrayBuffer(DATA_BYTES);
    this.ctrl = new Int32Array(ctrlSab);
    this.desc = new Float64Array(descSab);
    this.data = Buffer.from(dataSab);
    // execArgv []: a parent started with --input-type=module would make the source ESM.
    this.worker = new Worker(WORKER_SOURCE, { eval: true, execArgv: [], workerData: { ctrlSab, descSab, dataSab, fd, slots: SLOTS } });
    this.worker.on('message', (m: { code: string; message: string; offset: number; length: number }) => {
      this.fail(
        new RewindError(
          ErrorCodes.IO,
          `write of ${m.length} bytes at ${m.offset} to ${this.path} failed after it was acknowledged (${m.code}: ${m.message}); the volume refuses I/O from now on and the journal holds the acknowledged writes: fix the backing storage and restart, which replays the journal onto it`,
          { details: { code: m.code } },
        ),
      );
    });
    this.worker.on('error', (err) => this.fail(new RewindError(ErrorCodes.IO, `backing-write thread for ${this.path} died: ${String(err)}; restart to replay the journal onto the backing file`)));
    this.exited = new Promise((resolve) =>
      this.worker.once('exit', (code) => {
        if (!this.stopped) this.fail(new RewindError(ErrorCodes.IO, `backing-write thread for ${this.path} exited (code ${code}); restart to replay the journal onto the backing file`));
        resolve();
      }),
    );
    // Nothing here may keep the process alive: close() stops it.
    this.worker.unref();
  }

  /** The error that stopped the worker, if any; every later call fails with it. */
  get error(): RewindError | null {
    return this.failed;
  }

  /**
   * Queue `buf` (≤ WRITE_BEHIND_MAX) for `offset`; the caller's buffer is free when this
   * returns or resolves. Resolves at once while the ring has room, else once it has.
   */
  submit(buf: Buffer, offset: number): Promise<void> {
    if (this.failed) return Promise.reject(this.failed);
    if (this.closing) return Promise.reject(new RewindError(ErrorCodes.CLOSED, `${this.path} is closed`));
    if (this.stalled.length === 0 && this.room(buf.length)) {
      this.put(buf, offset);
      return Promise.resolve();
    }
    // Full: queued in order behind the ones already waiting for room.
    const admitted = new Promise<void>((resolve, reject) => {
      this.stalled.push({ buf, offset, resolve, reject });
      if (this.stalled.length === 1) this.admitStalled();
    });
    this.lastStalled = admitted;
    return admitted;
  }

  /** The promise of the newest stalled write (drained() waits for it to be in the ring). */
  private lastStalled: Promise<void> | undefined;

  private readonly stalled: Array<{ buf: Buffer; offset: number; resolve: () => void; reject: (err: unknown) => void }> = [];

  /** Move stalled writes into the ring as the worker frees it, oldest first. */
  private admitStalled(): void {
    this.waitFor(this.done + 1).then(
      () => {
        while (this.stalled.length > 0 && this.room(this.stalled[0]!.buf.length)) {
          const s = this.stalled.shift()!;
          this.put(s.buf, s.offset);
          s.resolve();
        }
        if (this.stalled.length > 0) this.admitStalled();
      },
      (err: unknown) => {
        for (const s of this.stalled.splice(0)) s.reject(err);
      },
    );
  }

  /** Resolves once every write submitted before this call is done, stalled ones included. */
  drained(): Promise<void> {
    if (this.stalled.length > 0) return this.lastStalled!.then(() => this.drained());
    return this.waitFor(this.submitted);
  }

  /** Resolves once every queued write overlapping [offset, offset+length) is done. */
  overlapping(offset: number, length: number): Promise<void> {
    this.refresh();
    const end = offset + length;
    let last = 0;
    for (let i = this.pendingFirst; i < this.pending.length; i++) {
      const p = this.pending[i]!;
      if (p.offset < end && offset < p.end) last = p.id;
    }
    if (this.failed) return Promise.reject(this.failed);
    return last === 0 ? Promise.resolve() : this.waitFor(last);
  }

  /** Stop the worker after what is queued; idempotent. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    try {
      await this.drained();
    } finally {
      this.stopped = true;
      // Held until it has exited: with nothing else left, the process would end first.
      this.worker.ref();
      Atomics.store(this.ctrl, STOP, 1);
      Atomics.add(this.ctrl, BELL, 1);
      Atomics.notify(this.ctrl, BELL);
      await this.exited;
    }
  }

  private room(length: number): boolean {
    this.refresh();
    if (this.submitted - this.done >= SLOTS) return false;
    // A payload never wraps: skipping the ring's end counts as used until the write after it is done.
    const skip = this.dataHead + length > DATA_BYTES ? DATA_BYTES - this.dataHead : 0;
    return this.dataUsed + skip + length <= DATA_BYTES;
  }

  private put(buf: Buffer, offset: number): void {
    let used = buf.length;
    if (this.dataHead + buf.length > DATA_BYTES) {
      used += DATA_BYTES - this.dataHead;
      this.dataHead = 0;
    }
    const pos = this.dataHead;
    buf.copy(this.data, pos);
    const id = ++this.submitted;
    const i = ((id - 1) % SLOTS) * 3;
    this.desc[i] = offset;
    this.desc[i + 1] = buf.length;
    this.desc[i + 2] = pos;
    this.dataHead += buf.length;
    this.dataUsed += used;
    this.pending.push({ id, offset, end: offset + buf.length, used });
    Atomics.store(this.ctrl, HEAD, id | 0);
    if (!this.wakeScheduled) {
      this.wakeScheduled = true;
      setImmediate(this.wake);
    }
  }

  /**
   * The worker is woken once per event-loop turn, at its end (setImmediate), after the
   * turn's writes are queued, not at each write: waking a thread puts it on this CPU, and
   * woken per write it preempted the event loop ~7k times a second (fio 4 KiB QD16).
   */
  private wakeScheduled = false;
  private readonly wake = (): void => {
    this.wakeScheduled = false;
    if (Atomics.load(this.ctrl, SLEEPING) !== 0) {
      Atomics.add(this.ctrl, BELL, 1);
      Atomics.notify(this.ctrl, BELL);
    }
  };

  /** Learn what the worker finished; free its ring space; settle waiters. */
  private refresh(): void {
    const tail = Atomics.load(this.ctrl, TAIL);
    const ahead = (this.submitted | 0) - tail;
    const done = this.submitted - (ahead | 0);
    if (done === this.done) return;
    this.done = done;
    while (this.pendingFirst < this.pending.length && this.pending[this.pendingFirst]!.id <= done) {
      this.dataUsed -= this.pending[this.pendingFirst++]!.used;
    }
    if (this.pendingFirst === this.pending.length) {
      this.pending.length = 0;
      this.pendingFirst = 0;
    } else if (this.pendingFirst > 1024) {
      this.pending.splice(0, this.pendingFirst);
      this.pendingFirst = 0;
    }
    // Empty: start the ring over, so small writes stay in one stretch of it.
    if (this.pending.length === 0) this.dataHead = 0;
    if (this.waiters.length > 0) {
      const ready = this.waiters.filter((w) => w.id <= done);
      if (ready.length > 0) {
        this.waiters = this.waiters.filter((w) => w.id > done);
        if (this.waiters.length === 0) this.worker.unref();
        for (const w of ready) w.resolve();
      }
    }
  }

  private waitFor(id: number): Promise<void> {
    this.refresh();
    if (this.failed) return Promise.reject(this.failed);
    if (id <= this.done) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      // A pending Atomics.waitAsync does not keep the process alive; someone waiting must
      // (a redo at start-up waits here with nothing else running).
      if (this.waiters.length === 0) this.worker.ref();
      this.waiters.push({ id, resolve, reject });
      this.watchTail();
    });
  }

  /** Sleep on TAIL (off the event loop) until the worker moves it, while anyone waits. */
  private watchTail(): void {
    if (this.waitingOnTail || this.failed) return;
    this.waitingOnTail = true;
    Atomics.store(this.ctrl, WAITING, 1);
    const seen = Atomics.load(this.ctrl, TAIL);
    this.refresh();
    // Bounded, so a wait cannot outlive a worker that stopped without moving TAIL.
    const r = waitAsync(this.ctrl, TAIL, seen, 1000);
    const again = (): void => {
      this.waitingOnTail = false;
      this.refresh();
      if (this.waiters.length > 0 && !this.failed) this.watchTail();
      else Atomics.store(this.ctrl, WAITING, 0);
    };
    if (r.async) void r.value.then(again);
    else queueMicrotask(again);
  }

  private fail(err: RewindError): void {
    if (this.failed) return;
    this.failed = err;
    this.worker.unref();
    for (const w of this.waiters.splice(0)) w.reject(err);
    this.onFail?.(err);
  }
}
