import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadYaml } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

interface KrewPlugin {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  spec: { version: string; shortDescription: string; platforms: Array<{ bin: string; uri: string; sha256: string; files: unknown[] }> };
}

describe('deploy/krew/rewind.yaml', () => {
  it('is a krew Plugin named rewind, at the package version, whose bin is the launcher in bin/', () => {
    const m = loadYaml<KrewPlugin>(fs.readFileSync(path.join(ROOT, 'deploy/krew/rewind.yaml'), 'utf8'));
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string; bin: Record<string, string> };
    expect(m.apiVersion).toBe('krew.googlecontainertools.github.com/v1alpha2');
    expect(m.kind).toBe('Plugin');
    expect(m.metadata.name).toBe('rewind');
    expect(m.spec.version).toBe(`v${pkg.version}`);
    expect(m.spec.shortDescription.length).toBeLessThanOrEqual(80);
    for (const p of m.spec.platforms) {
      expect(fs.existsSync(path.join(ROOT, p.bin)), p.bin).toBe(true);
      expect(pkg.bin['kubectl-rewind']).toBe(p.bin);
      expect(p.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(p.uri).toContain(`/v${pkg.version}/`);
    }
  });
});
