#!/usr/bin/env bash
# README command 1: everything from a fresh machine to `pulumi up` on the embedded `local` stack.
#   npm run local [-- <v2Weight>]
# Node 22, npm packages, the pinned toolchain (built from Go modules on first run), the local
# cluster when the stack targets it, then `pulumi up` with the policy pack (preview first), then the routes as applied.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
cd "$ROOT"
weight=${1:-}

bash scripts/setup.sh
bash scripts/toolchain.sh pulumi kubernetes istioctl
target=$(sed -n 's/^ *asm-tcp-shift:target: *//p' Pulumi.local.yaml)
if [[ "$target" == "local" ]]; then
  bash scripts/toolchain.sh cluster
  bash scripts/cluster.sh up
fi

p() { bash scripts/pulumi.sh "$@"; }
p stack select --create local >/dev/null
if [[ -n "$weight" ]]; then p config set v2Weight "$weight" --stack local; fi
# The cluster may be a new one since the last up (cluster:down, a lost .local/kwok): objects of a cluster
# that no longer answers are dropped from the state, and the up recreates them. A live cluster is just refreshed.
PULUMI_K8S_DELETE_UNREACHABLE=true p refresh --yes --skip-preview --stack local >/dev/null
# The CLI previews with the pack first and stops on a mandatory violation before anything changes (docs/design.md).
p up --yes --stack local --policy-pack policy

log "routes as applied:"
ensure_node
PATH="$(bash scripts/toolchain.sh --print-path):$ROOT/node_modules/.bin:$PATH" tsx tools/cli/routes.ts --stack local
