import type { Socket } from 'node:net';
import type { Logger } from '../core/logger.js';
import { CheckedBackend, type Refusal } from './backend-checked.js';
import { ByteQueue } from './byte-queue.js';
import {
  BASE_ALLOCATION_ID, PAYLOAD_STALL_MS, MAX_INFLIGHT_BYTES, MAX_INFLIGHT_REQUESTS, MAX_REQUEST_PAYLOAD, NBD_CMD_BLOCK_STATUS, NBD_CMD_CACHE,
  NBD_CMD_DISC, NBD_CMD_FLAG_FUA, NBD_CMD_FLAG_NO_HOLE, NBD_CMD_FLAG_REQ_ONE, NBD_CMD_FLUSH, NBD_CMD_READ, NBD_CMD_TRIM,
  NBD_CMD_WRITE, NBD_CMD_WRITE_ZEROES, NBD_EINVAL, NBD_EOVERFLOW, NBD_REQUEST_MAGIC, REQUEST_HEADER_SIZE,
  NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, NBD_SIMPLE_REPLY_MAGIC, SIMPLE_REPLY_HEADER_SIZE, STRUCTURED_REPLY_HEADER_SIZE,
} from './constants.js';
import type { NegotiatedSession } from './handshake/state.js';
import { blockStatusReply, simpleReply, STRUCTURED_READ_PREFIX, structuredDone, structuredError, writeOffsetDataPrefix, writeSimpleHeader, writeStructuredHeader } from './reply.js';
import { parseRequestHeader, type NbdRequest } from './request.js';
import { payloadPool } from './payload-pool.js';
import { nbdMemory, REQUEST_OVERHEAD_BYTES, type MemoryBudget, type MemoryGrant } from './memory-budget.js';
import { openUserBufferReads, type UserBufferReads } from './user-buffer-reads.js';

/** Room for the done replies of one turn: 100 structured ones, well above any queue depth seen. */
const DONE_BATCH_BYTES = 2000;
/** What a user-buffer read lands in between payloads: headers, small writes, payload heads. */
const GENERAL_READ_BYTES = 128 * 1024;
/** A payload with at least this much still to come is read straight into its own buffer. */
const DIRECT_READ_MIN = 16 * 1024;

/** A WRITE whose header has arrived and whose payload is being gathered into `dest`. */
interface Filling {
  req: NbdRequest;
  dest: Buffer;
  filled: number;
  pooled: boolean;
  /** What it reserved of the memory budget (memory-budget.ts). */
  grant: number;
}

/**
 * What a request may allocate, reserved before its header is taken off the queue: the
 * READ reply buffer (header and data) or the WRITE payload buffer, and the objects around
 * any request. Requests longer than MAX_REQUEST_PAYLOAD allocate nothing (refused, or
 * their payload discarded as it arrives) and reserve only the overhead.
 */
function memoryCost(type: number, length: number): number {
  if (length > MAX_REQUEST_PAYLOAD) return REQUEST_OVERHEAD_BYTES;
  if (type === NBD_CMD_READ) return REQUEST_OVERHEAD_BYTES + STRUCTURED_READ_PREFIX + length;
  if (type === NBD_CMD_WRITE) return REQUEST_OVERHEAD_BYTES + length;
  return REQUEST_OVERHEAD_BYTES;
}

/**
 * The transmission phase of one connection. Requests are parsed synchronously from the
 * socket's chunk list and dispatched at once, so many are in flight and replies go out
 * in completion order, matched by cookie. Each reply is one socket.write (or a few in one
 * synchronous block), so replies never interleave; writes are corked until the end of
 * the event-loop turn so that completions arriving together leave in one syscall.
 *
 * Hot path on plain sockets: reads land in memory we own (user-buffer-reads.ts), a large
 * payload straight in the pooled buffer it is written from (payload-pool.ts); header
 * parse → backend write → one promise → 16-byte reply. TLS sockets, or a runtime where
 * that hook is missing, use 'data' chunks: payload slices handed to pwritev, no copy.
 * `bench/cpu-per-request.sh rewind --rw=write --bs=1M --iodepth=16 --size=1G`, alternating:
 * 'data' chunks 430–517 MiB/s, 2.3–2.8 ms of server CPU per MiB, main thread 79–81% busy;
 * own buffers 561–593 MiB/s, 1.34–1.46 ms, 46–47% busy: the journal's disk is the bound.
 */
