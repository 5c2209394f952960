#!/usr/bin/env bash
# The embedded local control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
# kwok (fake nodes whose pods turn Ready), run by kwokctl as local processes on loopback, all built
# from Go modules by scripts/toolchain.sh. Data lives in .local/ (gitignored).
# Around it, scripts/mesh.sh runs the mesh: istiod (Istio's pilot-discovery), the IstioGateway
# controller and echo-pod runner, and the ingress gateway's data plane (asm-local, mesh/).
#
# Two topologies (docs/local-mesh.md):
#   local  one API server plays both of ASM's roles (the default)
#   asm    ASM-shaped: a mesh control-plane API server (ASM's: Istio's CRDs, IstioGateway, ASM's preset roles; no
#          nodes, no scheduler, no kwok) and a data-plane cluster (ACK's: the node, Deployments, Services, the
#          gateway pods); istiod reads its config from the control plane and the data plane as an Istio remote cluster
#
#   scripts/cluster.sh up [--topology local|asm]   start (idempotent), install the CRDs, a fake node, the mesh
#   scripts/cluster.sh down                        stop every process and delete the cluster's data
#   scripts/cluster.sh status                      components with their memory, and the kubeconfig paths
#   scripts/cluster.sh credentials --plane control|data --role ROLE [--expired]
#                                                  (asm) print a kubeconfig for a new user holding ROLE on that plane
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

# ASM_TCP_SHIFT_CLUSTER names a second, independent cluster (the integration tests use their own).
NAME=$(cluster_name)
export KWOK_WORKDIR="$ROOT/.local/kwok"
if [[ "$NAME" == asm-tcp-shift ]]; then CLUSTER_DIR="$ROOT/.local/cluster"; else CLUSTER_DIR="$ROOT/.local/cluster-$NAME"; fi
# The data plane's (in `local`: the only) admin kubeconfig; scripts/mesh.sh and tools/cluster/mesh.ts find the mesh from it.
KUBECONFIG_OUT="$CLUSTER_DIR/kubeconfig"
# `asm` topology: the control plane is a second kwok cluster; its admin kubeconfig is for the mesh's own processes
# (istiod, the IstioGateway controller) and for tests; users get control-plane.kubeconfig (istio-admin only).
CP_NAME="$NAME-cp"
CP_ADMIN="$CLUSTER_DIR/control-plane-admin.kubeconfig"
# Cluster IDs: the data plane's is ACK-shaped (c + 32 hex), fixed by the name so that a stack's asm.clusterIds
# survives down/up; the control plane's is istiod's own --clusterID.
DP_ID="c$(printf '%s' "$NAME" | sha256sum | cut -c1-32)"
CP_ID="asm-$NAME"
PATH="$(bash "$ROOT/scripts/toolchain.sh" --print-path):$PATH"
ISTIO_CRDS="$(dirname "$(dirname "$(command -v istioctl || echo /missing/bin/istioctl)")")/crd-all.gen.yaml"

# kwokctl logs JSON lines per step; keep them in a file and show them only when something fails.
KWOKCTL_LOG="$ROOT/.local/kwokctl-$NAME.log"
quiet() { mkdir -p "$(dirname "$KWOKCTL_LOG")"; "$@" >>"$KWOKCTL_LOG" 2>&1 || { tail -n 30 "$KWOKCTL_LOG" >&2; die "failed: $* (log: $KWOKCTL_LOG)"; }; }

k() { kubectl --kubeconfig "$KUBECONFIG_OUT" "$@"; }
kcp() { kubectl --kubeconfig "$CP_ADMIN" "$@"; }
# The list is read whole before it is searched: `kwokctl ... | grep -q` under pipefail fails when grep stops at the
# first match and kwokctl then writes into the closed pipe, which made a listed cluster look absent.
exists() {
  local all
  all=$(kwokctl get clusters 2>/dev/null) || return 1
  grep -qx -- "${1:-$NAME}" <<<"$all"
}
served() { [[ -f "$KUBECONFIG_OUT" ]] && k get --raw /readyz >/dev/null 2>&1; }
cp_served() { [[ -f "$CP_ADMIN" ]] && kcp get --raw /readyz >/dev/null 2>&1; }

# The topology this cluster was created with (remembered in its folder), else the default.
topology() { if [[ -f "$CLUSTER_DIR/topology" ]]; then cat "$CLUSTER_DIR/topology"; else echo local; fi; }

# private FILE CMD...: CMD's output into FILE, readable by its owner only from the moment it exists (umask 077), and
# only whole (one rename, after CMD succeeded).
private() { local f=$1; shift; (umask 077 && "$@" > "$f.tmp") || { rm -f "$f.tmp"; die "failed: $*"; }; mv -f "$f.tmp" "$f"; }

