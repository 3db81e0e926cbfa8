import type { AppendRequestMsg, BatchMsg, EntryMsg } from './messages.js';

/**
 * Hand codec for the one hot message, AppendRequest{batch} (proto/rewind/v1alpha1/
 * collector.proto: AppendRequest.batch = 2, Batch.entries = 1, Entry fields 1–8). Going
 * through protobufjs's object conversion cost the collector about a tenth of its CPU at
 * 300 MiB/s (64-bit fields round-trip through Long and decimal strings) and the shipper an
 * extra copy of every payload. Everything else (Hello, and any AppendRequest this decoder
 * does not recognise) goes through the generic codec given as `fallback`; the conformance
 * test (append-codec.test.ts) checks both directions against protobufjs.
 *
 * Decoded 64-bit fields are bigints (messages.ts allows it for Entry); payloads are views
 * into the received message, never copies.
 */

const WT_VARINT = 0;
const WT_I64 = 1;
const WT_LEN = 2;
const WT_I32 = 5;

const TAG_BATCH = (2 << 3) | WT_LEN;
const TAG_ENTRY = (1 << 3) | WT_LEN;
const TWO32 = 0x1_0000_0000;

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

const SAFE = BigInt(Number.MAX_SAFE_INTEGER);

function u64Size(v: bigint): number {
  return v < SAFE ? varintSize(Number(v)) : Math.ceil(Math.max(1, v.toString(2).length) / 7);
}