export class Transmission {
  private readonly checked: CheckedBackend;
  private inflightBytes = 0;
  private inflightCount = 0;
  private paused = false;
  private disconnecting = false;
  private finishing = false;
  private dead = false;
  /** Over-long WRITE being discarded: its request, how many payload bytes remain, its grant. */
  private draining: { req: NbdRequest; left: number; grant: number } | undefined;
  /**
   * Memory reserved for the request at the head of the queue (memory-budget.ts), and the
   * wait for it while the budget is spent: reading stops until it is granted.
   */
  private headGrant = 0;
  private starving: MemoryGrant | null = null;
  /**
   * Stalled payloads (PAYLOAD_STALL_MS): reads counted, a timer armed while a WRITE payload
   * is incomplete, and the count when it was armed. A timer that finds no read since, while
   * we were reading, closes the connection.
   */
  private arrivals = 0;
  private stallTimer: NodeJS.Timeout | null = null;
  private stallMark = 0;
  /** A WRITE header waits in the queue for its payload ('data' chunks). */
  private awaitingPayload = false;
  private corked = false;
  /** Done replies gathered this turn (see sendDone). */
  private doneBuf: Buffer | null = null;
  private doneLen = 0;
  /** Memory the gathered done replies release once written. */
  private doneGrant = 0;
  /** The backend takes gather writes (see Backend.pwritev). */
  private readonly gather: boolean;
  /**
   * User-buffer reads (user-buffer-reads.ts), when on: what a read delivers is read into
   * again after the callback, so every WRITE payload is gathered into a buffer of its own
   * (`filling`; read straight into it while `direct`) and leftovers are copied.
   */
  private reads: UserBufferReads | null = null;
  private filling: Filling | undefined;
  /** The rest of `filling`'s payload, while reads are pointed into it. */
  private direct: Buffer | null = null;

  constructor(
    private readonly socket: Socket,
    private readonly queue: ByteQueue,
    private readonly session: NegotiatedSession,
    private readonly logger?: Logger,
    private readonly budget: MemoryBudget = nbdMemory,
    private readonly payloadStallMs: number = PAYLOAD_STALL_MS,
  ) {
    this.checked = new CheckedBackend(session.backend, session.structuredReplies, session.baseAllocation);
    this.gather = typeof session.backend.pwritev === 'function';
    socket.on('drain', () => this.maybeResume());
  }

  /** Feed newly arrived bytes. */
  push(chunk: Buffer): void {
    this.arrivals++;
    this.queue.push(chunk);
    this.pump();
  }

  /**
   * Take the socket's reads into buffers of our own (see user-buffer-reads.ts). Returns
   * false when the socket cannot, and the caller feeds `push` from 'data' events.
   */
  readIntoOwnBuffers(): boolean {
    this.reads = openUserBufferReads(this.socket, GENERAL_READ_BYTES, this.onRead);
    return this.reads !== null;
  }

  private readonly onRead = (n: number, buf: Buffer): boolean => {
    this.arrivals++;
    if (this.direct !== null && buf === this.direct) {
      // This read landed in the payload's own buffer, right after what it held.
      const f = this.filling!;
      f.filled += n;
      if (f.filled < f.dest.length) {
        this.aim(f.dest.subarray(f.filled));
        return true;
      }
      this.aim(null);
      this.filled(f);
      return !this.blocked;
    }
    this.queue.push(buf.subarray(0, n));
    try {
      this.pump();
    } finally {
      this.queue.ownNewest();
    }
    return !this.blocked;
  };

  /** Not reading: at a per-connection bound, or waiting for process-wide memory. */
  private get blocked(): boolean {
    return this.paused || this.starving !== null;
  }

