import { defineConfig } from 'vitest/config';

// Unit tests live next to the code; integration tests drive real peers (qemu-io, nbdcopy,
// fio, ext4 over nbdfuse) against built binaries in dist/; the bench smoke test runs last.
export default defineConfig({
  test: {
    globalSetup: ['./test/helpers/global-setup.ts'],
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['src/**/*.test.ts'], testTimeout: 30_000, sequence: { groupOrder: 0 } },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          exclude: ['test/integration/bench-smoke.test.ts'],
          testTimeout: 180_000,
          hookTimeout: 120_000,
          // Real peers are CPU-heavy; two cores, so at most two files at once.
          maxWorkers: 2,
          // Unit tests first (fast feedback), then the peers.
          sequence: { groupOrder: 1 },
        },
      },
      {
        extends: true,
        // Against the real control plane of test/cluster (kube-apiserver, etcd,
        // kube-controller-manager built from their Go modules); each file starts its own.
        test: {
          name: 'cluster',
          include: ['test/cluster/**/*.test.ts'],
          testTimeout: 180_000,
          hookTimeout: 300_000,
          maxWorkers: 2,
          sequence: { groupOrder: 2 },
        },
      },
      {
        extends: true,
        // The benches load both cores: last, and alone, so no timed test shares the machine.
        test: { name: 'bench-smoke', include: ['test/integration/bench-smoke.test.ts'], testTimeout: 300_000, maxWorkers: 1, sequence: { groupOrder: 3 } },
      },
    ],
  },
});