function writeVarint(buf: Buffer, pos: number, n: number): number {
  while (n >= 0x80) {
    buf[pos++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[pos++] = n;
  return pos;
}

function writeU64(buf: Buffer, pos: number, v: bigint): number {
  if (v < SAFE) return writeVarint(buf, pos, Number(v));
  while (v >= 0x80n) {
    buf[pos++] = Number(v & 0x7fn) | 0x80;
    v >>= 7n;
  }
  buf[pos++] = Number(v);
  return pos;
}

const big = (v: EntryMsg['seq']): bigint => (typeof v === 'bigint' ? v : BigInt(v));

function entrySize(e: EntryMsg): number {
  const p = e.payload?.length ?? 0;
  return (
    1 + u64Size(big(e.seq)) +
    1 + u64Size(big(e.time)) +
    1 + varintSize(e.kind) +
    1 + varintSize(e.flags) +
    1 + u64Size(big(e.offset)) +
    1 + varintSize(e.length) +
    1 + varintSize(p) + p +
    1 + varintSize(e.crc >>> 0)
  );
}

/** AppendRequest{batch} → wire bytes, with each payload copied exactly once. */
export function encodeBatchRequest(batch: BatchMsg): Buffer {
  const sizes = batch.entries.map(entrySize);
  let batchLen = 0;
  for (const s of sizes) batchLen += 1 + varintSize(s) + s;
  const buf = Buffer.allocUnsafe(1 + varintSize(batchLen) + batchLen);
  let pos = writeVarint(buf, 0, TAG_BATCH);
  pos = writeVarint(buf, pos, batchLen);
  batch.entries.forEach((e, i) => {
    pos = writeVarint(buf, pos, TAG_ENTRY);
    pos = writeVarint(buf, pos, sizes[i]!);
    buf[pos++] = (1 << 3) | WT_VARINT;
    pos = writeU64(buf, pos, big(e.seq));
    buf[pos++] = (2 << 3) | WT_VARINT;
    pos = writeU64(buf, pos, big(e.time));
    buf[pos++] = (3 << 3) | WT_VARINT;
    pos = writeVarint(buf, pos, e.kind);
    buf[pos++] = (4 << 3) | WT_VARINT;
    pos = writeVarint(buf, pos, e.flags);
    buf[pos++] = (5 << 3) | WT_VARINT;
    pos = writeU64(buf, pos, big(e.offset));
    buf[pos++] = (6 << 3) | WT_VARINT;
    pos = writeVarint(buf, pos, e.length);
    const payload = e.payload ?? Buffer.alloc(0);
    buf[pos++] = (7 << 3) | WT_LEN;
    pos = writeVarint(buf, pos, payload.length);
    pos += payload.copy(buf, pos);
    buf[pos++] = (8 << 3) | WT_VARINT;
    pos = writeVarint(buf, pos, e.crc >>> 0);
  });
  return buf;
}

class Malformed extends Error {}

class Reader {
  constructor(readonly buf: Buffer, public pos: number, readonly end: number) {}

  /** A varint as a number; exact up to 2^53, which every 32-bit field and length is. */
  num(): number {
    let n = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new Malformed('truncated varint');
      const b = this.buf[this.pos++]!;
      n += (b & 0x7f) * mul;
      if (b < 0x80) return n;
      mul *= 128;
    }
    throw new Malformed('varint longer than 10 bytes');
  }

  /** A uint64 varint, exact. */
  u64(): bigint {
    const start = this.pos;
    const n = this.num();
    if (Number.isSafeInteger(n)) return BigInt(n);
    let v = 0n;
    let shift = 0n;
    for (let p = start; p < this.pos; p++, shift += 7n) v |= BigInt(this.buf[p]! & 0x7f) << shift;
    return v & 0xffff_ffff_ffff_ffffn;
  }

  /** uint32 fields are varints that a writer may have emitted as 64-bit values; keep the low 32 bits, like protobufjs. */
  u32(): number {
    const start = this.pos;
    const n = this.num();
    if (Number.isSafeInteger(n)) return n % TWO32;
    this.pos = start;
    return Number(this.u64() & 0xffff_ffffn);
  }

  sub(): Reader {
    const len = this.num();
    if (len > this.end - this.pos) throw new Malformed('length-delimited field runs past its message');
    const r = new Reader(this.buf, this.pos, this.pos + len);
    this.pos += len;
    return r;
  }

  skip(wireType: number): void {
    switch (wireType) {
      case WT_VARINT: this.num(); return;
      case WT_I64: this.pos += 8; break;
      case WT_LEN: this.sub(); return;
      case WT_I32: this.pos += 4; break;
      default: throw new Malformed(`wire type ${wireType}`);
    }
    if (this.pos > this.end) throw new Malformed('fixed-width field runs past its message');
  }

  get done(): boolean {
    return this.pos >= this.end;
  }
}

function decodeEntry(r: Reader): EntryMsg {
  const e: EntryMsg = { seq: 0n, time: 0n, kind: 0, flags: 0, offset: 0n, length: 0, payload: EMPTY, crc: 0 };
  while (!r.done) {
    const tag = r.num();
    const field = Math.floor(tag / 8);
    const wt = tag & 7;
    if (field === 7 && wt === WT_LEN) {
      const p = r.sub();
      e.payload = r.buf.subarray(p.pos, p.end);
    } else if (wt !== WT_VARINT || field < 1 || field > 8) {
      r.skip(wt);
    } else if (field === 1) e.seq = r.u64();
    else if (field === 2) e.time = r.u64();
    else if (field === 5) e.offset = r.u64();
    else {
      const v = r.u32();
      if (field === 3) e.kind = v;
      else if (field === 4) e.flags = v;
      else if (field === 6) e.length = v;
      else e.crc = v;
    }
  }
  return e;
}

const EMPTY = Buffer.alloc(0);

/**
 * Wire bytes → AppendRequest. A message whose only top-level field is `batch` is decoded
 * here; anything else (Hello, or a form this codec does not expect) by `fallback`.
 * Throws on malformed input, which grpc-js turns into an INTERNAL status for the stream.
 */
export function decodeAppendRequest(buf: Buffer, fallback: (b: Buffer) => AppendRequestMsg): AppendRequestMsg {
  if (buf.length === 0 || buf[0] !== TAG_BATCH) return fallback(buf);
  try {
    const top = new Reader(buf, 0, buf.length);
    const entries: EntryMsg[] = [];
    let seenBatch = false;
    while (!top.done) {
      const tag = top.num();
      if (tag !== TAG_BATCH) return fallback(buf);
      // Repeated occurrences of an embedded message merge (protobuf rule): entries append.
      const b = top.sub();
      seenBatch = true;
      while (!b.done) {
        const t = b.num();
        if (t === TAG_ENTRY) entries.push(decodeEntry(b.sub()));
        else b.skip(t & 7);
      }
    }
    if (!seenBatch) return fallback(buf);
    return { msg: 'batch', batch: { entries } };
  } catch (err) {
    if (err instanceof Malformed) throw new Error(`malformed AppendRequest: ${err.message}`);
    throw err;
  }
}