# Creates (or restarts) one kwok cluster.  kwok_cluster NAME [kwokctl create flags...]
kwok_cluster() {
  local name=$1; shift
  if exists "$name"; then
    log "starting the stopped cluster $name"
    quiet kwokctl start cluster --name "$name" --wait 120s
    return
  fi
  # kwokctl merges the admin context into ~/.kube/config (or $KUBECONFIG) unless given --kubeconfig "", and takes
  # it out of there on delete: a cluster's only kubeconfigs are the ones this script writes. A file of merged
  # contexts in $KWOK_WORKDIR is not read by anything and would outlive its clusters: none is kept.
  rm -f "$KWOK_WORKDIR/merged-kubeconfig"
  # kwokctl writes each cluster's admin and CA keys world-readable (0644, in 0750 folders): only the owner may
  # enter the folder that holds them.
  mkdir -p "$KWOK_WORKDIR" && chmod 700 "$KWOK_WORKDIR"
  local bin
  bin=$(dirname "$(command -v kube-apiserver)")
  quiet kwokctl create cluster --name "$name" --runtime binary --config "$ROOT/cluster/kwokctl.yaml" \
    --kube-apiserver-binary "$bin/kube-apiserver" \
    --kube-controller-manager-binary "$bin/kube-controller-manager" \
    --kube-scheduler-binary "$bin/kube-scheduler" \
    --kwok-controller-binary "$bin/kwok" \
    --etcd-binary "$bin/etcd" \
    --kubeconfig "" \
    --wait 120s "$@"
}

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
  local want=""
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --topology) want=${2:-}; shift 2 || die "--topology needs a value (local or asm)" ;;
      --topology=*) want=${1#--topology=}; shift ;;
      *) die "up: unknown argument '$1' (usage: scripts/cluster.sh up [--topology local|asm])" ;;
    esac
  done
  local have
  have=$(topology)
  if [[ -z "$want" ]]; then want=$have; fi
  [[ "$want" == local || "$want" == asm ]] || die "--topology must be local or asm, not '$want'"
  if [[ -f "$CLUSTER_DIR/topology" && "$want" != "$have" ]]; then
    die "cluster $NAME runs the '$have' topology; take it down first (scripts/cluster.sh down) to start it as '$want'"
  fi
  bash "$ROOT/scripts/toolchain.sh" cluster istioctl mesh
  local started=$SECONDS
  mkdir -p "$CLUSTER_DIR"
  echo "$want" > "$CLUSTER_DIR/topology"
  if [[ "$want" == asm ]]; then up_asm; else up_local; fi
  ensure_nc
  bash "$ROOT/scripts/mesh.sh" up
  log "local cluster ($want topology) ready in $((SECONDS - started))s; kubeconfig: $KUBECONFIG_OUT"
}

# The admin kubeconfig kwokctl gives for a cluster (file-path certificates: for this machine's own processes only).
admin_kubeconfig() { private "$2" kwokctl get kubeconfig --name "$1"; }

wait_served() {
  local check=$1 name=$2
  for _ in $(seq 60); do "$check" && return 0; sleep 1; done
  die "the API server of $name did not become ready; see: KWOK_WORKDIR=$KWOK_WORKDIR kwokctl logs kube-apiserver --name $name"
}

add_node() {
  if [[ -z "$(k get nodes -o name 2>/dev/null)" ]]; then
    quiet kwokctl scale node --replicas 1 --name "$NAME"
  fi
  k wait --for condition=Ready node --all --timeout=60s >/dev/null
}

up_local() {
  if served; then log "local cluster already running"; else log "creating or starting the local cluster (kwokctl, binary runtime)"; kwok_cluster "$NAME"; fi
  admin_kubeconfig "$NAME" "$KUBECONFIG_OUT"
  wait_served served "$NAME"
  [[ -f "$ISTIO_CRDS" ]] || die "Istio CRDs not found at $ISTIO_CRDS (run npm run toolchain)"
  k apply --server-side --force-conflicts -f "$ISTIO_CRDS" -f "$ROOT/cluster/istiogateway-crd.yaml" >/dev/null
  k create namespace istio-system --dry-run=client -o yaml | k apply -f - >/dev/null
  add_node
  k wait --for condition=Established crd --all --timeout=60s >/dev/null
}

