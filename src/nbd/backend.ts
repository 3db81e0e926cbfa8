/**
 * The storage an export serves. nbdkit's shape: the server calls one checked wrapper
 * (backend-checked.ts) which validates range and capability and maps errors to NBD
 * codes; filters wrap a Backend and return a Backend, doing their one job and calling
 * `next`. The journaling filter is such a layer.
 */
export interface Extent {
  offset: bigint;
  length: bigint;
  /** NBD base:allocation flags: bit0 HOLE, bit1 ZERO. */
  flags: number;
}

export interface BackendCapabilities {
  readOnly: boolean;
  flush: boolean;
  fua: boolean;
  trim: boolean;
  zero: boolean;
  /** Multi-connection consistent: a flush on any connection covers writes from all. */
  multiConn: boolean;
  blockStatus: boolean;
  cache: boolean;
}

export interface BlockSizes {
  minimum: number;
  preferred: number;
  maximum: number;
}

export interface Backend {
  readonly size: bigint;
  readonly capabilities: BackendCapabilities;
  readonly blockSizes: BlockSizes;
  pread(buf: Buffer, offset: bigint): Promise<void>;
  pwrite(buf: Buffer, offset: bigint, opts: { fua: boolean }): Promise<void>;
  /**
   * Optional gather write of `bufs` back to back at `offset`. The server uses it for WRITE
   * payloads that arrived in several socket chunks, saving the copy into one Buffer. A
   * filter that does not define it (it must not inherit it from `next` by prototype) is
   * called with pwrite and a single Buffer, so filters never miss a write.
   */
  pwritev?(bufs: readonly Buffer[], offset: bigint, opts: { fua: boolean }): Promise<void>;
  /**
   * true: pwrite does not hold on to `buf` once its promise settles (it copied what it
   * keeps, or keeps nothing), so the caller may reuse the memory for the next write.
   * Absent means it may keep it. A filter sets it only when it and `next` both hold.
   */
  readonly borrowsWriteBuffers?: boolean;
  flush(): Promise<void>;
  trim(offset: bigint, length: number, opts: { fua: boolean }): Promise<void>;
  zero(offset: bigint, length: number, opts: { fua: boolean; noHole: boolean }): Promise<void>;
  blockStatus(offset: bigint, length: number): Promise<Extent[]>;
  cache(offset: bigint, length: number): Promise<void>;
  close(): Promise<void>;
}

/** A filter: wraps `next`, overrides what it needs, forwards the rest. */
export type Filter = (next: Backend) => Backend | Promise<Backend>;
