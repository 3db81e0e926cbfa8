import type { FileHandle } from 'node:fs/promises';
import { ErrorCodes, RewindError } from '../core/errors.js';
import { RecordKind, type JournalRecord } from './record.js';

const ZEROS = Buffer.alloc(1 << 20);
const PROGRESS_EVERY_NS = 2_000_000_000n;

export interface ReplayResult {
  entries: number;
  bytes: bigint;
  lastSeq: bigint;
  lastTime: bigint | null;
  markFound: boolean;
}

/**
 * Apply journal records, in order, onto an image open for writing. Trims and zeroes write
 * zeros (the image is a plain file: reading back must give zeros, and Node has no
 * fallocate to punch holes). Stops after the mark named `untilMark` when given.
 */
export async function applyRecords(
  fh: FileHandle,
  records: AsyncIterable<JournalRecord> | Iterable<JournalRecord>,
  opts: { size: bigint; untilMark?: string; onProgress?: (entries: number, bytes: bigint) => void },
): Promise<ReplayResult> {
  const res: ReplayResult = { entries: 0, bytes: 0n, lastSeq: 0n, lastTime: null, markFound: false };
  let lastReport = process.hrtime.bigint();
  for await (const r of records) {
    if (r.kind !== RecordKind.Mark && r.offset + BigInt(r.length) > opts.size) {
      throw new RewindError(
        ErrorCodes.OUT_OF_RANGE,
        `journal entry seq ${r.seq} ends at ${r.offset + BigInt(r.length)}, past the image size ${opts.size}; pass the volume's real --size`,
      );
    }
    if (r.kind === RecordKind.Write) {
      await writeAll(fh, r.payload, r.offset);
    } else if (r.kind === RecordKind.Trim || r.kind === RecordKind.Zero) {
      for (let done = 0; done < r.length; ) {
        const n = Math.min(ZEROS.length, r.length - done);
        await writeAll(fh, ZEROS.subarray(0, n), r.offset + BigInt(done));
        done += n;
      }
    }
    res.entries++;
    res.bytes += BigInt(r.length);
    res.lastSeq = r.seq;
    res.lastTime = r.time;
    if (r.kind === RecordKind.Mark && opts.untilMark !== undefined && r.payload.toString('utf8') === opts.untilMark) {
      res.markFound = true;
      break;
    }
    if (opts.onProgress) {
      const now = process.hrtime.bigint();
      if (now - lastReport > PROGRESS_EVERY_NS) {
        lastReport = now;
        opts.onProgress(res.entries, res.bytes);
      }
    }
  }
  return res;
}

async function writeAll(fh: FileHandle, buf: Buffer, offset: bigint): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, Number(offset) + done);
    done += bytesWritten;
  }
}