  /**
   * Reserve the head request's memory. When the budget is spent the socket stops being
   * read (backpressure: the peer's sends wait in TCP) until the grant comes.
   */
  private reserve(cost: number): boolean {
    if (this.headGrant > 0) return true;
    if (this.budget.tryTake(cost)) {
      this.headGrant = cost;
      return true;
    }
    this.starving = this.budget.wait(cost, () => {
      this.starving = null;
      if (this.dead) {
        this.budget.release(cost);
        return;
      }
      this.headGrant = cost;
      if (!this.paused) {
        this.socket.resume();
        queueMicrotask(() => this.pump());
      }
    });
    if (!this.paused) this.socket.pause();
    return false;
  }

  /** Watch for a payload that stops coming (see arrivals). */
  private watchPayload(): void {
    if (this.stallTimer !== null || this.dead) return;
    this.stallMark = this.arrivals;
    this.stallTimer = setTimeout(this.checkStall, this.payloadStallMs);
    this.stallTimer.unref();
  }

  private readonly checkStall = (): void => {
    this.stallTimer = null;
    if (this.dead) return;
    const pending = this.filling ?? this.draining;
    if (pending === undefined && !this.awaitingPayload) return;
    // Not reading is our doing (a bound), not the peer's: look again later.
    if (this.arrivals === this.stallMark && !this.blocked) {
      const left = this.filling ? this.filling.dest.length - this.filling.filled : this.draining ? this.draining.left : REQUEST_HEADER_SIZE + this.queue.peekUInt32(24) - this.queue.length;
      return this.violation(`WRITE payload stalled: nothing arrived for ${this.payloadStallMs} ms with ${left} bytes of it still to come`);
    }
    this.watchPayload();
  };

  /** Hand the head request's reservation to that request. */
  private takeGrant(): number {
    const g = this.headGrant;
    this.headGrant = 0;
    return g;
  }

  /** A buffer for a WRITE payload read through user buffers (payload-pool.ts). */
  private payloadBuffer(length: number): { dest: Buffer; pooled: boolean } {
    if (this.session.backend.borrowsWriteBuffers === true) return { dest: payloadPool.acquire(length), pooled: true };
    return { dest: payloadPool.keep(length), pooled: false };
  }

  /** Move queued bytes into the payload being gathered; dispatch it once whole. */
  private fill(): boolean {
    const f = this.filling!;
    const part = Math.min(this.queue.length, f.dest.length - f.filled);
    this.queue.copyOut(f.dest, f.filled, part);
    f.filled += part;
    if (f.filled < f.dest.length) {
      // (Only user-buffer reads fill: this.reads is set.)
      if (f.dest.length - f.filled >= DIRECT_READ_MIN) this.aim(f.dest.subarray(f.filled));
      return false;
    }
    this.filled(f);
    return true;
  }

  /** Point the next reads into `buf` (the rest of a payload), or back to the general buffer. */
  private aim(buf: Buffer | null): void {
    this.direct = buf;
    this.reads!.target(buf ?? this.reads!.general);
  }

  private filled(f: Filling): void {
    this.filling = undefined;
    this.dispatch(f.req, f.dest, f.grant, f.pooled);
  }

