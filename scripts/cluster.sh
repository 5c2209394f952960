#!/usr/bin/env bash
# The embedded local control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
# kwok (fake nodes whose pods turn Ready), run by kwokctl as local processes on loopback, all built
# from Go modules by scripts/toolchain.sh. Data lives in .local/ (gitignored).
# Around it, scripts/mesh.sh runs the mesh: istiod (Istio's pilot-discovery), the IstioGateway
# controller and echo-pod runner, and the ingress gateway's data plane (asm-local, mesh/).
#   scripts/cluster.sh up       start (idempotent), install Istio's and ASM's CRDs, a fake node, the mesh
#   scripts/cluster.sh down     stop every process and delete the cluster's data
#   scripts/cluster.sh status   components with their memory, and the kubeconfig path
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

# ASM_TCP_SHIFT_CLUSTER names a second, independent cluster (the integration tests use their own).
NAME=$(cluster_name)
export KWOK_WORKDIR="$ROOT/.local/kwok"
if [[ "$NAME" == asm-tcp-shift ]]; then KUBECONFIG_OUT="$ROOT/.local/cluster/kubeconfig"; else KUBECONFIG_OUT="$ROOT/.local/cluster-$NAME/kubeconfig"; fi
PATH="$(bash "$ROOT/scripts/toolchain.sh" --print-path):$PATH"
ISTIO_CRDS="$(dirname "$(dirname "$(command -v istioctl || echo /missing/bin/istioctl)")")/crd-all.gen.yaml"

# kwokctl logs JSON lines per step; keep them in a file and show them only when something fails.
KWOKCTL_LOG="$ROOT/.local/kwokctl-$NAME.log"
quiet() { mkdir -p "$(dirname "$KWOKCTL_LOG")"; "$@" >>"$KWOKCTL_LOG" 2>&1 || { tail -n 30 "$KWOKCTL_LOG" >&2; die "failed: $* (log: $KWOKCTL_LOG)"; }; }

k() { kubectl --kubeconfig "$KUBECONFIG_OUT" "$@"; }
exists() { kwokctl get clusters 2>/dev/null | grep -qx "$NAME"; }
served() { [[ -f "$KUBECONFIG_OUT" ]] && k get --raw /readyz >/dev/null 2>&1; }

# The seed's check pipes into `nc` and expects it to return once the echo server closes: an nc that
# half-closes on end of input (ncat, busybox; OpenBSD's needs -N). Debian's ncat also provides `nc`.
ensure_nc() {
  command -v ncat >/dev/null && return 0
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    log "installing ncat (Debian package) for the seed's nc checks"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q ncat >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q ncat >/dev/null 2>&1; } \
      || log "could not install ncat; the seed's nc loop needs an nc that half-closes on end of input"
  fi
}

