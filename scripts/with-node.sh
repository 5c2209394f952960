#!/usr/bin/env bash
# Runs a command with Node >= 22 and the project's node_modules/.bin on PATH.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"
ensure_node
export PATH="$root/node_modules/.bin:$PATH"
exec "$@"
