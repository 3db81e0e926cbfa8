import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { documentedMetrics, exposition, sample, sumOf, type DocumentedMetric } from '../helpers/metrics-doc.js';
import { peer, runRewind, startRewind, type RewindProcess } from '../helpers/rewind-process.js';

const SIZE = 8 * 1024 * 1024;
const TOKEN = 'metrics-docs-volume-token-0123456789';

async function scrape(url: string): Promise<string> {
  const r = await fetch(`${url}/metrics`);
  expect(r.status).toBe(200);
  expect(r.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return r.text();
}

/**
 * docs/metrics.md against the /metrics of real processes: each side's rows are exposed
 * with exactly the documented HELP and TYPE, and every rewind_* family a process exposes
 * is documented for that side — so neither the docs nor the code can drift alone.
 */
function expectSide(text: string, docs: Map<string, DocumentedMetric>, sides: Array<'node' | 'collector'>): void {
  const exposed = exposition(text);
  const want = [...docs.values()].filter((d) => sides.some((s) => d.sides.has(s)));
  expect(want.length).toBeGreaterThan(5);
  for (const d of want) {
    expect(exposed.get(d.name), `${d.name} (side ${[...d.sides].join(', ')}) is documented but not exposed`).toBeDefined();
    expect(exposed.get(d.name)!.help, `HELP of ${d.name}`).toBe(d.help);
    expect(exposed.get(d.name)!.type, `TYPE of ${d.name}`).toBe(d.type);
  }
  for (const name of exposed.keys()) {
    if (!name.startsWith('rewind_')) continue;
    const d = docs.get(name);
    expect(d, `${name} is exposed but not in docs/metrics.md`).toBeDefined();
    expect(sides.some((s) => d!.sides.has(s)), `${name} is exposed by a ${sides.join('+')} process but documented for ${[...d!.sides].join(', ')}`).toBe(true);
  }
}

describe('docs/metrics.md: every documented metric on the /metrics of a real collector, node side and rewind up', () => {
  const docs = documentedMetrics();
  let dir: string;
  let collector: RewindProcess;
  let serve: RewindProcess;

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'rewind-metrics-docs-'));
    await fs.writeFile(path.join(dir, 'token'), TOKEN + '\n', { mode: 0o600 });
    // No admin token: the node's first Hello creates the volume.
    collector = await startRewind(['collector', '--data', path.join(dir, 'collector'), '--grpc', '127.0.0.1:0', '--http', '127.0.0.1:0', '--allow-plaintext']);
    serve = await startRewind([
      'serve', '--backing', path.join(dir, 'v.img'), '--size', String(SIZE), '--spool', path.join(dir, 'spool'), '--spool-max', '64M',
      '--listen', `unix:${path.join(dir, 'nbd.sock')}`, '--http', '127.0.0.1:0',
      '--collector', collector.info.grpc!, '--volume', 'mv', '--token-file', path.join(dir, 'token'), '--collector-plaintext',
    ]);
  });
  afterAll(async () => {
    await serve?.stop();
    await collector?.stop();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('lists each metric once, in the Prometheus naming conventions', () => {
    expect(docs.size).toBeGreaterThanOrEqual(30);
    for (const d of docs.values()) {
      expect(d.name).toMatch(/^rewind_[a-z0-9_]+$/);
      if (d.type === 'counter') expect(d.name, `${d.name} is a counter`).toMatch(/_total$/);
      else expect(d.name, `${d.name} is a ${d.type}`).not.toMatch(/_total$/);
      if (d.type === 'histogram') expect(d.name).toMatch(/_seconds$/);
      expect(d.help.length).toBeGreaterThan(10);
    }
  });

  it('node side (rewind serve --http) and collector (rewind collector) expose their rows, with values from real writes, a restore and a scrub', async () => {
    // qemu-io FLUSHes at exit; flush-sync makes that FLUSH wait for the collector.
    await peer('qemu-io', ['-f', 'raw', '-c', 'write -P 0x5a 0 1M', '-c', 'write -z 1M 64k', '-c', 'discard 2M 64k', serve.info.nbd!]);
    const image = await fetch(`${collector.info.http}/v1/volumes/mv/image?at=now`);
    expect(image.status).toBe(200);
    expect((await image.arrayBuffer()).byteLength).toBe(SIZE);
    const scrub = await fetch(`${collector.info.http}/v1/volumes/mv/scrub`, { method: 'POST' });
    expect(((await scrub.json()) as { ok: boolean }).ok).toBe(true);
    await new Promise((r) => setTimeout(r, 1200)); // one lag sample

    const node = await scrape(serve.info.http!);
    expectSide(node, docs, ['node']);
    expect(sample(node, 'rewind_write_ops_total{volume="mv",op="write"}')).toBeGreaterThanOrEqual(1);
    expect(sample(node, 'rewind_write_bytes_total{volume="mv",op="write"}')).toBeGreaterThanOrEqual(1 << 20);
    expect(sample(node, 'rewind_write_bytes_total{volume="mv",op="zero"}')).toBe(65536);
    expect(sample(node, 'rewind_write_bytes_total{volume="mv",op="trim"}')).toBe(65536);
    expect(sample(node, 'rewind_spool_capacity_bytes{volume="mv"}')).toBe(64 * 1024 * 1024);
    expect(sample(node, 'rewind_shipper_connected{volume="mv"}')).toBe(1);
    expect(sample(node, 'rewind_durable_seq{volume="mv"}')).toBeGreaterThanOrEqual(3);
    expect(sample(node, 'rewind_spool_state{volume="mv",state="ok"}')).toBe(1);
    expect(sample(node, 'rewind_shipping_lag_seconds_count{volume="mv"}')).toBeGreaterThanOrEqual(1);
    expect(sample(node, 'rewind_shipper_bytes_sent_total{volume="mv"}')).toBeGreaterThan(1 << 20);

    const coll = await scrape(collector.info.http!);
    expectSide(coll, docs, ['collector']);
    expect(sample(coll, 'rewind_entries_appended_total{volume="mv"}')).toBeGreaterThanOrEqual(3);
    expect(sample(coll, 'rewind_bytes_appended_total{volume="mv"}')).toBeGreaterThanOrEqual(1 << 20);
    expect(sample(coll, 'rewind_collector_ingest_bytes_total')).toBeGreaterThan(1 << 20);
    expect(sample(coll, 'rewind_collector_fsync_duration_seconds_count')).toBeGreaterThanOrEqual(1);
    expect(sample(coll, 'rewind_collector_disk_free_bytes')).toBeGreaterThan(0);
    expect(sample(coll, 'rewind_collector_disk_size_bytes')).toBeGreaterThanOrEqual(sample(coll, 'rewind_collector_disk_free_bytes')!);
    expect(sample(coll, 'rewind_collector_volumes')).toBe(1);
    expect(sample(coll, 'rewind_restores_total{volume="mv",kind="image",result="ok"}')).toBe(1);
    expect(sample(coll, 'rewind_restore_duration_seconds_count{volume="mv",kind="image"}')).toBe(1);
    expect(sample(coll, 'rewind_restore_bytes_total{volume="mv"}')).toBeGreaterThan(0);
    expect(sample(coll, 'rewind_scrubs_total{volume="mv"}')).toBe(1);
    expect(sample(coll, 'rewind_scrub_problems{volume="mv"}')).toBe(0);
    expect(sample(coll, 'rewind_journal_bytes{volume="mv"}')).toBeGreaterThan(1 << 20);
    expect(sample(coll, 'rewind_restorable_window_seconds{volume="mv"}')).toBeGreaterThan(0);
    expect(sample(coll, 'rewind_durable_seq{volume="mv"}')).toBe(sample(node, 'rewind_durable_seq{volume="mv"}'));
  });

  it('rewind collector refuses a --scrub-every so short that scrubs would never end', async () => {
    const r = await runRewind(['collector', '--data', path.join(dir, 'c2'), '--grpc', '127.0.0.1:0', '--http', '127.0.0.1:0', '--allow-plaintext', '--scrub-every', '5s']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--scrub-every must be 0 \(off\) or at least 1m/);
  });

  it('rewind up exposes both sides in one /metrics', async () => {
    const up = await startRewind(['up', '--data', path.join(dir, 'up'), '--size', String(SIZE), '--nbd', `unix:${path.join(dir, 'up.sock')}`, '--http', '127.0.0.1:0']);
    try {
      await peer('qemu-io', ['-f', 'raw', '-c', 'write -P 0x11 0 64k', up.info.nbd!]);
      const text = await scrape(up.info.http!);
      expectSide(text, docs, ['node', 'collector']);
      expect(sample(text, 'rewind_write_ops_total{volume="vol0",op="write"}')).toBeGreaterThanOrEqual(1);
      expect(sumOf(text, 'rewind_entries_appended_total', ['volume="vol0"'])).toBeGreaterThanOrEqual(1);
      // Only the collector's journal syncs are in its fsync histogram, not the spool's.
      expect(sample(text, 'rewind_collector_fsync_duration_seconds_count')).toBeGreaterThanOrEqual(1);
    } finally {
      await up.stop();
    }
  });
});
