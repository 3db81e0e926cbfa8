import fs from 'node:fs/promises';
import { ErrorCodes, RewindError } from '../core/errors.js';
import { flag, need, str, toJson, type Command } from './args.js';
import { api, pointParam, POINT_HELP, POINT_OPTIONS, request, resolveServer, SERVER_HELP, SERVER_OPTIONS } from './server-client.js';

const enc = encodeURIComponent;

export const statusCommand: Command = {
  name: 'status',
  summary: 'Show a volume: durable seq and time, restorable window, marks, journal size, lag',
  usage: `rewind status [--json] [--server URL] [--volume NAME]\n\n${SERVER_HELP}`,
  options: { ...SERVER_OPTIONS, json: { type: 'boolean' } },
  async run(args, io) {
    const t = await resolveServer(args);
    const s = await api<Record<string, unknown>>(t, 'GET', `/v1/volumes/${enc(t.volume)}`);
    io.out(flag(args, 'json') ? toJson(s) + '\n' : humanStatus(s));
    return 0;
  },
};

function humanStatus(s: Record<string, unknown>): string {
  return Object.entries(s)
    .map(([k, v]) => `${k.padEnd(16)} ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
    .join('\n') + '\n';
}

export const markCommand: Command = {
  name: 'mark',
  summary: 'Name an instant of a volume (now, ordered with its writes; or --at a past instant)',
  usage: `rewind mark NAME [--at TIME] [--server URL] [--volume NAME]\n\n${SERVER_HELP}`,
  options: { ...SERVER_OPTIONS, at: { type: 'string' } },
  async run(args, io) {
    const name = args.positionals[0] ?? need(args, 'name', this.name);
    const t = await resolveServer(args);
    const m = await api<Record<string, unknown>>(t, 'POST', `/v1/volumes/${enc(t.volume)}/marks`, { name, ...(str(args, 'at') ? { at: str(args, 'at') } : {}) });
    io.out(toJson(m, false) + '\n');
    return 0;
  },
};

export const diffCommand: Command = {
  name: 'diff',
  summary: 'List the extents that changed between two points (instants, marks or seqs)',
  usage: `rewind diff --from POINT --to POINT [--json] [--server URL] [--volume NAME]

POINT: an instant (RFC 3339, "90s ago", "now"), mark:NAME, or seq:N
${SERVER_HELP}`,
  options: { ...SERVER_OPTIONS, from: { type: 'string' }, to: { type: 'string' }, json: { type: 'boolean' } },
  async run(args, io) {
    const from = need(args, 'from', this.name);
    const to = need(args, 'to', this.name);
    const t = await resolveServer(args);
    const d = await api<{ extents: Array<{ offset: string; length: string; kind: string }>; changedBytes: string }>(
      t,
      'GET',
      `/v1/volumes/${enc(t.volume)}/diff?from=${enc(from)}&to=${enc(to)}`,
    );
    if (flag(args, 'json')) io.out(toJson(d) + '\n');
    else {
      for (const e of d.extents) io.out(`${e.offset}\t${e.length}\t${e.kind}\n`);
      io.out(`${d.extents.length} extent(s), ${d.changedBytes} bytes changed\n`);
    }
    return 0;
  },
};

export const restoreCommand: Command = {
  name: 'restore',
  summary: 'Write a volume as it was at an instant or mark into a file (sparse), with progress',
  usage: `rewind restore (--at TIME | --mark NAME | --seq N) --out FILE [--quiet] [--server URL] [--volume NAME]

${POINT_HELP}
--out FILE     the image to write (replaced if it exists; zero runs are left as holes)
--quiet        no progress lines on stderr (by default one every 2 s and one when done)
${SERVER_HELP}`,
  options: { ...SERVER_OPTIONS, ...POINT_OPTIONS, out: { type: 'string' }, quiet: { type: 'boolean' } },
  async run(args, io) {
    const point = pointParam(args, this.name);
    const out = need(args, 'out', this.name);
    const t = await resolveServer(args);
    const res = await request(t, 'GET', `/v1/volumes/${enc(t.volume)}/image?at=${enc(point)}`);
    const total = BigInt(res.headers.get('content-length') ?? '0');
    const started = Date.now();
    const written = await writeSparse(res, out, (done) => {
      if (!flag(args, 'quiet')) io.err(`restore: ${pct(done, total)} (${done} of ${total} bytes)\n`);
    });
    if (total > 0n && written !== total) {
      throw new RewindError(ErrorCodes.IO, `restore stream ended after ${written} of ${total} bytes; ${out} is incomplete — run the restore again`);
    }
    io.out(toJson({ out, point, bytes: written, seconds: (Date.now() - started) / 1000 }, false) + '\n');
    return 0;
  },
};

function pct(done: bigint, total: bigint): string {
  return total > 0n ? `${Number((done * 1000n) / total) / 10}%` : `${done} bytes`;
}

const PROGRESS_EVERY_MS = 2000;
const ZERO_PAGE = Buffer.alloc(64 * 1024);

/** Stream a raw image response into a fresh file, leaving all-zero 64 KiB runs as holes; `progress` every 2 s and once at the end. */
export async function writeSparse(res: Response, out: string, progress: (done: bigint) => void): Promise<bigint> {
  await fs.rm(out, { force: true });
  const fh = await fs.open(out, 'wx');
  let pos = 0;
  let pending = Buffer.alloc(0);
  let last = Date.now();
  try {
    const flushPiece = async (b: Buffer) => {
      for (let i = 0; i < b.length; i += ZERO_PAGE.length) {
        const piece = b.subarray(i, i + ZERO_PAGE.length);
        if (!(piece.length === ZERO_PAGE.length && piece.equals(ZERO_PAGE))) await fh.write(piece, 0, piece.length, pos + i);
      }
      pos += b.length;
    };
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      pending = pending.length ? Buffer.concat([pending, chunk]) : Buffer.from(chunk);
      const whole = pending.length - (pending.length % ZERO_PAGE.length);
      if (whole > 0) {
        await flushPiece(pending.subarray(0, whole));
        pending = pending.subarray(whole);
      }
      if (Date.now() - last > PROGRESS_EVERY_MS) {
        last = Date.now();
        progress(BigInt(pos));
      }
    }
    if (pending.length) await flushPiece(pending);
    await fh.truncate(pos);
    await fh.sync();
    // The last line says it is all on disk, also for a restore too short for a timed line.
    progress(BigInt(pos));
  } finally {
    await fh.close();
  }
  return BigInt(pos);
}
