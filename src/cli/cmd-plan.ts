import { parsePlanParams } from '../collector/planner/params.js';
import { ErrorCodes, RewindError } from '../core/errors.js';
import { formatNs } from '../core/hlc.js';
import { flag, str, toJson, type Command, type ParsedArgs } from './args.js';
import { api, resolveServer, type ServerTarget } from './server-client.js';

const enc = encodeURIComponent;

/** The plan as the collector's HTTP API sends it (docs/planner.md); bigints arrive as strings. */
interface Rates { peak: number; p95: number; mean: number }
interface PlanJson {
  volume?: string;
  volumes?: string[];
  window: { from: string; to: string; intervalNs: string; intervals: number; seconds: number };
  basis: string;
  bytes: { written: number; unique: number; uniqueByInterval: number; coalescingSavings: number; savingsRatio: number; approximate: boolean };
  rates: { written: Rates; unique: Rates };
  rpo?: { targetSeconds: number; recommendedBandwidth: number; maxLagSeconds: number };
  links?: { linkBandwidth: number; count: number };
  bandwidth?: { bandwidth: number; achievedRpoSeconds: number; keepsUp: boolean; finalQueuedBytes: number };
  resync?: { outageSeconds: number; intervals: number; resyncBytes: number; backlogBytes: number; bandwidth?: number; seconds?: number | null; worstStart: string };
  warnings: string[];
  perVolume?: PlanJson[];
}

export const planCommand: Command = {
  name: 'plan',
  summary: 'Plan the link from a volume\'s real writes: unique vs written bytes, rates, bandwidth for an RPO, links, resync',
  usage: `rewind plan VOLUME... [--collector URL] [--from POINT] [--to POINT] [--rpo DURATION]
            [--link SPEED] [--bandwidth SPEED] [--outage DURATION] [--basis written|unique] [--json]

One VOLUME plans that volume; several plan them as a group sharing one link (bytes add up
per interval; distinct bytes are counted per volume and summed).

--collector URL    the collector's HTTP API (default: $REWIND_SERVER, else the endpoints.json
                   of a \`rewind up\` in --data, default ./rewind-data)
--data DIR         where to look for that endpoints.json
--from, --to       the window: an instant (RFC 3339, "2h ago", "now", ns since the epoch) or,
                   for one volume, mark:NAME (default: the whole retained history)
--rpo DURATION     target RPO (30s, 5m, 1h30m; > 0): the least bandwidth under which the
                   simulated shipping lag never exceeds it
--link SPEED       speed of one link, with --rpo: how many such links that bandwidth needs
--bandwidth SPEED  a link you have: the RPO it achieves over the window
--outage DURATION  an outage: the worst resync after one that long (bytes to send, and time
                   at --bandwidth, else at the bandwidth --rpo needs)
--basis            what the link carries: written (every write; default) or unique (each
                   interval's distinct bytes: shipping with coalescing)
--json             the collector's JSON answer, lag curves included

SPEED: bits (100Mbit, 1Gbps, 10Mb) or bytes per second (50MB/s, 64MiB/s, a bare number).
Exit status: 0 planned, 1 the collector refused or failed (e.g. REWIND_ERR_NOT_FOUND for an
unknown volume), 2 bad arguments (REWIND_ERR_INVALID_ARGUMENT).`,
  options: {
    collector: { type: 'string' },
    data: { type: 'string' },
    from: { type: 'string' },
    to: { type: 'string' },
    rpo: { type: 'string' },
    link: { type: 'string' },
    bandwidth: { type: 'string' },
    outage: { type: 'string' },
    basis: { type: 'string' },
    json: { type: 'boolean' },
  },
  async run(args, io) {
    const volumes = args.positionals;
    if (volumes.length === 0) throw new RewindError(ErrorCodes.INVALID_ARGUMENT, 'name at least one VOLUME; see `rewind plan --help`');
    const query: Record<string, string> = {};
    for (const k of ['from', 'to', 'rpo', 'link', 'bandwidth', 'outage', 'basis'] as const) {
      const v = str(args, k);
      if (v !== undefined) query[k] = v;
    }
    // Checked here as the collector checks them, so a typo fails before any request.
    parsePlanParams(query);
    if (volumes.length > 1 && [query.from, query.to].some((b) => b?.trim().startsWith('mark:'))) {
      throw new RewindError(ErrorCodes.INVALID_ARGUMENT, 'a mark names a point of one volume; give a group\'s --from/--to as instants');
    }
    const t = await target(args);
    const qs = Object.entries(query).map(([k, v]) => `${k}=${enc(v)}`).join('&');
    const p = volumes.length === 1
      ? await api<PlanJson>(t, 'GET', `/v1/volumes/${enc(volumes[0]!)}/plan${qs ? `?${qs}` : ''}`)
      : await api<PlanJson>(t, 'GET', `/v1/plan?volumes=${volumes.map(enc).join(',')}${qs ? `&${qs}` : ''}`);
    io.out(flag(args, 'json') ? toJson(p) + '\n' : renderPlan(p));
    return 0;
  },
};

