import type { Socket } from 'node:net';
import type { Logger } from '../core/logger.js';
import { CheckedBackend, type Refusal } from './backend-checked.js';
import { ByteQueue } from './byte-queue.js';
import {
  BASE_ALLOCATION_ID, MAX_INFLIGHT_BYTES, MAX_INFLIGHT_REQUESTS, MAX_REQUEST_PAYLOAD, NBD_CMD_BLOCK_STATUS, NBD_CMD_CACHE,
  NBD_CMD_DISC, NBD_CMD_FLAG_FUA, NBD_CMD_FLAG_NO_HOLE, NBD_CMD_FLAG_REQ_ONE, NBD_CMD_FLUSH, NBD_CMD_READ, NBD_CMD_TRIM,
  NBD_CMD_WRITE, NBD_CMD_WRITE_ZEROES, NBD_EINVAL, NBD_EOVERFLOW, NBD_REQUEST_MAGIC, REQUEST_HEADER_SIZE,
  NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, NBD_SIMPLE_REPLY_MAGIC, SIMPLE_REPLY_HEADER_SIZE, STRUCTURED_REPLY_HEADER_SIZE,
} from './constants.js';
import type { NegotiatedSession } from './handshake/state.js';
import { blockStatusReply, simpleReply, STRUCTURED_READ_PREFIX, structuredDone, structuredError, writeOffsetDataPrefix, writeSimpleHeader, writeStructuredHeader } from './reply.js';
import { parseRequestHeader, type NbdRequest } from './request.js';
import { payloadPool } from './payload-pool.js';
import { openUserBufferReads, type UserBufferReads } from './user-buffer-reads.js';

/** Room for the done replies of one turn: 100 structured ones, well above any queue depth seen. */
const DONE_BATCH_BYTES = 2000;
/** What a user-buffer read lands in between payloads: headers, small writes, payload heads. */
const GENERAL_READ_BYTES = 128 * 1024;
/** A payload with at least this much still to come is read straight into its own buffer. */
const DIRECT_READ_MIN = 16 * 1024;

/**
 * Payload bytes announced by WRITE headers and not received yet, over all connections. A
 * payload buffer is taken when the header arrives, so without a bound a few thousand
 * headers promising 32 MiB each would allocate far more than anyone sent. Past it, a
 * WRITE waits in the queue for its bytes, as with 'data' chunks.
 */
export const MAX_ANNOUNCED_BYTES = 128 * 1024 * 1024;
let announcedBytes = 0;

/** Payload bytes announced and not yet received, process-wide (tests, metrics). */
export function announcedPayloadBytes(): number {
  return announcedBytes;
}