  /** Parse and dispatch as many complete requests as are queued. */
  pump(): void {
    while (!this.dead && !this.blocked && !this.disconnecting) {
      this.awaitingPayload = false;
      if (this.filling) {
        if (!this.fill()) return this.watchPayload();
        continue;
      }
      if (this.draining) {
        this.draining.left -= this.queue.skip(this.draining.left);
        if (this.draining.left > 0) return this.watchPayload();
        const { req, grant } = this.draining;
        this.draining = undefined;
        this.replyError(req, { errno: NBD_EOVERFLOW, message: `write of ${req.length} bytes exceeds the ${MAX_REQUEST_PAYLOAD}-byte maximum; payload discarded` }, grant);
        continue;
      }
      if (this.queue.length < REQUEST_HEADER_SIZE) return;
      if (this.queue.peekUInt32(0) !== NBD_REQUEST_MAGIC) return this.violation(`bad request magic 0x${this.queue.peekUInt32(0).toString(16)}`);
      const type = this.queue.peekUInt32(4) & 0xffff;
      const length = this.queue.peekUInt32(24);
      // Nothing is allocated for a request before its memory is reserved.
      if (!this.reserve(memoryCost(type, length))) return;
      if (type === NBD_CMD_WRITE) {
        if (length > MAX_REQUEST_PAYLOAD) {
          // Over-long WRITE: keep the connection framed by discarding the payload as it
          // arrives (ByteQueue.skip never allocates), then reply EOVERFLOW.
          const parsed = parseRequestHeader(this.queue.take(REQUEST_HEADER_SIZE));
          if (!parsed.ok) return this.violation(parsed.reason);
          this.draining = { req: parsed.req, left: length, grant: this.takeGrant() };
          continue;
        }
        // With user-buffer reads a payload is gathered into its buffer as it comes (fill);
        // with 'data' chunks it waits whole here. Either way its memory is reserved.
        const missing = REQUEST_HEADER_SIZE + length - this.queue.length;
        if (missing > 0 && !this.reads) {
          this.awaitingPayload = true;
          return this.watchPayload();
        }
        if (this.reads) {
          const parsed = parseRequestHeader(this.queue.take(REQUEST_HEADER_SIZE));
          if (!parsed.ok) return this.violation(parsed.reason);
          const { dest, pooled } = this.payloadBuffer(length);
          this.filling = { req: parsed.req, dest, filled: 0, pooled, grant: this.takeGrant() };
          continue;
        }
      }
      const parsed = parseRequestHeader(this.queue.take(REQUEST_HEADER_SIZE));
      if (!parsed.ok) return this.violation(parsed.reason);
      // 'data' chunks: a 1 MiB payload arrives as ~16 socket chunks of 64 KiB; hand the
      // slices to pwritev rather than copying them into one Buffer.
      let payload: Buffer | Buffer[] | undefined;
      if (type === NBD_CMD_WRITE) payload = this.gather && !this.queue.contiguous(length) ? this.queue.takeList(length) : this.queue.take(length);
      this.dispatch(parsed.req, payload, this.takeGrant());
    }
  }

  /**
   * `grant`: the request's memory reservation, released once its reply has left the
   * process (or at once when there is none). `pooled`: the payload came from
   * payloadPool.acquire and goes back once the write settles.
   */
  private dispatch(req: NbdRequest, payload: Buffer | Buffer[] | undefined, grant: number, pooled = false): void {
    const refusal = this.checked.validate(req.type, req.flags, req.offset, req.length);
    // Asked now, not when the buffer was taken: only a backend that gives this very write's
    // buffer back may have it reused.
    const recycle = pooled && this.session.backend.borrowsWriteBuffers === true;
    if (req.type === NBD_CMD_DISC) {
      this.budget.release(grant);
      this.disconnecting = true;
      this.maybeFinish();
      return;
    }
    if (refusal) {
      if (recycle) payloadPool.release(payload as Buffer);
      this.replyError(req, refusal, grant);
      return;
    }
    const cost = req.type === NBD_CMD_READ || req.type === NBD_CMD_WRITE ? req.length : 0;
    this.begin(cost);
    const fua = (req.flags & NBD_CMD_FLAG_FUA) !== 0;
    const done = (errno: number): void => this.finish(req, errno, cost, grant);
    switch (req.type) {
      case NBD_CMD_READ:
        this.read(req, cost, grant);
        return;
      case NBD_CMD_WRITE:
        if (Array.isArray(payload)) this.checked.writev(payload, req.offset, fua).then(done);
        else if (recycle) {
          this.checked.write(payload!, req.offset, fua).then((errno) => {
            payloadPool.release(payload as Buffer);
            done(errno);
          });
        } else this.checked.write(payload!, req.offset, fua).then(done);
        return;
      case NBD_CMD_FLUSH:
        this.checked.flush().then(done);
        return;
      case NBD_CMD_TRIM:
        this.checked.trim(req.offset, req.length, fua).then(done);
        return;
      case NBD_CMD_WRITE_ZEROES:
        this.checked.zero(req.offset, req.length, fua, (req.flags & NBD_CMD_FLAG_NO_HOLE) !== 0).then(done);
        return;
      case NBD_CMD_CACHE:
        this.checked.cache(req.offset, req.length).then(done);
        return;
      case NBD_CMD_BLOCK_STATUS:
        this.checked.blockStatus(req.offset, req.length, (req.flags & NBD_CMD_FLAG_REQ_ONE) !== 0).then((r) => {
          if (typeof r === 'number') return this.finish(req, r, 0, grant);
          this.end(0);
          this.send(blockStatusReply(req.handle, BASE_ALLOCATION_ID, r), grant);
        });
        return;
      default:
        this.end(0);
        this.replyError(req, { errno: NBD_EINVAL, message: `unknown command ${req.type}` }, grant);
    }
  }

