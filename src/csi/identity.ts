import { createRequire } from 'node:module';
import { DRIVER_NAME } from './proto.js';

function packageVersion(): string {
  const require = createRequire(import.meta.url);
  for (const rel of ['../../package.json', '../../../package.json']) {
    try {
      return (require(rel) as { version: string }).version;
    } catch {
      /* from src/ or from dist/src/: one of the two */
    }
  }
  return '0.0.0';
}

export function identityService(o: { controller: boolean }): Record<string, (req: object) => Promise<object>> {
  const version = packageVersion();
  return {
    async GetPluginInfo() {
      return { name: DRIVER_NAME, vendor_version: version, manifest: {} };
    },
    async GetPluginCapabilities() {
      const caps: object[] = [{ service: { type: 'VOLUME_ACCESSIBILITY_CONSTRAINTS' } }];
      if (o.controller) caps.unshift({ service: { type: 'CONTROLLER_SERVICE' } });
      return { capabilities: caps };
    },
    async Probe() {
      return { ready: { value: true } };
    },
  };
}
