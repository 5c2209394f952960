#!/usr/bin/env bash
# The offline engine environment, defined once. scripts/pulumi.sh sources it for the CLI; tools/engine/engine.ts runs
#   bash scripts/engine-env.sh STACK
# and takes what it prints (NAME=VALUE, NUL-terminated) for the Automation API. It never overrides what the user set:
#  - PATH: the toolchain (scripts/toolchain.sh) and the project's node_modules/.bin first;
#  - backend: PULUMI_BACKEND_URL, else the project-local file backend in .local/state (gitignored); for an
#    s3:// backend (OSS, the local object store) the credentials come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
#    never from the EC2 metadata address (AWS_EC2_METADATA_DISABLED);
#  - passphrase: PULUMI_CONFIG_PASSPHRASE_<STACK>, else PULUMI_CONFIG_PASSPHRASE(_FILE), else the documented
#    passphrase of the `local` stack, and only for the `local` stack;
#  - no update check, and no plugin downloads (a missing plugin fails fast instead of hanging offline);
#  - compiled code of the Node.js processes the engine runs (the program, the policy pack) cached between runs
#    (Node's NODE_COMPILE_CACHE, Node >= 22.1).
# shellcheck shell=bash

ENGINE_ENV_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ENGINE_ENV_ROOT/scripts/lib.sh"

# The variables engine_env and engine_passphrase set, in the order the script prints them.
ENGINE_ENV_VARS=(PATH PULUMI_SKIP_UPDATE_CHECK PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK
  PULUMI_BACKEND_URL AWS_EC2_METADATA_DISABLED NODE_COMPILE_CACHE PULUMI_CONFIG_PASSPHRASE)

# Exports the engine environment, all but the passphrase (engine_passphrase).
engine_env() {
  local bin
  bin="$(bash "$ENGINE_ENV_ROOT/scripts/toolchain.sh" --print-path):$ENGINE_ENV_ROOT/node_modules/.bin"
  if [[ ":$PATH:" != *":$bin:"* ]]; then export PATH="$bin:$PATH"; fi
  export PULUMI_SKIP_UPDATE_CHECK=${PULUMI_SKIP_UPDATE_CHECK:-true}
  export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=${PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION:-true}
  export PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK=${PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK:-true}
  if [[ -z "${PULUMI_BACKEND_URL:-}" ]]; then export PULUMI_BACKEND_URL="file://$ENGINE_ENV_ROOT/.local/state"; fi
  if [[ "$PULUMI_BACKEND_URL" == file://* ]]; then mkdir -p "${PULUMI_BACKEND_URL#file://}"; fi
  export AWS_EC2_METADATA_DISABLED=${AWS_EC2_METADATA_DISABLED:-true}
  export NODE_COMPILE_CACHE=${NODE_COMPILE_CACHE:-$CACHE_DIR/node-compile-cache}
}

# Exports the passphrase of stack $1: PULUMI_CONFIG_PASSPHRASE_<STACK> (the stack's name in capitals, other characters
# as _) when set, so one job can hold each environment's own (a promotion reads one stack and writes another); else
# what the user set; else, for the `local` stack only, its documented passphrase.
engine_passphrase() {
  local own
  own="PULUMI_CONFIG_PASSPHRASE_$(printf '%s' "$1" | tr '[:lower:]' '[:upper:]' | tr -c 'A-Z0-9_' '_')"
  if [[ -n "$1" && -n "${!own:-}" ]]; then
    export PULUMI_CONFIG_PASSPHRASE=${!own}
  elif [[ -z "${PULUMI_CONFIG_PASSPHRASE:-}" && -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" && "$1" == "local" ]]; then
    # Protects only throwaway local-cluster credentials; documented in the README. Never used for other stacks.
    export PULUMI_CONFIG_PASSPHRASE=$LOCAL_STACK_PASSPHRASE
  fi
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  declare -A before=()
  for name in "${ENGINE_ENV_VARS[@]}"; do before[$name]=${!name-}; done
  engine_env
  engine_passphrase "${1?usage: scripts/engine-env.sh STACK}"
  # Only what it set or changed: what the caller already has stays the caller's (a passphrase is never echoed).
  for name in "${ENGINE_ENV_VARS[@]}"; do
    if [[ "${!name-}" != "${before[$name]}" ]]; then printf '%s=%s\0' "$name" "${!name}"; fi
  done
fi
