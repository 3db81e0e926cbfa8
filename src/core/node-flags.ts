/**
 * Flags every Rewind process is started with (bin/rewind's `#!/usr/bin/env -S node …` line
 * carries the same list; a unit test keeps the two equal). V8 reads them only at start-up:
 * `v8.setFlagsFromString('--single-threaded-gc')` later aborts the process.
 *
 * --single-threaded-gc: the data path allocates a megabyte-sized Buffer per NBD write and per
 * gRPC message, so V8 starts a major GC every ~64 MiB of external memory. With the default
 * concurrent marking and sweeping, helper threads contend for the same two cores as the
 * event loop, the libuv pool and the workload. Measured here (2 vCPUs): Shipper→collector
 * transport 260–290 → 350–390 MiB/s, `rewind serve` 4 KiB QD1 write+flush 1.6–1.7k → 2.1–2.2k
 * IOPS, 1 MiB QD16 writes unchanged to +15%, 4 KiB QD16 unchanged (p99 +10%). Our heaps are
 * tens of megabytes, so a main-thread major GC takes a few milliseconds.
 */
export const NODE_FLAGS: readonly string[] = ['--single-threaded-gc'];