up_asm() {
  # The control plane's kwok cluster is "<name>-cp": refuse when that is another cluster of this project.
  if [[ -e "$ROOT/.local/cluster-$CP_NAME" ]]; then die "the control plane's cluster name $CP_NAME is taken by another local cluster (.local/cluster-$CP_NAME)"; fi
  # The data plane (ACK's role): a whole kwok cluster, as in `local`, without Istio's CRDs (ASM keeps them on its own
  # API server; the "two kubeconfigs swapped" case shows as Istio CRDs missing).
  if served; then log "data plane already running"; else log "creating or starting the data plane (ACK's role)"; kwok_cluster "$NAME"; fi
  # The mesh control plane (ASM's role): no nodes and no workloads, so no kube-scheduler and no kwok controller;
  # kube-controller-manager stays for namespace deletion and garbage collection.
  if cp_served; then log "mesh control plane already running"; else log "creating or starting the mesh control plane (ASM's role)"; kwok_cluster "$CP_NAME" --disable kube-scheduler,kwok-controller; fi
  admin_kubeconfig "$NAME" "$KUBECONFIG_OUT"
  admin_kubeconfig "$CP_NAME" "$CP_ADMIN"
  wait_served served "$NAME"
  wait_served cp_served "$CP_NAME"
  [[ -f "$ISTIO_CRDS" ]] || die "Istio CRDs not found at $ISTIO_CRDS (run npm run toolchain)"
  kcp apply --server-side --force-conflicts -f "$ISTIO_CRDS" -f "$ROOT/cluster/istiogateway-crd.yaml" >/dev/null
  kcp apply --server-side --force-conflicts -f "$ROOT/cluster/asm-rbac.yaml" >/dev/null
  k apply --server-side --force-conflicts -f "$ROOT/cluster/ack-rbac.yaml" >/dev/null
  # istio-system on both: IstioGateways live there on ASM; their Deployment and Service istio-<name> on ACK.
  for c in k kcp; do "$c" create namespace istio-system --dry-run=client -o yaml | "$c" apply -f - >/dev/null; done
  add_node
  kcp wait --for condition=Established crd --all --timeout=60s >/dev/null
  echo "$DP_ID" > "$CLUSTER_DIR/data-plane-cluster-id"
  # The user's two kubeconfigs, as ASM and ACK hand them out: a client certificate each, inline.
  [[ -f "$CLUSTER_DIR/control-plane.kubeconfig" ]] || private "$CLUSTER_DIR/control-plane.kubeconfig" mint control istio-admin ""
  [[ -f "$CLUSTER_DIR/data-plane.kubeconfig" ]] || private "$CLUSTER_DIR/data-plane.kubeconfig" mint data cluster-admin ""
}

# Roles a minted user may hold on each plane (bound to groups in cluster/asm-rbac.yaml and cluster/ack-rbac.yaml).
CONTROL_ROLES=(istio-admin istio-ops istio-readonly)
DATA_ROLES=(cluster-admin istio-reader)

# mint PLANE ROLE EXPIRED: a kubeconfig on stdout for a new user (CN <role>-<random>) in group asm-tcp-shift:<role>,
# its certificate signed by that plane's CA. The kubeconfig's cluster is named by the plane's cluster ID (istiod takes
# a remote's ID from it).
mint() {
  local plane=$1 role=$2 expired=$3 kwok kubeconfig id
  case "$plane" in
    control) kwok=$CP_NAME kubeconfig=$CP_ADMIN id=$CP_ID ;;
    data) kwok=$NAME kubeconfig=$KUBECONFIG_OUT id=$DP_ID ;;
  esac
  local pki="$KWOK_WORKDIR/clusters/$kwok/pki" server args=()
  server=$(kubectl --kubeconfig "$kubeconfig" config view --minify -o jsonpath='{.clusters[0].cluster.server}')
  [[ -n "$server" && -f "$pki/ca.key" ]] || die "no $plane plane to mint credentials for (run scripts/cluster.sh up --topology asm)"
  [[ -n "$expired" ]] && args+=(--expired)
  "$(bash "$ROOT/scripts/toolchain.sh" --mesh-binary)" credentials --ca-cert "$pki/ca.crt" --ca-key "$pki/ca.key" --server "$server" \
    --cluster "$id" --user "$role-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')" --group "asm-tcp-shift:$role" "${args[@]}"
}

credentials() {
  local plane="" role="" expired=""
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --plane) plane=${2:-}; shift 2 || die "--plane needs a value" ;;
      --role) role=${2:-}; shift 2 || die "--role needs a value" ;;
      --expired) expired=1; shift ;;
      *) die "credentials: unknown argument '$1' (usage: scripts/cluster.sh credentials --plane control|data --role ROLE [--expired])" ;;
    esac
  done
  [[ "$(topology)" == asm ]] || die "credentials: cluster $NAME is not running the asm topology (scripts/cluster.sh up --topology asm)"
  local roles=()
  case "$plane" in
    control) roles=("${CONTROL_ROLES[@]}") ;;
    data) roles=("${DATA_ROLES[@]}") ;;
    *) die "credentials: --plane must be control or data" ;;
  esac
  [[ " ${roles[*]} " == *" $role "* ]] || die "credentials: --role on the $plane plane must be one of: ${roles[*]}"
  bash "$ROOT/scripts/toolchain.sh" mesh >/dev/null 2>&1 || bash "$ROOT/scripts/toolchain.sh" mesh
  mint "$plane" "$role" "$expired"
}

