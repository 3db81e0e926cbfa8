#!/usr/bin/env bash
# The test command (`npm test`): set up, type-check, run unit + integration tests, and
# end with one "N passed, N failed" line. Extra arguments go to vitest.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || { echo "0 passed, 1 failed"; exit 1; }

if ! node_modules/.bin/tsc -p . --noEmit; then
  echo "type check failed"
  echo "0 passed, 1 failed"
  exit 1
fi

report=$(mktemp -t rewind-vitest.XXXXXX.json)
node_modules/.bin/vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@"
rc=$?
# The kind suite (test/e2e/kind.sh) on full runs only; it says "did not run" where there is
# no Docker daemon or kind, and counts as one failure if it runs and fails.
e2e_failed=0
if [ $# -eq 0 ]; then
  bash test/e2e/kind.sh || { e2e_failed=1; rc=1; }
fi
node -e '
  const fs = require("fs");
  let r = {};
  try { r = JSON.parse(fs.readFileSync(process.argv[1], "utf8")); } catch {}
  const passed = r.numPassedTests ?? 0;
  const failed = (r.numFailedTests ?? 0) + ((r.numFailedTestSuites ?? 0) > 0 && !r.numFailedTests ? r.numFailedTestSuites : 0) + Number(process.argv[2]);
  const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
  console.log(`${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ""));
' "$report" "$e2e_failed"
rm -f "$report"
exit $rc
