#!/usr/bin/env bash
# Installs the project's npm packages with Node >= 22: the root's, and the policy pack's, an npm workspace whose
# packages share the root's node_modules. Idempotent and quiet when done.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
ensure_node
stamp="$ROOT/node_modules/.asm-tcp-shift-lock"
if [[ ! -f "$stamp" ]] || ! cmp -s "$ROOT/package-lock.json" "$stamp"; then
  log "npm ci"
  (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error >&2)
  cp "$ROOT/package-lock.json" "$stamp"
fi
# The program and the policy pack, compiled unless current (tools/compile-ahead.js): the engine then runs them
# without the TypeScript compiler. On errors one stays uncompiled and runs from its sources, which report them;
# setup goes on.
node "$ROOT/tools/compile-ahead.js" "$ROOT" "$ROOT/policy" || log "what did not compile runs from its TypeScript sources until it does"
