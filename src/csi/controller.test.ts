import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../core/logger.js';
import { ControllerState } from './controller-state.js';
import { controllerService, DEFAULT_SIZE } from './controller.js';
import { CsiError } from './csi-error.js';
import { TOPOLOGY_KEY } from './proto.js';
import { socketOfEndpoint } from './server.js';
import { volumeIdFor } from './volume-id.js';
import { VolumeLocks } from './volume-locks.js';

const MOUNT = { access_mode: { mode: 'SINGLE_NODE_WRITER' }, mount: { fs_type: 'ext4' } };
const statusOf = (p: Promise<unknown>) => p.then(() => 'ok', (e: CsiError) => grpc.status[e.status]);

describe('controller service (local model)', () => {
  let dir: string;
  let staged: Set<string>;
  let freed: string[];
  let svc: ReturnType<typeof controllerService>;
  const locks = new VolumeLocks();
  beforeEach(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'rw-csi-ctl-'));
    staged = new Set();
    freed = [];
    const state = await ControllerState.open(dir);
    svc = controllerService({ state, locks, stateDir: dir, nodeId: 'node-a', logger: silentLogger, local: { isStaged: async (id) => staged.has(id), free: async (id) => void freed.push(id) } });
  });
  afterEach(() => fsp.rm(dir, { recursive: true, force: true }));

  it('places a volume on the preferred node, rounds its size up to 4 KiB, and answers the same on a retry', async () => {
    const req = { name: 'pvc-1', capacity_range: { required_bytes: '1000000' }, volume_capabilities: [MOUNT], accessibility_requirements: { preferred: [{ segments: { [TOPOLOGY_KEY]: 'node-b' } }] } };
    const a = (await svc.CreateVolume!(req)) as { volume: Record<string, unknown> };
    expect(a.volume).toMatchObject({ volume_id: 'pvc-1', capacity_bytes: String(Math.ceil(1_000_000 / 4096) * 4096), accessible_topology: [{ segments: { [TOPOLOGY_KEY]: 'node-b' } }] });
    expect(await svc.CreateVolume!(req)).toEqual(a);
    // Recorded durably: a new controller on the same state dir knows it.
    const again = controllerService({ state: await ControllerState.open(dir), locks, stateDir: dir, logger: silentLogger });
    expect(((await again.ListVolumes!({})) as { entries: unknown[] }).entries).toHaveLength(1);
  });

  it('refuses what it cannot be: another size under the same name, multi-node access, unknown parameters, no node to go to', async () => {
    await svc.CreateVolume!({ name: 'v', volume_capabilities: [MOUNT] });
    expect(await statusOf(svc.CreateVolume!({ name: 'v', capacity_range: { required_bytes: String(2 * DEFAULT_SIZE) }, volume_capabilities: [MOUNT] }))).toBe('ALREADY_EXISTS');
    expect(await statusOf(svc.CreateVolume!({ name: 'w', volume_capabilities: [{ ...MOUNT, access_mode: { mode: 'MULTI_NODE_MULTI_WRITER' } }] }))).toBe('INVALID_ARGUMENT');
    await expect(svc.CreateVolume!({ name: 'w', volume_capabilities: [MOUNT], parameters: { colector: 'x:1' } })).rejects.toThrow(/unknown StorageClass parameter "colector"; known: collector/);
    await expect(svc.CreateVolume!({ name: 'w', volume_capabilities: [MOUNT], parameters: { durability: 'sync' } })).rejects.toThrow(/waits for a collector/);
    expect(await statusOf(svc.CreateVolume!({ name: 'w', capacity_range: { required_bytes: '8192', limit_bytes: '4096' }, volume_capabilities: [MOUNT] }))).toBe('OUT_OF_RANGE');
    const central = controllerService({ state: await ControllerState.open(path.join(dir, 'c')), locks, stateDir: dir, logger: silentLogger });
    await expect(central.CreateVolume!({ name: 'w', volume_capabilities: [MOUNT] })).rejects.toThrow(/WaitForFirstConsumer/);
  });

  it('pages ListVolumes and answers ABORTED to a token it did not issue', async () => {
    for (const n of ['c', 'a', 'b']) await svc.CreateVolume!({ name: n, volume_capabilities: [MOUNT] });
    const p1 = (await svc.ListVolumes!({ max_entries: 2 })) as { entries: Array<{ volume: { volume_id: string } }>; next_token: string };
    expect(p1.entries.map((e) => e.volume.volume_id)).toEqual(['a', 'b']);
    const p2 = (await svc.ListVolumes!({ max_entries: 2, starting_token: p1.next_token })) as typeof p1;
    expect(p2).toMatchObject({ next_token: '' });
    expect(p2.entries.map((e) => e.volume.volume_id)).toEqual(['c']);
    expect(await statusOf(svc.ListVolumes!({ starting_token: 'zz' }))).toBe('ABORTED');
  });

  it('deletes idempotently, frees the node copy, and refuses while the volume is staged', async () => {
    await svc.CreateVolume!({ name: 'v', volume_capabilities: [MOUNT] });
    staged.add('v');
    expect(await statusOf(svc.DeleteVolume!({ volume_id: 'v' }))).toBe('FAILED_PRECONDITION');
    staged.delete('v');
    await svc.DeleteVolume!({ volume_id: 'v' });
    await svc.DeleteVolume!({ volume_id: 'v' });
    expect(freed).toEqual(['v', 'v']);
    expect(await statusOf(svc.ValidateVolumeCapabilities!({ volume_id: 'v', volume_capabilities: [MOUNT] }))).toBe('NOT_FOUND');
  });

  it('GetCapacity reports this node only', async () => {
    const mine = (await svc.GetCapacity!({ accessible_topology: { segments: { [TOPOLOGY_KEY]: 'node-a' } } })) as { available_capacity: string };
    expect(Number(mine.available_capacity)).toBeGreaterThan(0);
    expect(await svc.GetCapacity!({ accessible_topology: { segments: { [TOPOLOGY_KEY]: 'node-b' } } })).toEqual({ available_capacity: '0' });
  });
});

describe('per-volume locks', () => {
  it('refuse a second operation on a volume while one runs (ABORTED), not on another volume', async () => {
    const locks = new VolumeLocks();
    let release!: () => void;
    const first = locks.with('v', 'NodeStageVolume', () => new Promise<void>((r) => (release = r)));
    expect(await statusOf(locks.with('v', 'NodeUnstageVolume', async () => {}))).toBe('ABORTED');
    await locks.with('w', 'NodeStageVolume', async () => {});
    release();
    await first;
    await locks.with('v', 'NodeUnstageVolume', async () => {});
  });
});

describe('names', () => {
  it('keeps safe names as volume ids and digests the rest; endpoints are unix sockets', () => {
    expect(volumeIdFor('pvc-0b1c')).toBe('pvc-0b1c');
    expect(volumeIdFor('../etc')).toMatch(/^v-[0-9a-f]{40}$/);
    expect(socketOfEndpoint('unix:///csi/csi.sock')).toBe('/csi/csi.sock');
    expect(socketOfEndpoint('unix:/csi/csi.sock')).toBe('/csi/csi.sock');
    expect(() => socketOfEndpoint('tcp://127.0.0.1:1')).toThrow(/must be a unix socket/);
  });
});
