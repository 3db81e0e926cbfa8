import { defineConfig } from 'vitest/config';

// Two projects: unit tests live next to the code; integration tests drive real peers
// (qemu-io, nbdcopy, fio, ext4 over nbdfuse) against built binaries in dist/.
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
          testTimeout: 180_000,
          hookTimeout: 120_000,
          // Real peers are CPU-heavy; two cores, so at most two files at once.
          maxWorkers: 2,
          // Unit tests first (fast feedback), then the peers.
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
