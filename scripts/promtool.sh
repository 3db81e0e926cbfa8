#!/usr/bin/env bash
# Finds (or builds once) the promtool the alert-rule tests use, and prints its path.
#
#   bash scripts/promtool.sh          # print the path of promtool, building it if missing
#   REWIND_TOOLS_CACHE=DIR            # cache root (default ~/.cache/rewind-test-tools)
#   REWIND_PROMTOOL=FILE              # use this promtool instead
#
# Built with this machine's Go from github.com/prometheus/prometheus, pinned in the tools
# module test/cluster/tools/prometheus (its own go.mod, as test/cluster/build-tools.sh does
# per tool family, so Go's version selection never mixes it with Kubernetes' pins). Cached
# in the same bin directory, keyed by that go.mod + go.sum + the Go version.
#
# -tags remove_all_sd leaves out the service-discovery plugins (AWS, Azure, GCE, …) that
# rule checks and rule unit tests never use. Measured on a 2-core machine under load, with
# modules already downloaded and an empty build cache: 3 min 39 s wall, 176 s user CPU;
# downloading the modules through the proxy adds about 35 s.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
mod="$here/test/cluster/tools/prometheus"

if [ -n "${REWIND_PROMTOOL:-}" ]; then
  echo "$REWIND_PROMTOOL"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "promtool.sh: Go is not on PATH; the alert-rule tests build promtool with it (install Go ≥ 1.26, or set REWIND_PROMTOOL to a promtool)" >&2
  exit 1
fi
export GOWORK=off GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly
cache=${REWIND_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rewind-test-tools}
bin="$cache/bin"
key=$(cat "$mod/go.mod" "$mod/go.sum" | { cat; go env GOVERSION; } | sha256sum | cut -c1-16)
stamp="$cache/prometheus.$key.done"
if [ -f "$stamp" ] && [ -x "$bin/promtool" ]; then
  echo "$bin/promtool"
  exit 0
fi

mkdir -p "$bin"
# Test files may ask at the same time on a cold cache: one builds, the others wait.
exec 9>"$cache/prometheus.lock"
flock 9
if [ -f "$stamp" ] && [ -x "$bin/promtool" ]; then
  echo "$bin/promtool"
  exit 0
fi

# Module v0.3MM.P is Prometheus 3.MM.P; stamped so `promtool --version` says which.
v=$(sed -n 's/^\tgithub.com\/prometheus\/prometheus \(v[0-9.]*\).*/\1/p' "$mod/go.mod" | head -1)
release=$(echo "$v" | sed -n 's/^v0\.\([0-9]\)\([0-9][0-9]\)\.\([0-9]*\)$/\1.\2.\3/p' | sed 's/\.0\([0-9]\)\./.\1./')
echo "promtool.sh: building promtool $release ($v, key $key); a cold build takes a few minutes" >&2
start=$(date +%s)
tmp=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
(cd "$mod" && go build -trimpath -tags remove_all_sd \
  -ldflags "-s -w -X github.com/prometheus/common/version.Version=$release -X github.com/prometheus/common/version.Revision=$v" \
  -o "$tmp/promtool" github.com/prometheus/prometheus/cmd/promtool)
mv -f "$tmp/promtool" "$bin/promtool"
rm -f "$cache"/prometheus.*.done
touch "$stamp"
echo "promtool.sh: built in $(( $(date +%s) - start )) s" >&2
echo "$bin/promtool"
