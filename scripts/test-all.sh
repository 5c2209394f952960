#!/usr/bin/env bash
# Every test tier, in order of cost: typecheck, lint (prettier, ESLint, shellcheck), unit + property, policy,
# integration (real engine), rollout tooling (real tcp-echo servers, real engine), backend (state in a bucket of the local S3 server),
# go (the Go unit tests of asm-local, mesh/), mesh (the local stack through istiod, the IstioGateway controller
# stand-in, the gateway data plane and Istio's tcp-echo pods), asm (the ASM-shaped two-cluster topology).
# Installs what the tiers need first (Node 22, npm packages, the offline toolchain), so it works on a
# fresh machine. Ends with each tier's count and wall time, the total, then one line "tests: N passed, N failed".
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
cd "$ROOT"

bash scripts/setup.sh
ensure_node
export PATH="$ROOT/node_modules/.bin:$PATH"

# Node caches the compiled code of test files and of the engine's Node.js processes between runs.
export NODE_COMPILE_CACHE=${NODE_COMPILE_CACHE:-$CACHE_DIR/node-compile-cache}

passed=0 failed=0
results=()
LOGS="$ROOT/.local/test-logs"
mkdir -p "$LOGS"

# Adds a finished tier's counts (from its spec log) to the totals and its line to the summary.
count_tier() {
  local tier=$1 status=$2 seconds=$3 p f
  p=$(sed -n 's/^ℹ pass \([0-9]*\)$/\1/p' "$LOGS/$tier.log" | tail -1)
  f=$(sed -n 's/^ℹ fail \([0-9]*\)$/\1/p' "$LOGS/$tier.log" | tail -1)
  p=${p:-0} f=${f:-0}
  # A runner that died before reporting counts as a failure, never as zero tests passed.
  if [[ $status -ne 0 && $f -eq 0 ]]; then f=1; fi
  # So does a tier that ran fewer tests than its floor (scripts/test-floors): a glob that stopped matching, a file
  # that no longer loads, or tests that were dropped.
  local floor
  floor=$(awk -v t="$tier" '$1 == t { print $2 }' "$ROOT/scripts/test-floors")
  if [[ -z "$floor" ]]; then
    log "tier $tier has no floor in scripts/test-floors"; f=$((f + 1))
  elif [[ $((p + f)) -lt $floor ]]; then
    log "tier $tier ran $((p + f)) tests, fewer than its floor of $floor (scripts/test-floors)"; f=$((f + 1))
  fi
  passed=$((passed + p)); failed=$((failed + f))
  results+=("$tier: $p passed, $f failed (${seconds} s)")
}

test_runner() { node --test --import tsx --test-reporter=spec "$@"; }

run_tier() {
  local tier=$1; shift
  log "tier: $tier"
  local status=0 start=$SECONDS
  test_runner "$@" 2>&1 | tee "$LOGS/$tier.log" || status=$?
  count_tier "$tier" "$status" $((SECONDS - start))
}

# A tier that mostly waits runs beside the tiers that follow it; finish_tier prints its log and counts it.
start_tier() {
  local tier=$1; shift
  log "tier: $tier (beside the next tiers; its log follows when it is collected)"
  rm -f "$LOGS/$tier.status"
  (
    start=$SECONDS status=0
    test_runner "$@" >"$LOGS/$tier.log" 2>&1 || status=$?
    echo "$status $((SECONDS - start))" >"$LOGS/$tier.status"
  ) &
  printf '%s' "$!" >"$LOGS/$tier.pid"
}
finish_tier() {
  local tier=$1 status seconds
  wait "$(cat "$LOGS/$tier.pid")" || true
  log "tier: $tier (collected)"
  cat "$LOGS/$tier.log"
  read -r status seconds <"$LOGS/$tier.status" 2>/dev/null || { status=1 seconds=0; }
  count_tier "$tier" "$status" "$seconds"
}

