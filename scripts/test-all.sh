#!/usr/bin/env bash
# Every test tier, in order of cost: typecheck, lint (prettier, ESLint, shellcheck), unit + property, policy,
# integration (real engine), rollout tooling (real tcp-echo servers, real engine), backend (state in a bucket of the local S3 server),
# mesh (the local stack through istiod, the IstioGateway controller stand-in, the gateway data plane and
# Istio's tcp-echo pods).
# Installs what the tiers need first (Node 22, npm packages, the offline toolchain), so it works on a
# fresh machine. Ends with one line "tests: N passed, N failed".
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
cd "$ROOT"

bash scripts/setup.sh
ensure_node
export PATH="$ROOT/node_modules/.bin:$PATH"

# Test files start faster: @pulumi/pulumi's package manager on first use, compiled code cached (see tools/engine.ts).
export NODE_COMPILE_CACHE=${NODE_COMPILE_CACHE:-$CACHE_DIR/node-compile-cache}

passed=0 failed=0
results=()
LOGS="$ROOT/.local/test-logs"
mkdir -p "$LOGS"

run_tier() {
  local tier=$1; shift
  log "tier: $tier"
  local status=0
  node --require "$ROOT/tools/lazy-sdk.cjs" --test --import tsx --test-reporter=spec "$@" 2>&1 | tee "$LOGS/$tier.log" || status=$?
  local p f
  p=$(sed -n 's/^ℹ pass \([0-9]*\)$/\1/p' "$LOGS/$tier.log" | tail -1)
  f=$(sed -n 's/^ℹ fail \([0-9]*\)$/\1/p' "$LOGS/$tier.log" | tail -1)
  p=${p:-0} f=${f:-0}
  # A runner that died before reporting counts as a failure, never as zero tests passed.
  if [[ $status -ne 0 && $f -eq 0 ]]; then f=1; fi
  passed=$((passed + p)); failed=$((failed + f))
  results+=("$tier: $p passed, $f failed")
}

log "tier: typecheck"
if tsc --noEmit -p . && tsc --noEmit -p policy; then results+=("typecheck: ok"); else results+=("typecheck: FAILED"); failed=$((failed + 1)); fi
log "tier: lint"
if bash scripts/lint.sh; then results+=("lint: ok"); else results+=("lint: FAILED (npm run format fixes the formatting)"); failed=$((failed + 1)); fi

# Tiers without the engine: their files are independent processes, two at a time on two cores.
run_tier unit --test-concurrency=2 test/unit/*.test.ts test/property/*.test.ts
run_tier policy --test-concurrency=2 test/policy/*.test.ts
# The integration tier drives the real pulumi engine and shares one state folder, so it runs serially.
bash scripts/toolchain.sh pulumi kubernetes istioctl cluster actionlint objectstore mesh
run_tier integration --test-concurrency=1 test/integration/*.test.ts
run_tier rollout --test-concurrency=1 test/rollout/*.test.ts
# Each file starts its own object server (scripts/objectstore.sh) on a free loopback port and uses its own
# stacks, so two files run at once (the outage file mostly waits on the CLI's retries).
run_tier backend --test-concurrency=2 test/backend/*.test.ts
# One cluster and mesh for the whole tier (its files bring it up idempotently), removed afterwards.
run_tier mesh --test-concurrency=1 test/mesh/*.test.ts
ASM_TCP_SHIFT_CLUSTER=asm-tcp-shift-mesh bash scripts/cluster.sh down >/dev/null 2>&1 || true

printf '\n'
printf '%s\n' "${results[@]}"
echo "tests: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