  /** READ: the reply header and the data share one buffer, so the data is never copied. */
  private read(req: NbdRequest, cost: number, grant: number): void {
    const structured = this.session.structuredReplies;
    const prefix = structured ? STRUCTURED_READ_PREFIX : SIMPLE_REPLY_HEADER_SIZE;
    const buf = Buffer.allocUnsafe(prefix + req.length);
    this.checked.read(buf.subarray(prefix), req.offset).then((errno) => {
      if (errno !== 0) return this.finish(req, errno, cost, grant);
      this.end(cost);
      if (structured) writeOffsetDataPrefix(buf, req.handle, req.offset, req.length);
      else writeSimpleHeader(buf, req.handle, 0);
      this.send(buf, grant);
    });
  }

  private finish(req: NbdRequest, errno: number, cost: number, grant: number): void {
    this.end(cost);
    if (errno !== 0) this.replyError(req, { errno, message: `command ${req.type} failed` }, grant);
    else this.sendDone(req.handle, grant);
  }

  /**
   * Success replies without data are most replies under a write load. Those of one
   * event-loop turn are laid side by side in one small buffer and leave in one socket
   * write, instead of a Buffer and a stream chunk each (fio 4 KiB QD16: the reply path
   * was an eighth of the event loop, most of it per-chunk stream bookkeeping).
   */
  private sendDone(handle: Buffer, grant: number): void {
    const structured = this.session.structuredReplies;
    if (this.dead || this.socket.destroyed || this.sendsAtOnce()) {
      this.send(structured ? structuredDone(handle) : simpleReply(handle, 0), grant);
      return;
    }
    const size = structured ? STRUCTURED_REPLY_HEADER_SIZE : SIMPLE_REPLY_HEADER_SIZE;
    if (this.doneBuf === null || this.doneLen + size > this.doneBuf.length) {
      this.flushDone();
      this.doneBuf = Buffer.allocUnsafe(DONE_BATCH_BYTES);
    }
    if (structured) {
      writeStructuredHeader(this.doneBuf, this.doneLen, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, handle, 0);
    } else {
      this.doneBuf.writeUInt32BE(NBD_SIMPLE_REPLY_MAGIC, this.doneLen);
      this.doneBuf.writeUInt32BE(0, this.doneLen + 4);
      handle.copy(this.doneBuf, this.doneLen + 8);
    }
    this.doneLen += size;
    this.doneGrant += grant;
    this.corkForTurn();
  }

  private flushDone(): void {
    const grant = this.doneGrant;
    this.doneGrant = 0;
    if (this.doneLen > 0 && !this.socket.destroyed) this.socket.write(this.doneBuf!.subarray(0, this.doneLen), this.releaser(grant));
    else this.budget.release(grant);
    this.doneBuf = null;
    this.doneLen = 0;
  }