async function target(args: ParsedArgs): Promise<ServerTarget> {
  const url = str(args, 'collector');
  if (url !== undefined) {
    if (!/^https?:\/\//.test(url)) throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `--collector "${url}" is not an HTTP URL; give the collector's HTTP API, e.g. http://127.0.0.1:8080`);
    return { url: url.replace(/\/$/, ''), volume: '' };
  }
  return resolveServer(args);
}

/** The plan as a table a person reads at a glance. */
export function renderPlan(p: PlanJson): string {
  const rows: Array<[string, string]> = [];
  const who = p.volume !== undefined ? `volume ${p.volume}` : `group ${p.volumes!.join(', ')}`;
  rows.push([who, `${formatNs(BigInt(p.window.from))} … ${formatNs(BigInt(p.window.to))} (${p.window.intervals} × ${Number(BigInt(p.window.intervalNs)) / 1e9} s)`]);
  rows.push(['written', `${bytes(p.bytes.written)}`]);
  rows.push(['unique', `${bytes(p.bytes.unique)} over the window, ${bytes(p.bytes.uniqueByInterval)} summed per interval${p.bytes.approximate ? ' (upper bound)' : ''}`]);
  rows.push(['coalescing saves', `${bytes(p.bytes.coalescingSavings)} (${(p.bytes.savingsRatio * 100).toFixed(1)} %)`]);
  rows.push(['written rate', rateRow(p.rates.written)]);
  rows.push(['unique rate', rateRow(p.rates.unique)]);
  if (p.rpo) rows.push([`bandwidth for RPO ${secs(p.rpo.targetSeconds)}`, `${rate(p.rpo.recommendedBandwidth)} (${p.basis}); max lag at it ${secs(p.rpo.maxLagSeconds)}`]);
  if (p.links) rows.push([`links of ${rate(p.links.linkBandwidth)}`, String(p.links.count)]);
  if (p.bandwidth) {
    const b = p.bandwidth;
    rows.push([`RPO at ${rate(b.bandwidth)}`, `${secs(b.achievedRpoSeconds)}${b.keepsUp ? '' : ` — below the mean rate: the lag keeps growing (${bytes(b.finalQueuedBytes)} queued at the end)`}`]);
  }
  if (p.resync) {
    const r = p.resync;
    const time = r.bandwidth === undefined ? 'give --bandwidth or --rpo for the time' : r.seconds === null || r.seconds === undefined ? `never catches up at ${rate(r.bandwidth)}` : `${secs(r.seconds)} at ${rate(r.bandwidth)}`;
    rows.push([`resync after ${secs(r.outageSeconds)}`, `${bytes(r.resyncBytes)} to send (${bytes(r.backlogBytes)} written); ${time}; worst outage from ${formatNs(BigInt(r.worstStart))}`]);
  }
  const width = Math.max(...rows.map((r) => r[0].length));
  let out = rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n') + '\n';
  for (const v of p.perVolume ?? []) {
    out += `  ${v.volume}: written ${bytes(v.bytes.written)}, unique ${bytes(v.bytes.unique)}, peak ${rate(v.rates.written.peak)}${v.rpo ? `, alone needs ${rate(v.rpo.recommendedBandwidth)}` : ''}\n`;
  }
  for (const w of p.warnings) out += `warning: ${w}\n`;
  return out;
}

const rateRow = (r: Rates) => `peak ${rate(r.peak)}, p95 ${rate(r.p95)}, mean ${rate(r.mean)}`;

function bytes(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < u.length - 1) (v /= 1024), i++;
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${u[i]}`;
}

/** Bytes per second, with the bits per second links are sold in. */
function rate(bps: number): string {
  const bits = bps * 8;
  const u = ['bit/s', 'kbit/s', 'Mbit/s', 'Gbit/s', 'Tbit/s'];
  let i = 0;
  let v = bits;
  while (v >= 1000 && i < u.length - 1) (v /= 1000), i++;
  return `${bytes(Math.round(bps * 10) / 10)}/s (${v.toFixed(v < 10 && i > 0 ? 2 : 1)} ${u[i]})`;
}

function secs(s: number): string {
  if (!Number.isFinite(s)) return '∞';
  if (s < 60) return `${Number(s.toFixed(3))} s`;
  const whole = Math.round(s);
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const r = whole % 60;
  return `${h > 0 ? `${h}h` : ''}${m > 0 || h > 0 ? `${m}m` : ''}${r}s`;
}