# Two single-threaded checks, one per core; each log is printed whole, in order.
log "tier: typecheck and lint, side by side"
start=$SECONDS
(tsc --noEmit --noCheck false -p . && tsc --noEmit --noCheck false -p policy) >"$LOGS/typecheck.log" 2>&1 &
typecheck=$!
bash scripts/lint.sh >"$LOGS/lint.log" 2>&1 &
lint=$!
if wait "$typecheck"; then typecheck_status=ok; else typecheck_status=FAILED; failed=$((failed + 1)); fi
cat "$LOGS/typecheck.log"
results+=("typecheck: $typecheck_status ($((SECONDS - start)) s)")
if wait "$lint"; then lint_status=ok; else lint_status="FAILED (npm run format fixes the formatting)"; failed=$((failed + 1)); fi
cat "$LOGS/lint.log"
results+=("lint: $lint_status ($((SECONDS - start)) s)")

# Tiers without the engine: their files are independent processes, two at a time on two cores.
run_tier unit --test-concurrency=2 test/unit/*.test.ts test/property/*.test.ts
run_tier policy --test-concurrency=2 test/policy/*.test.ts
# asm-local's own Go tests (mesh/), counted like the other tiers: its top-level tests' PASS/FAIL lines.
run_go_tier() {
  log "tier: go (mesh/)"
  local status=0 start=$SECONDS
  (
    command -v go >/dev/null || export PATH="/usr/local/go/bin:$PATH"
    cd mesh && GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0 GOWORK=off go test -count=1 -v ./...
  ) 2>&1 | tee "$LOGS/go.raw.log" || status=$?
  { cat "$LOGS/go.raw.log"; printf 'ℹ pass %s\nℹ fail %s\n' "$(grep -c '^--- PASS' "$LOGS/go.raw.log")" "$(grep -c '^--- FAIL' "$LOGS/go.raw.log")"; } >"$LOGS/go.log"
  count_tier go "$status" $((SECONDS - start))
}
run_go_tier
bash scripts/toolchain.sh pulumi kubernetes istioctl cluster actionlint objectstore mesh envoy
# The long object-store outage spends about 80 s waiting on the CLI's own retries of a checkpoint write (hard-coded
# in the diy backend: 10 retries, 1 s growing by 1.2x), so it runs beside the integration and rollout tiers. It uses
# its own object server, bucket and stack, and kills no engine process; it is collected before the other backend files,
# whose killed jobs leave orphaned plugins for their own `recover` to find.
start_tier backend-outage test/backend/outage.test.ts
# The integration tier drives the real pulumi engine and shares one state folder, so it runs serially.
run_tier integration --test-concurrency=1 test/integration/*.test.ts
run_tier rollout --test-concurrency=1 test/rollout/*.test.ts
finish_tier backend-outage
# Each file starts its own object server (scripts/objectstore.sh) on a free loopback port and uses its own
# stacks, so two files run at once.
backend_files=()
for file in test/backend/*.test.ts; do [[ $file == test/backend/outage.test.ts ]] || backend_files+=("$file"); done
run_tier backend --test-concurrency=2 "${backend_files[@]}"
# One cluster and mesh for the whole tier (its files bring it up idempotently), removed afterwards.
run_tier mesh --test-concurrency=1 test/mesh/*.test.ts
ASM_TCP_SHIFT_CLUSTER=asm-tcp-shift-mesh bash scripts/cluster.sh down >/dev/null 2>&1 || true
# The ASM-shaped topology (a mesh control-plane API server and a data-plane cluster), its own, removed afterwards.
run_tier asm --test-concurrency=1 test/asm/*.test.ts
ASM_TCP_SHIFT_CLUSTER=${ASM_TCP_SHIFT_ASM_CLUSTER:-asm-tcp-shift-asm} bash scripts/cluster.sh down >/dev/null 2>&1 || true

printf '\n'
printf '%s\n' "${results[@]}"
echo "wall time: ${SECONDS} s"
echo "tests: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
