#!/usr/bin/env bash
# Builds the real Kubernetes parts the tests run (kube-apiserver, kube-controller-manager,
# kubectl, etcd) with this machine's Go, from the pinned tools modules in
# test/cluster/tools/<family>/, and caches the binaries outside the work tree so a fresh
# clone on the same machine starts warm. Prints the bin directory on stdout.
#
#   bash test/cluster/build-tools.sh            # build what is missing, print the bin dir
#   REWIND_TOOLS_CACHE=DIR                      # where the cache lives (default ~/.cache/rewind-test-tools)
#
# One go.mod per tool family: a shared one would let Go's version selection lift grpc/otel
# under Kubernetes and break it. The cache key is the family's go.mod + go.sum + Go version,
# so bumping a pin rebuilds only that family.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${REWIND_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rewind-test-tools}

if ! command -v go >/dev/null 2>&1; then
  echo "build-tools: Go is not on PATH; the Kubernetes tests need it to build kube-apiserver, etcd and kubectl (install Go ≥ 1.26)" >&2
  exit 1
fi
export GOWORK=off GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly
gover=$(go env GOVERSION)

key_of() { cat "$here/tools/$1/go.mod" "$here/tools/$1/go.sum" | { cat; echo "$gover"; } | sha256sum | cut -c1-16; }

# Kubernetes: version stamped as upstream's Makefile does, or kubectl and helm skew checks
# see v0.0.0. The release is the one the tools go.mod requires.
build_kubernetes() {
  local out=$1 v minor ld p
  v=$(sed -n 's/^\tk8s.io\/kubernetes \(v[0-9.]*\).*/\1/p; s/^require k8s.io\/kubernetes \(v[0-9.]*\).*/\1/p' "$here/tools/kubernetes/go.mod" | head -1)
  minor=$(echo "$v" | cut -d. -f2)
  ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=$v -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  (cd "$here/tools/kubernetes" && go build -trimpath -tags notest,grpcnotrace -ldflags "$ld" -o "$out/" tool)
}

build_etcd() {
  (cd "$here/tools/etcd" && go build -trimpath -ldflags "-s -w" -o "$1/etcd" go.etcd.io/etcd/server/v3)
}

# The CSI driver's peers (csi-sanity, external-provisioner): a family each of their own, so a cold build of the
# driver's tests does not wait for Kubernetes' and Kubernetes' pins do not move them.
build_csi_sanity() {
  (cd "$here/tools/csi-sanity" && go build -trimpath -ldflags "-s -w" -o "$1/" tool)
}

build_csi_provisioner() {
  (cd "$here/tools/csi-provisioner" && go build -trimpath -ldflags "-s -w -X main.version=v6.4.0" -o "$1/" tool)
}

bin="$cache/bin"
mkdir -p "$bin"
for family in kubernetes etcd csi-sanity csi-provisioner; do
  key=$(key_of "$family")
  stamp="$cache/$family.$key.done"
  [ -f "$stamp" ] && continue
  echo "build-tools: building $family (key $key); a cold build takes a few minutes" >&2
  start=$(date +%s)
  tmp=$(mktemp -d "$cache/.build.XXXXXX")
  "build_${family//-/_}" "$tmp"
  mv -f "$tmp"/* "$bin/"
  rmdir "$tmp"
  rm -f "$cache/$family".*.done
  touch "$stamp"
  echo "build-tools: $family built in $(( $(date +%s) - start )) s" >&2
done
echo "$bin"
