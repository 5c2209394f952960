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
