#!/usr/bin/env bash
# The style gates of `npm test`: prettier (format), ESLint with typescript-eslint (TypeScript), shellcheck (the
# scripts and .ci/run). Each reports every finding; the script fails when any gate does.
#   scripts/lint.sh          check (what npm test runs)
#   scripts/lint.sh --fix    format with prettier and apply ESLint's fixes, then check
# The shellcheck binary comes from Debian (apt-get install shellcheck); it is installed here when missing.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
cd "$ROOT"
ensure_node
export PATH="$ROOT/node_modules/.bin:$PATH"

ensure_shellcheck() {
  command -v shellcheck >/dev/null && return 0
  log "installing shellcheck (Debian package)"
  local sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get install -y -qq shellcheck >&2 || { "${sudo[@]}" apt-get update -qq >&2 && "${sudo[@]}" apt-get install -y -qq shellcheck >&2; } ||
    die "shellcheck is missing and apt-get could not install it"
}

TS_FILES='**/*.{ts,js,cjs,mjs}'
if [[ "${1:-}" == "--fix" ]]; then
  prettier --log-level warn --write "$TS_FILES"
  eslint --fix .
fi

status=0
log "lint: prettier"
prettier --log-level warn --check "$TS_FILES" || status=1
log "lint: eslint"
eslint . || status=1
log "lint: shellcheck"
ensure_shellcheck
shellcheck -x scripts/*.sh .ci/run || status=1
exit $status
