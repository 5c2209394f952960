#!/usr/bin/env bash
# Runs one of the rollout CLIs in tools/ (verify, shift, promote, preview, routes) with the project's Node.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
tool=${1:?usage: scripts/tool.sh verify|shift|promote|preview|routes [args]}
shift
exec tsx "$ROOT/tools/$tool.ts" "$@"
