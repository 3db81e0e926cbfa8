import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../core/logger.js';
import { startCollectorService } from './collector-service.js';

describe('collector service', () => {
  it('scrubs every volume on its interval, and the metrics count the scrubs and what they found', async () => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'rewind-collector-service-'));
    const svc = await startCollectorService({ dataDir: path.join(dir, 'data'), grpcListen: { path: path.join(dir, 'grpc.sock') }, allowPlaintext: true, retentionNs: 3600n * 1_000_000_000n, scrubEveryMs: 50, logger: silentLogger });
    try {
      await svc.store.createVolume('sv', 1n << 20n);
      let text = '';
      for (let i = 0; i < 100 && !/rewind_scrubs_total\{volume="sv"\} [1-9]/.test(text); i++) {
        await new Promise((r) => setTimeout(r, 50));
        text = await svc.metrics.render();
      }
      expect(text).toMatch(/rewind_scrubs_total\{volume="sv"\} [1-9]/);
      expect(text).toContain('rewind_scrub_problems{volume="sv"} 0');
      // A collector-only registry: no node-side families.
      expect(text).not.toContain('rewind_write_ops_total');
    } finally {
      await svc.close();
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });
});
