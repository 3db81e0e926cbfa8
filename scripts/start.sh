#!/usr/bin/env bash
# The "run Rewind locally" command (`npm start`): install (npm packages, and the Debian NBD
# clients used to talk to it), build, then `rewind up` with
# its defaults (data in ./rewind-data, a 1 GiB volume, NBD on 127.0.0.1:10809, HTTP API on
# 127.0.0.1:8080). Extra arguments go to `rewind up` (see `bin/rewind up --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node_modules/.bin/tsc -p tsconfig.build.json
exec bin/rewind up "$@"