up() {
  bash "$ROOT/scripts/toolchain.sh" cluster istioctl mesh
  local started=$SECONDS
  if served; then
    log "local cluster already running"
  elif exists; then
    log "starting the stopped local cluster"
    quiet kwokctl start cluster --name "$NAME" --wait 120s
  else
    log "creating the local cluster (kwokctl, binary runtime)"
    # kwokctl merges the admin context into ~/.kube/config (or $KUBECONFIG) unless given --kubeconfig "", and takes
    # it out of there on delete: the cluster's only kubeconfig is $KUBECONFIG_OUT, written below. A file of merged
    # contexts in $KWOK_WORKDIR is not read by anything and would outlive its clusters: none is kept.
    rm -f "$KWOK_WORKDIR/merged-kubeconfig"
    # kwokctl writes each cluster's admin and CA keys world-readable (0644, in 0750 folders): only the owner may
    # enter the folder that holds them.
    mkdir -p "$KWOK_WORKDIR" && chmod 700 "$KWOK_WORKDIR"
    local bin
    bin=$(dirname "$(command -v kube-apiserver)")
    quiet kwokctl create cluster --name "$NAME" --runtime binary --config "$ROOT/cluster/kwokctl.yaml" \
      --kube-apiserver-binary "$bin/kube-apiserver" \
      --kube-controller-manager-binary "$bin/kube-controller-manager" \
      --kube-scheduler-binary "$bin/kube-scheduler" \
      --kwok-controller-binary "$bin/kwok" \
      --etcd-binary "$bin/etcd" \
      --kubeconfig "" \
      --wait 120s
  fi
  mkdir -p "$(dirname "$KUBECONFIG_OUT")"
  # The admin kubeconfig is readable by its owner only from the moment it exists (written under umask 077, then moved).
  (umask 077 && kwokctl get kubeconfig --name "$NAME" > "$KUBECONFIG_OUT.tmp") && mv -f "$KUBECONFIG_OUT.tmp" "$KUBECONFIG_OUT"
  chmod 600 "$KUBECONFIG_OUT"
  for _ in $(seq 60); do served && break; sleep 1; done
  served || die "the local API server did not become ready; see: KWOK_WORKDIR=$KWOK_WORKDIR kwokctl logs kube-apiserver --name $NAME"

  [[ -f "$ISTIO_CRDS" ]] || die "Istio CRDs not found at $ISTIO_CRDS (run npm run toolchain)"
  k apply --server-side --force-conflicts -f "$ISTIO_CRDS" -f "$ROOT/cluster/istiogateway-crd.yaml" >/dev/null
  k create namespace istio-system --dry-run=client -o yaml | k apply -f - >/dev/null
  if [[ -z "$(k get nodes -o name 2>/dev/null)" ]]; then
    quiet kwokctl scale node --replicas 1 --name "$NAME"
  fi
  k wait --for condition=Established crd --all --timeout=60s >/dev/null
  k wait --for condition=Ready node --all --timeout=60s >/dev/null
  ensure_nc
  bash "$ROOT/scripts/mesh.sh" up
  log "local cluster ready in $((SECONDS - started))s; kubeconfig: $KUBECONFIG_OUT"
}

down() {
  bash "$ROOT/scripts/mesh.sh" down
  if exists; then
    # (delete refuses an empty --kubeconfig; /dev/null holds no context, so it writes nothing anywhere)
    quiet kwokctl delete cluster --name "$NAME" --kubeconfig /dev/null
  fi
  rm -f "$KUBECONFIG_OUT" "$KWOK_WORKDIR/merged-kubeconfig"
  # Nothing of ours may outlive `down`: check for strays from an interrupted start.
  local strays
  strays=$(pgrep -f "$KWOK_WORKDIR/clusters/$NAME/" || true)
  if [[ -n "$strays" ]]; then
    local pids
    mapfile -t pids <<<"$strays"
    kill "${pids[@]}" 2>/dev/null || true; sleep 1; kill -9 "${pids[@]}" 2>/dev/null || true
  fi
  # A killed process can take a moment to go (etcd in the middle of a write under load): wait until none is left.
  for _ in $(seq 100); do pgrep -f "$KWOK_WORKDIR/clusters/$NAME/" >/dev/null || break; sleep 0.1; done
  log "local cluster removed"
}

status() {
  if served; then
    kwokctl get components --name "$NAME" 2>/dev/null || true
    k get nodes
    echo
    local mesh=0
    bash "$ROOT/scripts/mesh.sh" status || mesh=$?
    local kube=0
    for pid in $(pgrep -f "$KWOK_WORKDIR/clusters/$NAME/" || true); do kube=$((kube + $(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0))); done
    echo "control plane (etcd, kube-*, kwok): $((kube / 1024)) MB"
    echo "kubeconfig: $KUBECONFIG_OUT"
    return $mesh
  else
    echo "local cluster: not running"
    echo "kubeconfig: $KUBECONFIG_OUT"
    return 3
  fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) die "usage: scripts/cluster.sh up|down|status" ;;
esac
