/**
 * The spool's dirty bitmap (DESIGN §1, US 5907672's "dirty sector table"): when the spool
 * is full under the 'dirty-bitmap' policy, a write is not journaled; its blocks are marked
 * here and later resent from the backing volume.
 *
 * File layout (little-endian; then a CRC32C trailer added by writeFileAtomic):
 *   0  8 magic "RWNDDBM1" | 8 4 version 1 | 12 1 clean | 13 3 zero | 16 4 blockSize
 *   20 4 zero | 24 8 volumeSize | 32 8 blocks | 40 … bits (bit i of byte i>>3 = block i)
 * `clean` = 0 means marks were added after this copy was written (it is a lower bound,
 * not the truth): a restart that finds clean = 0 must do a full resync.
 */
const MAGIC = Buffer.from('RWNDDBM1', 'latin1');
const HEADER = 40;
/** Resend extents are capped so each fits one NBD-sized read (32 MiB). */
export const MAX_DIRTY_EXTENT = 32 * 1024 * 1024;

export interface Extent {
  offset: bigint;
  length: number;
}

export class DirtyBitmap {
  readonly blocks: number;
  private bits: Uint8Array;
  /** Blocks marked since the last extents() call: clear() must not lose them. */
  private remarked: Uint8Array;
  private _count = 0;
  /** Marks or clears since the last save. */
  changed = false;

  constructor(readonly volumeSize: bigint, readonly blockSize: number) {
    if (!Number.isInteger(blockSize) || blockSize < 512 || (blockSize & (blockSize - 1)) !== 0) {
      throw new RangeError(`dirty bitmap block size ${blockSize} must be a power of two ≥ 512`);
    }
    this.blocks = Number((volumeSize + BigInt(blockSize) - 1n) / BigInt(blockSize));
    this.bits = new Uint8Array(Math.ceil(this.blocks / 8));
    this.remarked = new Uint8Array(this.bits.length);
  }

  /** Blocks currently dirty. */
  get count(): number {
    return this._count;
  }

  mark(offset: bigint, length: number): void {
    if (length <= 0) return;
    const bs = BigInt(this.blockSize);
    const first = Number(offset / bs);
    const last = Math.min(this.blocks - 1, Number((offset + BigInt(length) - 1n) / bs));
    for (let b = first; b <= last; b++) {
      const m = 1 << (b & 7);
      if ((this.bits[b >> 3] & m) === 0) {
        this.bits[b >> 3] |= m;
        this._count++;
      }
      this.remarked[b >> 3] |= m;
    }
    this.changed = true;
  }

  /** Dirty runs as byte extents (block aligned, clipped at the volume end, ≤ 32 MiB each). */
  extents(): Extent[] {
    this.remarked.fill(0);
    const out: Extent[] = [];
    const per = Math.max(1, Math.floor(MAX_DIRTY_EXTENT / this.blockSize));
    let b = 0;
    while (b < this.blocks) {
      if (this.bits[b >> 3] === 0 && (b & 7) === 0) {
        b += 8;
        continue;
      }
      if ((this.bits[b >> 3] & (1 << (b & 7))) === 0) {
        b++;
        continue;
      }
      const start = b;
      while (b < this.blocks && b - start < per && (this.bits[b >> 3] & (1 << (b & 7))) !== 0) b++;
      const off = BigInt(start) * BigInt(this.blockSize);
      let end = BigInt(b) * BigInt(this.blockSize);
      if (end > this.volumeSize) end = this.volumeSize;
      out.push({ offset: off, length: Number(end - off) });
    }
    return out;
  }

  /**
   * Clear the blocks fully covered by `extents` (a block cut by the volume end counts as
   * covered when the extent reaches the end), except blocks marked again since the last
   * extents() call: their newest data may not be in what was resent.
   */
  clear(extents: Extent[]): void {
    const bs = BigInt(this.blockSize);
    for (const e of extents) {
      const end = e.offset + BigInt(e.length);
      const first = Number((e.offset + bs - 1n) / bs);
      const lastExcl = end >= this.volumeSize ? this.blocks : Number(end / bs);
      for (let b = first; b < lastExcl; b++) {
        const m = 1 << (b & 7);
        if ((this.bits[b >> 3] & m) !== 0 && (this.remarked[b >> 3] & m) === 0) {
          this.bits[b >> 3] &= ~m;
          this._count--;
          this.changed = true;
        }
      }
    }
  }

  encode(clean: boolean): Buffer {
    const b = Buffer.alloc(HEADER + this.bits.length);
    MAGIC.copy(b, 0);
    b.writeUInt32LE(1, 8);
    b.writeUInt8(clean ? 1 : 0, 12);
    b.writeUInt32LE(this.blockSize, 16);
    b.writeBigUInt64LE(this.volumeSize, 24);
    b.writeBigUInt64LE(BigInt(this.blocks), 32);
    b.set(this.bits, HEADER);
    return b;
  }

  /** null when the body does not describe this volume/block size (treated as untrustworthy). */
  static decode(body: Buffer, volumeSize: bigint, blockSize: number): { bitmap: DirtyBitmap; clean: boolean } | null {
    if (body.length < HEADER || !body.subarray(0, 8).equals(MAGIC) || body.readUInt32LE(8) !== 1) return null;
    if (body.readUInt32LE(16) !== blockSize || body.readBigUInt64LE(24) !== volumeSize) return null;
    const bm = new DirtyBitmap(volumeSize, blockSize);
    if (body.readBigUInt64LE(32) !== BigInt(bm.blocks) || body.length !== HEADER + bm.bits.length) return null;
    bm.bits.set(body.subarray(HEADER));
    for (let i = 0; i < bm.bits.length; i++) {
      let v = bm.bits[i];
      while (v) {
        v &= v - 1;
        bm._count++;
      }
    }
    return { bitmap: bm, clean: body.readUInt8(12) === 1 };
  }
}
