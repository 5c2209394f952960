#!/usr/bin/env bash
# The pinned pulumi CLI with offline defaults. It never overrides what the user set:
#  - backend: PULUMI_BACKEND_URL, else the project-local file backend in .local/state (gitignored); for an
#    s3:// backend (OSS, the local object store) the credentials come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
#    never from the EC2 metadata address (AWS_EC2_METADATA_DISABLED);
#  - passphrase: PULUMI_CONFIG_PASSPHRASE(_FILE), else the documented passphrase of the `local` stack,
#    and only when the command targets the `local` stack (--stack local, or ASM_TCP_SHIFT_STACK=local);
#  - no update check, and no plugin downloads (a missing plugin fails fast instead of hanging offline);
#  - the program is transpiled without type checks (npm test type-checks it).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
ensure_node
PATH="$(bash "$ROOT/scripts/toolchain.sh" --print-path):$ROOT/node_modules/.bin:$PATH"
export PATH
command -v pulumi >/dev/null || die "pulumi is not built yet: run npm run toolchain"

export PULUMI_SKIP_UPDATE_CHECK=${PULUMI_SKIP_UPDATE_CHECK:-true}
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=${PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION:-true}
# `npm test` type-checks the program (strict); the engine only needs it transpiled (faster; see npm run bench).
export PULUMI_NODEJS_TRANSPILE_ONLY=${PULUMI_NODEJS_TRANSPILE_ONLY:-true}
export PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK=${PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK:-true}
# Faster start of the program and the policy pack (see nodeStartupEnv in tools/engine.ts).
export NODE_OPTIONS="${NODE_OPTIONS:+$NODE_OPTIONS }--require \"$ROOT/tools/lazy-sdk.cjs\""
export NODE_COMPILE_CACHE=${NODE_COMPILE_CACHE:-$CACHE_DIR/node-compile-cache}
if [[ -z "${PULUMI_BACKEND_URL:-}" ]]; then
  mkdir -p "$ROOT/.local/state"
  export PULUMI_BACKEND_URL="file://$ROOT/.local/state"
fi
export AWS_EC2_METADATA_DISABLED=${AWS_EC2_METADATA_DISABLED:-true}
if [[ "$PULUMI_BACKEND_URL" == s3://* && -z "${AWS_ACCESS_KEY_ID:-}" && "$PULUMI_BACKEND_URL" != *profile=* ]]; then
  log "PULUMI_BACKEND_URL is a bucket but AWS_ACCESS_KEY_ID is not set: for the local object store run \`eval \"\$(bash scripts/objectstore.sh up)\"\`; for OSS export a RAM user's AccessKey as AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
fi

targets_local_stack() {
  local prev=""
  for arg in "$@"; do
    case "$arg" in --stack=local|-s=local) return 0 ;; esac
    if [[ ( "$prev" == "--stack" || "$prev" == "-s" ) && "$arg" == "local" ]]; then return 0; fi
    prev=$arg
  done
  [[ "${ASM_TCP_SHIFT_STACK:-}" == "local" ]]
}
if [[ -z "${PULUMI_CONFIG_PASSPHRASE:-}" && -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]] && targets_local_stack "$@"; then
  # Protects only throwaway local-cluster credentials; documented in the README. Never used for other stacks.
  export PULUMI_CONFIG_PASSPHRASE=$LOCAL_STACK_PASSPHRASE
fi
cd "$ROOT"
# With the policy pack: compiled first unless current (see policy/build.js); its errors are the engine's to report.
if [[ " $* " == *" --policy-pack"* ]]; then node "$ROOT/policy/build.js" || true; fi
exec pulumi "$@"
