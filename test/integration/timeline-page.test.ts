import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCodes } from '../../src/core/errors.js';
import { CollectorApi } from '../../src/rpc/collector-api.js';
import { peer, ROOT, sha256File, startRewind, type RewindProcess } from '../helpers/rewind-process.js';

/** Debian's chromium (scripts/setup.sh installs it); playwright-core brings no browser of its own. */
const CHROMIUM = '/usr/bin/chromium';
const OUT = path.join(ROOT, 'test-output', 'timeline');
const SIZE = 4 * 1024 * 1024;
const MiB = 1024 * 1024;
const ADMIN = 'timeline-admin-token-0123456789';
const TOKEN = 'timeline-volume-token-abcdefgh';
const sha = (b: Buffer): string => crypto.createHash('sha256').update(b).digest('hex');
const iso = (sec: number): string => new Date(sec * 1000).toISOString().replace('.000Z', 'Z');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let dir: string;
let collector: RewindProcess;
let serve: RewindProcess;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];
/** The picked instant: after the second write, before the third. */
let pickedSec: number;
const atPicked = Buffer.alloc(SIZE);

async function http(method: string, p: string, body?: unknown): Promise<{ status: number; body: any }> {
  const r = await fetch(collector.info.http + p, body === undefined ? { method } : { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, body: await r.json() };
}

/** A mark "now", asked again while the node still sends its initial copy (refused as not exact then). */
async function markNow(name: string): Promise<void> {
  for (let i = 0; ; i++) {
    const r = await http('POST', '/v1/volumes/data/marks', { name });
    if (r.status === 201) return;
    if (r.body.code !== ErrorCodes.POINT_NOT_EXACT || i > 100) throw new Error(`mark ${name}: ${JSON.stringify(r.body)}`);
    await sleep(100);
  }
}

/** qemu-io writes through the NBD export; its FLUSH at exit returns once the collector holds them (flush-sync). */
async function qemuWrite(pattern: number, offset: number, length: number): Promise<void> {
  await peer('qemu-io', ['-f', 'raw', '-c', `write -P 0x${pattern.toString(16)} ${offset} ${length}`, serve.info.nbd!]);
}

/**
 * Count a canvas's painted pixels (alpha > 0) and those near `rgb`, in the page. Passed as
 * source text: this file is compiled without the DOM's types.
 */
async function canvasPixels(selector: string, rgb: [number, number, number] = [0, 0, 0]): Promise<{ painted: number; matching: number; total: number }> {
  return page.evaluate(`(() => {
    const c = document.querySelector(${JSON.stringify(selector)});
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    const [r, g, b] = ${JSON.stringify(rgb)};
    let painted = 0, matching = 0;
    for (let i = 0; i < d.length; i += 4) {
      if (d[i + 3] > 0) painted++;
      if (Math.abs(d[i] - r) < 24 && Math.abs(d[i + 1] - g) < 24 && Math.abs(d[i + 2] - b) < 24 && d[i + 3] > 200) matching++;
    }
    return { painted, matching, total: d.length / 4 };
  })()`);
}

describe('the timeline page in a real browser, against a collector with real history', () => {
  beforeAll(async () => {
    if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install the Debian package chromium (scripts/setup.sh does)`);
    await fsp.rm(OUT, { recursive: true, force: true });
    await fsp.mkdir(OUT, { recursive: true });
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'rewind-timeline-'));
    await fsp.writeFile(path.join(dir, 'admin'), ADMIN + '\n', { mode: 0o600 });
    await fsp.writeFile(path.join(dir, 'token'), TOKEN + '\n', { mode: 0o600 });
    collector = await startRewind(['collector', '--data', path.join(dir, 'collector'), '--grpc', '127.0.0.1:0', '--http', '127.0.0.1:0',
      '--admin-token-file', path.join(dir, 'admin'), '--allow-plaintext', '--restore-dir', path.join(dir, 'restores')]);
    const api = new CollectorApi({ address: collector.info.grpc!, allowPlaintext: true });
    try {
      await api.registerVolume(ADMIN, 'data', BigInt(SIZE), TOKEN);
    } finally {
      api.close();
    }
    serve = await startRewind(['serve', '--backing', path.join(dir, 'data.img'), '--size', String(SIZE), '--spool', path.join(dir, 'spool'),
      '--listen', `unix:${path.join(dir, 'nbd.sock')}`, '--collector', collector.info.grpc!, '--volume', 'data', '--token-file', path.join(dir, 'token'), '--collector-plaintext']);

    // History: write, mark, write, (the picked second), write, mark.
    await qemuWrite(0xaa, 0, MiB);
    atPicked.fill(0xaa, 0, MiB);
    await markNow('before-upgrade');
    await sleep(1100);
    await qemuWrite(0xbb, MiB / 2, MiB);
    atPicked.fill(0xbb, MiB / 2, MiB / 2 + MiB);
    // The first whole second after the second write; the third is stamped after it.
    pickedSec = Math.ceil(Date.now() / 1000);
    while (Date.now() < pickedSec * 1000 + 200) await sleep(50);
    await qemuWrite(0xcc, 3 * MiB, MiB / 2);
    await markNow('after-upgrade');

    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
    page = await browser.newPage({ viewport: { width: 1280, height: 1100 } });
    page.on('pageerror', (e) => pageErrors.push(`pageerror: ${e.message}`));
    // Failed loads are judged by URL below (the console line names none).
    page.on('console', (m) => { if (m.type() === 'error' && !/^Failed to load resource/.test(m.text())) pageErrors.push(`console: ${m.text()}`); });
    page.on('response', (r) => { if (r.status() >= 400) pageErrors.push(`HTTP ${r.status()} ${new URL(r.url()).pathname}`); });
  });

  afterAll(async () => {
    await browser?.close();
    await serve?.stop();
    await collector?.stop();
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  });

  it('draws the timeline of the volume, with its restore points and window', async () => {
    await page.goto(`${collector.info.http}/ui/?volume=data`);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 15_000 });
    expect(await page.inputValue('#volume')).toBe('data');
    expect(await page.textContent('#f-marks')).toBe('2');
    // Canvas pixels: something is drawn, and the marks' colour is among it.
    const pixels = await canvasPixels('#chart canvas', [0x7c, 0x3a, 0xed]);
    expect(pixels.painted).toBeGreaterThan(pixels.total * 0.01);
    expect(pixels.matching).toBeGreaterThan(50);
    // The write-rate series, from the planner's per-interval counts: every byte written.
    const activity = (await http('GET', '/v1/volumes/data/activity')).body;
    const written = activity.intervals.reduce((a: number, x: { writtenBytes: number }) => a + x.writtenBytes, 0);
    expect(written).toBe(2 * MiB + MiB / 2);
    expect(await page.textContent('#chart-note')).toBe(`${activity.intervals.length} interval${activity.intervals.length === 1 ? '' : 's'} of write activity.`);
    expect((await canvasPixels('#chart canvas', [0x2f, 0x6f, 0xb3])).matching).toBeGreaterThan(200);
    // The planner's simulated lag, overlaid in its colour.
    expect((await canvasPixels('#chart canvas', [0xc2, 0x41, 0x0c])).matching).toBeGreaterThan(50);
    await page.screenshot({ path: path.join(OUT, '1-timeline.png'), fullPage: true });
  });

  it('is usable by keyboard: every control has a name, and Tab reaches the chart, the picker, restore and diff', async () => {
    const unnamed = await page.evaluate(`[...document.querySelectorAll('input, select, button')]
      .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim()).map((e) => e.id)`);
    expect(unnamed).toEqual([]);
    await page.focus('#volume');
    const reached: string[] = [];
    for (let i = 0; i < 20; i++) {
      await page.keyboard.press('Tab');
      reached.push(await page.evaluate('document.activeElement.id'));
    }
    for (const id of ['refresh', 'chart', 'instant', 'minus', 'plus', 'slider', 'mark', 'restore-path', 'restore-start', 'diff-from', 'diff-to', 'diff-start']) expect(reached).toContain(id);
  });

  it('picks an instant to the second (typed, then moved by the arrow keys) and restores it to a file equal to the image at that instant', async () => {
    await page.fill('#instant', iso(pickedSec));
    await page.press('#instant', 'Enter');
    await page.locator('#instant').dispatchEvent('change');
    expect(await page.inputValue('#instant')).toBe(iso(pickedSec));
    await page.focus('#chart');
    await page.keyboard.press('ArrowRight');
    expect(await page.inputValue('#instant')).toBe(iso(pickedSec + 1));
    await page.keyboard.press('ArrowLeft');
    expect(await page.inputValue('#instant')).toBe(iso(pickedSec));
    expect(await page.textContent('#picked')).toContain(iso(pickedSec));

    const target = await page.inputValue('#restore-path');
    expect(target.startsWith(path.join(dir, 'restores') + '/')).toBe(true);
    await page.click('#restore-start');
    await page.waitForSelector('#restore[data-state="done"]', { timeout: 30_000 });
    expect(await page.getAttribute('#restore-progress', 'value')).toBe('100');
    const shown = (await page.textContent('#restore-sha'))!.trim();
    const file = (await page.textContent('#restore-file'))!.trim();
    expect(file).toBe(target);
    const streamed = Buffer.from(await (await fetch(`${collector.info.http}/v1/volumes/data/image?at=${iso(pickedSec)}`)).arrayBuffer());
    expect(sha(streamed)).toBe(sha(atPicked));
    expect(await sha256File(file)).toBe(sha(streamed));
    expect(shown).toBe(sha(streamed));
    await page.screenshot({ path: path.join(OUT, '2-restored.png'), fullPage: true });
  });

  it('picks two marks and shows their diff, as the API computes it', async () => {
    await page.selectOption('#diff-from', 'mark:before-upgrade');
    await page.selectOption('#diff-to', 'mark:after-upgrade');
    await page.click('#diff-start');
    await page.waitForSelector('#diff[data-state="done"]', { timeout: 15_000 });
    const api = await http('GET', '/v1/volumes/data/diff?from=mark:before-upgrade&to=mark:after-upgrade');
    expect(api.status).toBe(200);
    // The second write changed 1 MiB (half of it over the first), the third 512 KiB.
    expect(api.body.changedBytes).toBe(String(MiB + MiB / 2));
    expect(await page.getAttribute('#diff-summary', 'data-changed-bytes')).toBe(api.body.changedBytes);
    expect(await page.getAttribute('#diff-summary', 'data-extents')).toBe(String(api.body.extents.length));
    expect(await page.textContent('#diff-summary')).toContain('1.5 MiB changed');
    const map = await canvasPixels('#diff-map');
    const painted = map.painted / map.total;
    // 1.5 MiB of 4 MiB: about 37 % of the map.
    expect(painted).toBeGreaterThan(0.3);
    expect(painted).toBeLessThan(0.45);
    await page.screenshot({ path: path.join(OUT, '3-diff.png'), fullPage: true });
  });

  it('plans the link: the bandwidth for the target RPO as the planner computes it, the curve drawn, and the RPO of a link typed in', async () => {
    await page.waitForSelector('#plan[data-state="done"]');
    const plan = (await http('GET', '/v1/volumes/data/plan?basis=written&rpo=30s')).body;
    expect(plan.rpo.recommendedBandwidth).toBeGreaterThan(0);
    // As the page writes it: binary units, one decimal under 100.
    const kib = plan.rpo.recommendedBandwidth / 1024;
    const shown = kib < 1024 ? `${kib.toFixed(kib >= 100 ? 0 : 1)} KiB/s` : `${(kib / 1024).toFixed(kib / 1024 >= 100 ? 0 : 1)} MiB/s`;
    expect(await page.textContent('#p-needed')).toBe(`${shown} for 30 s`);
    expect((await canvasPixels('#plan-chart canvas', [0x2f, 0x6f, 0xb3])).matching).toBeGreaterThan(100);
    await page.fill('#plan-link', '10MB/s');
    await page.press('#plan-link', 'Enter');
    // A locator, not waitForFunction: the page's CSP (rightly) refuses string evaluation.
    await page.locator('#p-link', { hasText: /^RPO / }).waitFor({ timeout: 15_000 });
    const withLink = (await http('GET', '/v1/volumes/data/plan?basis=written&rpo=30s&bandwidth=10MB/s')).body;
    expect(withLink.bandwidth.keepsUp).toBe(true);
    expect(await page.textContent('#p-link')).not.toContain('falls behind');
    await page.locator('#plan').screenshot({ path: path.join(OUT, '4-plan.png') });
  });

  it('picks a restore point from the list and restores it; the page logged no error', async () => {
    await page.selectOption('#mark', 'after-upgrade');
    expect(await page.textContent('#picked')).toContain('after-upgrade');
    await page.click('#restore-start');
    await page.waitForSelector('#restore[data-state="done"]', { timeout: 30_000 });
    const byMark = Buffer.from(await (await fetch(`${collector.info.http}/v1/volumes/data/image?at=mark:after-upgrade`)).arrayBuffer());
    expect((await page.textContent('#restore-sha'))!.trim()).toBe(sha(byMark));
    expect(await sha256File((await page.textContent('#restore-file'))!.trim())).toBe(sha(byMark));
    expect(pageErrors).toEqual([]);
  });
});
