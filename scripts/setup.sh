#!/usr/bin/env bash
# Idempotent setup for a fresh machine: npm dependencies, then the Debian packages the
# tests use as independent peers (NBD clients, and chromium run headless for the timeline
# page). Safe to run on every test run; it only acts on what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm dependencies" >&2
  npm ci --no-audit --no-fund >&2
fi

peers_missing=()
for tool in qemu-io:qemu-utils nbdcopy:libnbd-bin nbdkit:nbdkit fio:fio fusermount3:fuse3 mkfs.ext4:e2fsprogs losetup:mount chromium:chromium; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || peers_missing+=("${tool##*:}")
done
# scripts/helm.sh unpacks helm from a zip: unzip, or Python's zipfile.
if ! command -v unzip >/dev/null 2>&1 && ! python3 -c 'import zipfile' >/dev/null 2>&1; then
  peers_missing+=(unzip)
fi
if [ "${REWIND_SKIP_PEERS:-}" != "1" ] && [ ${#peers_missing[@]} -gt 0 ]; then
  echo "setup: installing test peers: ${peers_missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    qemu-utils libnbd-bin nbdkit fio fuse3 e2fsprogs mount python3-libnbd unzip chromium >&2
fi

# The Kubernetes tests' control plane (test/cluster): built once with Go, then cached.
if [ "${REWIND_SKIP_CLUSTER_TOOLS:-}" != "1" ]; then
  bash test/cluster/build-tools.sh >/dev/null
fi

# helm for the chart tests (test/cluster/chart.test.ts): unpacked once into the same cache.
if [ "${REWIND_SKIP_CLUSTER_TOOLS:-}" != "1" ]; then
  bash scripts/helm.sh >/dev/null
fi

# promtool for the alert rules' checks and unit tests (test/integration/alert-rules.test.ts):
# built once with Go into the same cache. REWIND_SKIP_PROMTOOL=1 skips only this one.
if [ "${REWIND_SKIP_CLUSTER_TOOLS:-}" != "1" ] && [ "${REWIND_SKIP_PROMTOOL:-}" != "1" ]; then
  bash scripts/promtool.sh >/dev/null
fi