/** A WRITE whose header has arrived and whose payload is being gathered into `dest`. */
interface Filling {
  req: NbdRequest;
  dest: Buffer;
  filled: number;
  pooled: boolean;
  /** Its share of announcedBytes. */
  announced: number;
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
  /** Over-long WRITE being discarded: its request and how many payload bytes remain. */
  private draining: { req: NbdRequest; left: number } | undefined;
  private corked = false;
  /** Done replies gathered this turn (see sendDone). */
  private doneBuf: Buffer | null = null;
  private doneLen = 0;
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
  ) {
    this.checked = new CheckedBackend(session.backend, session.structuredReplies, session.baseAllocation);
    this.gather = typeof session.backend.pwritev === 'function';
    socket.on('drain', () => this.maybeResume());
  }

  /** Feed newly arrived bytes. */
  push(chunk: Buffer): void {
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
      return !this.paused;
    }
    this.queue.push(buf.subarray(0, n));
    try {
      this.pump();
    } finally {
      this.queue.ownNewest();
    }
    return !this.paused;
  };

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
    announcedBytes -= f.announced;
    this.dispatch(f.req, f.dest, f.pooled);
  }

  /** Parse and dispatch as many complete requests as are queued. */
  pump(): void {
    while (!this.dead && !this.paused && !this.disconnecting) {
      if (this.filling) {
        if (!this.fill()) return;
        continue;
      }
      if (this.draining) {
        this.draining.left -= this.queue.skip(this.draining.left);
        if (this.draining.left > 0) return;
        const req = this.draining.req;
        this.draining = undefined;
        this.replyError(req, { errno: NBD_EOVERFLOW, message: `write of ${req.length} bytes exceeds the ${MAX_REQUEST_PAYLOAD}-byte maximum; payload discarded` });
        continue;
      }
      if (this.queue.length < REQUEST_HEADER_SIZE) return;
      if (this.queue.peekUInt32(0) !== NBD_REQUEST_MAGIC) return this.violation(`bad request magic 0x${this.queue.peekUInt32(0).toString(16)}`);
      const type = this.queue.peekUInt32(4) & 0xffff;
      const length = this.queue.peekUInt32(24);
      if (type === NBD_CMD_WRITE) {
        if (length > MAX_REQUEST_PAYLOAD) {
          // Over-long WRITE: keep the connection framed by discarding the payload as it
          // arrives (ByteQueue.skip never allocates), then reply EOVERFLOW.
          const parsed = parseRequestHeader(this.queue.take(REQUEST_HEADER_SIZE));
          if (!parsed.ok) return this.violation(parsed.reason);
          this.draining = { req: parsed.req, left: length };
          continue;
        }
        // With user-buffer reads a payload is gathered into its buffer as it comes (fill),
        // unless too much is announced already; with 'data' chunks it waits whole here.
        const missing = REQUEST_HEADER_SIZE + length - this.queue.length;
        if (missing > 0 && !(this.reads && announcedBytes + missing <= MAX_ANNOUNCED_BYTES)) return;
        if (this.reads) {
          const parsed = parseRequestHeader(this.queue.take(REQUEST_HEADER_SIZE));
          if (!parsed.ok) return this.violation(parsed.reason);
          const { dest, pooled } = this.payloadBuffer(length);
          const announced = Math.max(0, missing);
          announcedBytes += announced;
          this.filling = { req: parsed.req, dest, filled: 0, pooled, announced };
          continue;
        }
      }
      const parsed = parseRequestHeader(this.queue.take(REQUEST_HEADER_SIZE));
      if (!parsed.ok) return this.violation(parsed.reason);
      // 'data' chunks: a 1 MiB payload arrives as ~16 socket chunks of 64 KiB; hand the
      // slices to pwritev rather than copying them into one Buffer.
      let payload: Buffer | Buffer[] | undefined;
      if (type === NBD_CMD_WRITE) payload = this.gather && !this.queue.contiguous(length) ? this.queue.takeList(length) : this.queue.take(length);
      this.dispatch(parsed.req, payload);
    }
  }

  /** `pooled`: the payload came from payloadPool.acquire and goes back once the write settles. */
  private dispatch(req: NbdRequest, payload: Buffer | Buffer[] | undefined, pooled = false): void {
    const refusal = this.checked.validate(req.type, req.flags, req.offset, req.length);
    // Asked now, not when the buffer was taken: only a backend that gives this very write's
    // buffer back may have it reused.
    const recycle = pooled && this.session.backend.borrowsWriteBuffers === true;
    if (req.type === NBD_CMD_DISC) {
      this.disconnecting = true;
      this.maybeFinish();
      return;
    }
    if (refusal) {
      if (recycle) payloadPool.release(payload as Buffer);
      this.replyError(req, refusal);
      return;
    }
    const cost = req.type === NBD_CMD_READ || req.type === NBD_CMD_WRITE ? req.length : 0;
    this.begin(cost);
    const fua = (req.flags & NBD_CMD_FLAG_FUA) !== 0;
    const done = (errno: number): void => this.finish(req, errno, cost);
    switch (req.type) {
      case NBD_CMD_READ:
        this.read(req, cost);
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
          if (typeof r === 'number') return this.finish(req, r, 0);
          this.end(0);
          this.send(blockStatusReply(req.handle, BASE_ALLOCATION_ID, r));
        });
        return;
      default:
        this.end(0);
        this.replyError(req, { errno: NBD_EINVAL, message: `unknown command ${req.type}` });
    }
  }

  /** READ: the reply header and the data share one buffer, so the data is never copied. */
  private read(req: NbdRequest, cost: number): void {
    const structured = this.session.structuredReplies;
    const prefix = structured ? STRUCTURED_READ_PREFIX : SIMPLE_REPLY_HEADER_SIZE;
    const buf = Buffer.allocUnsafe(prefix + req.length);
    this.checked.read(buf.subarray(prefix), req.offset).then((errno) => {
      if (errno !== 0) return this.finish(req, errno, cost);
      this.end(cost);
      if (structured) writeOffsetDataPrefix(buf, req.handle, req.offset, req.length);
      else writeSimpleHeader(buf, req.handle, 0);
      this.send(buf);
    });
  }

  private finish(req: NbdRequest, errno: number, cost: number): void {
    this.end(cost);
    if (errno !== 0) this.replyError(req, { errno, message: `command ${req.type} failed` });
    else this.sendDone(req.handle);
  }

  /**
   * Success replies without data are most replies under a write load. Those of one
   * event-loop turn are laid side by side in one small buffer and leave in one socket
   * write, instead of a Buffer and a stream chunk each (fio 4 KiB QD16: the reply path
   * was an eighth of the event loop, most of it per-chunk stream bookkeeping).
   */
  private sendDone(handle: Buffer): void {
    const structured = this.session.structuredReplies;
    if (this.dead || this.socket.destroyed || this.sendsAtOnce()) {
      this.send(structured ? structuredDone(handle) : simpleReply(handle, 0));
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
    this.corkForTurn();
  }

  private flushDone(): void {
    if (this.doneLen > 0 && !this.socket.destroyed) this.socket.write(this.doneBuf!.subarray(0, this.doneLen));
    this.doneBuf = null;
    this.doneLen = 0;
  }

  private replyError(req: NbdRequest, r: Refusal): void {
    this.logger?.debug('nbd request refused', { type: req.type, offset: req.offset, length: req.length, errno: r.errno, why: r.message });
    this.send(this.session.structuredReplies ? structuredError(req.handle, r.errno, r.message) : simpleReply(req.handle, r.errno));
  }

  private send(buf: Buffer): void {
    if (this.dead || this.socket.destroyed) return;
    if (this.sendsAtOnce()) {
      this.socket.write(buf);
      return;
    }
    this.corkForTurn();
    this.socket.write(buf);
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
    if (this.filling) {
      announcedBytes -= this.filling.announced;
      this.filling = undefined;
      if (this.reads) this.aim(null);
    }
  }
}
