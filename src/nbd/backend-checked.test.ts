import { describe, expect, it } from 'vitest';
import type { Backend, Extent } from './backend.js';
import { CheckedBackend, errnoOf } from './backend-checked.js';
import * as C from './constants.js';
import { parseRequestHeader } from './request.js';
import { ErrorCodes, RewindError } from '../core/errors.js';

function backend(over: Partial<Backend['capabilities']> = {}, minimum = 1, extents: Extent[] = []): Backend {
  return {
    size: 1_000_000n,
    capabilities: { readOnly: false, flush: true, fua: true, trim: true, zero: true, multiConn: true, blockStatus: true, cache: true, ...over },
    blockSizes: { minimum, preferred: 4096, maximum: C.MAX_REQUEST_PAYLOAD },
    pread: async () => undefined,
    pwrite: async () => { throw Object.assign(new Error('disk full'), { code: 'ENOSPC' }); },
    flush: async () => undefined,
    trim: async () => undefined,
    zero: async () => undefined,
    blockStatus: async () => extents,
    cache: async () => undefined,
    close: async () => undefined,
  };
}

describe('request header parsing', () => {
  it('parses fields and rejects a bad magic', () => {
    const h = Buffer.alloc(28);
    h.writeUInt32BE(C.NBD_REQUEST_MAGIC, 0);
    h.writeUInt16BE(C.NBD_CMD_FLAG_FUA, 4);
    h.writeUInt16BE(C.NBD_CMD_WRITE, 6);
    h.writeBigUInt64BE(0x1122334455667788n, 8);
    h.writeBigUInt64BE(4096n, 16);
    h.writeUInt32BE(512, 24);
    const p = parseRequestHeader(h);
    expect(p.ok && p.req).toMatchObject({ flags: 1, type: 1, offset: 4096n, length: 512 });
    expect(p.ok && p.req.handle.readBigUInt64BE(0)).toBe(0x1122334455667788n);
    h.writeUInt32BE(0xdeadbeef, 0);
    expect(parseRequestHeader(h).ok).toBe(false);
  });
});

describe('checked backend', () => {
  const c = new CheckedBackend(backend(), true, true);

  it('accepts a valid request', () => {
    expect(c.validate(C.NBD_CMD_READ, 0, 0n, 4096)).toBeUndefined();
    expect(c.validate(C.NBD_CMD_WRITE, C.NBD_CMD_FLAG_FUA, 999_999n, 1)).toBeUndefined();
  });

  it.each([
    ['read past the end', C.NBD_CMD_READ, 0, 999_999n, 2, C.NBD_EINVAL],
    ['write past the end', C.NBD_CMD_WRITE, 0, 999_999n, 2, C.NBD_ENOSPC],
    ['trim past the end', C.NBD_CMD_TRIM, 0, 2_000_000n, 1, C.NBD_ENOSPC],
    ['zero length', C.NBD_CMD_READ, 0, 0n, 0, C.NBD_EINVAL],
    ['over-long read', C.NBD_CMD_READ, 0, 0n, C.MAX_REQUEST_PAYLOAD + 1, C.NBD_EOVERFLOW],
    ['unknown command', 42, 0, 0n, 1, C.NBD_EINVAL],
    ['FUA on read', C.NBD_CMD_READ, C.NBD_CMD_FLAG_FUA, 0n, 1, C.NBD_EINVAL],
    ['fast zero', C.NBD_CMD_WRITE_ZEROES, C.NBD_CMD_FLAG_FAST_ZERO, 0n, 1, C.NBD_ENOTSUP],
    ['offset overflow', C.NBD_CMD_READ, 0, 0xffffffffffffffffn, 1, C.NBD_EINVAL],
  ])('%s → errno', (_label, type, flags, offset, length, errno) => {
    expect(c.validate(type, flags, offset, length)?.errno).toBe(errno);
  });

  it('refuses writes to a read-only export, block status without a context, and misaligned requests', () => {
    expect(new CheckedBackend(backend({ readOnly: true }), true, true).validate(C.NBD_CMD_WRITE, 0, 0n, 1)?.errno).toBe(C.NBD_EPERM);
    expect(new CheckedBackend(backend(), true, false).validate(C.NBD_CMD_BLOCK_STATUS, 0, 0n, 1)?.errno).toBe(C.NBD_EINVAL);
    expect(new CheckedBackend(backend({}, 512), true, true).validate(C.NBD_CMD_READ, 0, 100n, 512)?.errno).toBe(C.NBD_EINVAL);
    expect(new CheckedBackend(backend({}, 512), true, true).validate(C.NBD_CMD_READ, 0, 512n, 512)).toBeUndefined();
  });

  it('maps backend failures to NBD errnos', async () => {
    expect(await c.write(Buffer.alloc(1), 0n, false)).toBe(C.NBD_ENOSPC);
    expect(errnoOf(new RewindError(ErrorCodes.READ_ONLY, 'ro'))).toBe(C.NBD_EPERM);
    expect(errnoOf(new Error('weird'))).toBe(C.NBD_EIO);
  });

  it('clamps block status to the request, merges equal neighbours and honours REQ_ONE', async () => {
    const b = new CheckedBackend(backend({}, 1, [
      { offset: 0n, length: 100n, flags: 0 },
      { offset: 100n, length: 100n, flags: 0 },
      { offset: 200n, length: 1000n, flags: 3 },
    ]), true, true);
    expect(await b.blockStatus(0n, 500, false)).toEqual([{ offset: 0n, length: 200n, flags: 0 }, { offset: 200n, length: 300n, flags: 3 }]);
    expect(await b.blockStatus(0n, 500, true)).toEqual([{ offset: 0n, length: 200n, flags: 0 }]);
  });
});