  private replyError(req: NbdRequest, r: Refusal, grant: number): void {
    this.logger?.debug('nbd request refused', { type: req.type, offset: req.offset, length: req.length, errno: r.errno, why: r.message });
    this.send(this.session.structuredReplies ? structuredError(req.handle, r.errno, r.message) : simpleReply(req.handle, r.errno), grant);
  }

  /**
   * A reply's memory is given back when the socket has handed it to the kernel (the write
   * callback; it also runs, with an error, for writes dropped when the socket is destroyed),
   * so replies a peer does not read stay counted.
   */
  private releaser(grant: number): ((err?: Error | null) => void) | undefined {
    return grant > 0 ? () => this.budget.release(grant) : undefined;
  }

  private send(buf: Buffer, grant: number): void {
    if (this.dead || this.socket.destroyed) {
      this.budget.release(grant);
      return;
    }
    if (this.sendsAtOnce()) {
      this.socket.write(buf, this.releaser(grant));
      return;
    }
    this.corkForTurn();
    this.socket.write(buf, this.releaser(grant));
  }

  /**
   * Nothing else in flight (QD1, e.g. write + flush loops): nothing to batch with, so
   * skip the cork and its extra event-loop turn of latency.
   */
  private sendsAtOnce(): boolean {
    return !this.corked && this.inflightCount === 0 && this.queue.length < REQUEST_HEADER_SIZE;
  }

  /** Replies of this turn leave together when it ends (gathered done replies first). */
  private corkForTurn(): void {
    if (this.corked) return;
    this.corked = true;
    this.socket.cork();
    setImmediate(this.endTurn);
  }

  private readonly endTurn = (): void => {
    this.flushDone();
    this.corked = false;
    this.socket.uncork();
  };

  private begin(cost: number): void {
    this.inflightBytes += cost;
    this.inflightCount++;
    if (!this.paused && (this.inflightBytes > MAX_INFLIGHT_BYTES || this.inflightCount >= MAX_INFLIGHT_REQUESTS || this.socket.writableLength > MAX_INFLIGHT_BYTES)) {
      this.paused = true;
      this.socket.pause();
    }
  }

  private end(cost: number): void {
    this.inflightBytes -= cost;
    this.inflightCount--;
    this.maybeResume();
    this.maybeFinish();
  }

  private maybeResume(): void {
    if (!this.paused || this.dead) return;
    if (this.inflightBytes > MAX_INFLIGHT_BYTES / 2 || this.inflightCount > MAX_INFLIGHT_REQUESTS / 2) return;
    if (this.socket.writableLength > MAX_INFLIGHT_BYTES) return; // peer not reading replies
    this.paused = false;
    if (this.starving) return; // the grant resumes reading
    this.socket.resume();
    queueMicrotask(() => this.pump());
  }

  /**
   * After DISC, once nothing is in flight: the reply of the request that just finished is
   * sent after this runs (finish → end → here), so the connection closes at the end of the
   * turn, not now.
   */
  private maybeFinish(): void {
    if (this.disconnecting && this.inflightCount === 0 && !this.dead && !this.finishing) {
      this.finishing = true;
      setImmediate(() => {
        this.flushDone();
        this.dead = true;
        this.socket.end();
      });
    }
  }

  /** Protocol violation: no reply is possible, the stream is no longer framed. */
  private violation(reason: string): void {
    this.logger?.warn('nbd protocol violation; closing connection', { reason });
    this.dead = true;
    this.socket.destroy();
  }

  /** Socket gone: stop replying; in-flight backend calls finish on their own. */
  close(): void {
    this.dead = true;
    if (this.stallTimer !== null) clearTimeout(this.stallTimer);
    this.stallTimer = null;
    this.starving?.cancel();
    this.starving = null;
    this.budget.release(this.takeGrant());
    if (this.draining) {
      this.budget.release(this.draining.grant);
      this.draining = undefined;
    }
    if (this.filling) {
      // Its buffer is dropped (never written, never pooled again): the memory is free.
      this.budget.release(this.filling.grant);
      this.filling = undefined;
      if (this.reads) this.aim(null);
    }
  }
}
