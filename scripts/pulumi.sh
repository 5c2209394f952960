#!/usr/bin/env bash
# `npm run pulumi -- ARGS`: the project's pulumi CLI (scripts/toolchain.sh) in the offline engine environment
# (scripts/engine-env.sh, the same one the tools use). The local stack's passphrase applies when the command
# targets the `local` stack however it is named: --stack/-s, `stack select|init|rm local`, or the selected stack.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
# shellcheck source=scripts/engine-env.sh
. "$ROOT/scripts/engine-env.sh"
ensure_node

# Flags of `pulumi stack select|init|rm` that take a value (so the value is not read as the stack's name).
STACK_VALUE_FLAGS=" --secrets-provider --copy-config-from --teams --cwd -C --color --config-file --tracing --logflow --verbose -v "

# The stack a pulumi command line names, or nothing.
named_stack() {
  local prev="" arg words=()
  for arg in "$@"; do
    case "$arg" in --stack=* | -s=*) echo "${arg#*=}"; return ;; esac
    if [[ "$prev" == "--stack" || "$prev" == "-s" ]]; then echo "$arg"; return; fi
    prev=$arg
  done
  # `stack select|init|rm NAME`: the first word after the subcommand that is neither a flag nor a flag's value.
  [[ "${1:-}" == "stack" && " select init rm " == *" ${2:-} "* ]] || return 0
  prev=""
  for arg in "${@:3}"; do
    if [[ "$arg" != -* && "$STACK_VALUE_FLAGS" != *" $prev "* ]]; then words+=("$arg"); fi
    prev=$arg
  done
  [[ ${#words[@]} -gt 0 ]] && echo "${words[0]}"
  return 0
}

engine_env
stack=$(named_stack "$@")
if [[ -z "$stack" && -z "${PULUMI_CONFIG_PASSPHRASE:-}" && -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]]; then
  # The selected stack, as the CLI itself resolves it (needs no passphrase).
  stack=$(cd "$ROOT" && pulumi stack --show-name 2>/dev/null) || stack=""
fi
engine_passphrase "$stack"
command -v pulumi >/dev/null || die "pulumi is not built yet: run npm run toolchain"
if [[ "$PULUMI_BACKEND_URL" == s3://* && -z "${AWS_ACCESS_KEY_ID:-}" && "$PULUMI_BACKEND_URL" != *profile=* ]]; then
  log "PULUMI_BACKEND_URL is a bucket but AWS_ACCESS_KEY_ID is not set: for the local object store run \`eval \"\$(bash scripts/objectstore.sh up)\"\`; for OSS export a RAM user's AccessKey as AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
fi
cd "$ROOT"
exec pulumi "$@"
