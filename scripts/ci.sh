#!/usr/bin/env bash
# `npm run ci`: everything CI checks, in order; stops at the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== generated code is up to date"
npm run -s generate
if [ -n "$(git status --porcelain -- gen)" ]; then
  git status --porcelain -- gen
  echo "gen/ differs from what 'npm run generate' writes: regenerate and commit it" >&2
  exit 1
fi
echo "== buf lint"
npx buf lint
echo "== typecheck"
npm run -s typecheck
echo "== lint"
npm run -s lint
echo "== tests"
npm test
