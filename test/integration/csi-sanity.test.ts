import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanUpCsiHost, leftovers, startCsiProcess } from '../helpers/csi-driver.js';
import type { RewindProcess } from '../helpers/rewind-process.js';

/**
 * csi-sanity (github.com/kubernetes-csi/csi-test v5.6.0, built with this machine's Go by
 * test/cluster/build-tools.sh) against `rewind csi --mode both`. It is a Go gRPC client
 * that sends the `localhost` :authority kubelet and the sidecars send, the header
 * grpc-js once refused (democratic-csi #164), so its passing is also that proof.
 *
 * Every skip csi-sanity makes is listed here with why: each is a capability the driver
 * does not advertise (yet). A skip not in this list fails the test.
 */
const SKIPS: Record<string, string> = {
  'skipped - Controller Publish, UnpublishVolume not supported': 'local model: the volume is attached by NodeStage on its own node; nothing to attach from the controller (ControllerPublish is for the wrapped model, issue item 3)',
  'skipped - ControllerPublishVolume not supported': 'as above',
  'skipped - ControllerUnpublishVolume not supported': 'as above',
  'skipped - ControllerExpandVolume not supported': 'expansion is not offered: the data path, its spool and the collector fix a volume\'s size at start',
  'skipped - NodeExpandVolume not supported': 'as above',
  'skipped - ControllerGetVolumeHealth not supported': 'health is reported by the node (NodeGetVolumeHealth); the controller cannot see a node\'s data path',
  'skipped - ControllerListVolumeHealth not supported': 'as above',
  'skipped - NodeGetStorageHealth not supported': 'not offered',
  'skipped - ControllerModifyVolume not supported': 'no mutable parameters yet (durability or bandwidth changes go through the ProtectedVolume)',
  'skipped - Modify Volume not supported': 'as above',
  'skipped - Modify volume not supported': 'as above',
  'skipped - CreateSnapshot not supported': 'CSI snapshots as marks (issue item 6) are not built yet; RestorePoints make marks',
  'skipped - DeleteSnapshot not supported': 'as above',
  'skipped - GetSnapshot not supported': 'as above',
  'skipped - ListSnapshots not supported': 'as above',
  'skipped - Snapshot not supported': 'as above',
  'skipped - Volume Cloning not supported': 'CreateVolume from a source is not offered; a VolumeRestore fills a new volume from the collector',
  'skipped - GroupControllerService not supported': 'no group snapshots',
  pending: 'marked pending in csi-sanity itself',
};

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const SIZE = 64 * 1024 * 1024;

function sanityBin(): string {
  const out = execFileSync('bash', [path.join(ROOT, 'test/cluster/build-tools.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 40 * 60_000 });
  return path.join(out.trim().split('\n').pop()!, 'csi-sanity');
}

interface Case {
  name: string;
  status: string;
  skipped?: string;
}

function readJunit(xml: string): Case[] {
  const out: Case[] = [];
  for (const m of xml.matchAll(/<testcase name="([^"]*)"[^>]*status="([^"]*)"[^>]*>([\s\S]*?)<\/testcase>/g)) {
    const skipped = /<skipped message="([^"]*)"/.exec(m[3]!)?.[1];
    out.push({ name: m[1]!.replace(/&#34;/g, '"').replace(/&amp;/g, '&'), status: m[2]!, ...(skipped !== undefined ? { skipped } : {}) });
  }
  return out;
}

describe('csi-sanity (the real Go client) against rewind csi', () => {
  const dirs: string[] = [];
  const procs: RewindProcess[] = [];
  afterAll(async () => {
    for (const p of procs) await p.stop();
    for (const d of dirs) {
      await cleanUpCsiHost(d);
      await fs.rm(d, { recursive: true, force: true });
    }
  });

  for (const accessType of ['mount', 'block'] as const) {
    it(`passes every case it runs for ${accessType} access, skipping only the listed capabilities, and leaves no mount or loop device`, async () => {
      const bin = sanityBin();
      const dir = await fs.mkdtemp(path.join(os.tmpdir(), `rw-sanity-${accessType}-`));
      dirs.push(dir);
      const { proc, endpoint } = await startCsiProcess(dir);
      procs.push(proc);
      const junit = path.join(dir, 'junit.xml');
      const args = [
        `--csi.endpoint=${endpoint}`, `--csi.mountdir=${path.join(dir, 'mnt')}`, `--csi.stagingdir=${path.join(dir, 'stage')}`,
        `--csi.testvolumesize=${SIZE}`, `--csi.testvolumeaccesstype=${accessType}`, `--csi.junitfile=${junit}`, '--ginkgo.no-color',
      ];
      const started = Date.now();
      const run = await new Promise<{ code: number; out: string }>((resolve) => {
        execFile(bin, args, { cwd: dir, timeout: 15 * 60_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr }));
      });
      const cases = readJunit(await fs.readFile(junit, 'utf8'));
      const failed = cases.filter((c) => c.status === 'failed' || c.status === 'panicked');
      const passed = cases.filter((c) => c.status === 'passed');
      const skipped = cases.filter((c) => c.status === 'skipped' || c.status === 'pending');
      console.log(`csi-sanity ${accessType}: ${passed.length} passed, ${failed.length} failed, ${skipped.length} skipped in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      expect(failed.map((c) => c.name), run.out.slice(-4000)).toEqual([]);
      expect(run.code, run.out.slice(-4000)).toBe(0);
      // Identity, CreateVolume/DeleteVolume/ListVolumes/GetCapacity/Validate..., NodeStage..NodeGetVolumeStats.
      expect(passed.length).toBeGreaterThanOrEqual(40);
      const unlisted = skipped.filter((c) => !((c.skipped ?? 'pending') in SKIPS)).map((c) => `${c.name}: ${c.skipped}`);
      expect(unlisted).toEqual([]);
      expect(await leftovers(dir)).toEqual([]);
    });
  }
});