# Stops one kwok cluster's processes and deletes its data; nothing of it may outlive `down`.
remove_cluster() {
  local name=$1
  if exists "$name"; then
    # (delete refuses an empty --kubeconfig; /dev/null holds no context, so it writes nothing anywhere)
    quiet kwokctl delete cluster --name "$name" --kubeconfig /dev/null
  fi
  # Check for strays from an interrupted start.
  local strays
  strays=$(pgrep -f "$KWOK_WORKDIR/clusters/$name/" || true)
  if [[ -n "$strays" ]]; then
    local pids
    mapfile -t pids <<<"$strays"
    kill "${pids[@]}" 2>/dev/null || true; sleep 1; kill -9 "${pids[@]}" 2>/dev/null || true
  fi
  # A killed process can take a moment to go (etcd in the middle of a write under load): wait until none is left.
  for _ in $(seq 100); do pgrep -f "$KWOK_WORKDIR/clusters/$name/" >/dev/null || break; sleep 0.1; done
}

down() {
  bash "$ROOT/scripts/mesh.sh" down
  remove_cluster "$NAME"
  # The control plane of an `asm` topology (its topology file is written before anything starts).
  if [[ "$(topology)" == asm ]]; then remove_cluster "$CP_NAME"; fi
  rm -f "$KUBECONFIG_OUT" "$CP_ADMIN" "$CLUSTER_DIR/control-plane.kubeconfig" "$CLUSTER_DIR/data-plane.kubeconfig" \
    "$CLUSTER_DIR/data-plane-cluster-id" "$CLUSTER_DIR/topology" "$KWOK_WORKDIR/merged-kubeconfig"
  log "local cluster removed"
}

# Resident memory (MB) of one kwok cluster's processes: "<total> <kube-apiserver>".
cluster_rss() {
  local total=0 apiserver=0 pid rss
  for pid in $(pgrep -f "$KWOK_WORKDIR/clusters/$1/" || true); do
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    total=$((total + rss))
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "^$KWOK_WORKDIR/clusters/$1/bin/kube-apiserver "; then apiserver=$((apiserver + rss)); fi
  done
  echo "$((total / 1024)) $((apiserver / 1024))"
}

status() {
  local topo total apiserver
  topo=$(topology)
  if ! served || { [[ "$topo" == asm ]] && ! cp_served; }; then
    echo "local cluster ($topo topology): not running"
    echo "kubeconfig: $KUBECONFIG_OUT"
    return 3
  fi
  echo "topology: $topo"
  if [[ "$topo" == asm ]]; then
    echo "mesh control plane (ASM's role, cluster id $CP_ID):"
    kwokctl get components --name "$CP_NAME" 2>/dev/null || true
    echo "data plane (ACK's role, cluster id $DP_ID):"
  fi
  kwokctl get components --name "$NAME" 2>/dev/null || true
  k get nodes
  echo
  local mesh=0
  bash "$ROOT/scripts/mesh.sh" status || mesh=$?
  read -r total apiserver < <(cluster_rss "$NAME")
  if [[ "$topo" == asm ]]; then
    local cp_total cp_apiserver
    read -r cp_total cp_apiserver < <(cluster_rss "$CP_NAME")
    echo "mesh control plane (etcd, kube-apiserver, kube-controller-manager): $cp_total MB (kube-apiserver $cp_apiserver MB)"
    echo "data plane (etcd, kube-*, kwok): $total MB (kube-apiserver $apiserver MB)"
    echo "both API servers' clusters: $((cp_total + total)) MB"
    echo "kubeconfig (data plane, admin): $KUBECONFIG_OUT"
    echo "control-plane.kubeconfig (istio-admin), data-plane.kubeconfig (cluster-admin): $CLUSTER_DIR/"
    echo "control plane admin kubeconfig (the mesh's own processes): $CP_ADMIN"
  else
    echo "control plane (etcd, kube-*, kwok): $total MB (kube-apiserver $apiserver MB)"
    echo "kubeconfig: $KUBECONFIG_OUT"
  fi
  return $mesh
}

case "${1:-}" in
  up) shift; up "$@" ;;
  down) down ;;
  status) status ;;
  credentials) shift; credentials "$@" ;;
  *) die "usage: scripts/cluster.sh up [--topology local|asm]|down|status|credentials --plane control|data --role ROLE [--expired]" ;;
esac
