#!/usr/bin/env bash
# The mesh around the local cluster, as local processes on loopback (started by cluster.sh up):
#   istiod      Istio's own pilot-discovery (plaintext xDS, debug endpoints; no webhooks, no CA)
#   controller  asm-local controller: ASM's IstioGateway controller stand-in + the echo-pod runner
#   gateway     asm-local gateway: the ingress gateway pods, one Envoy each (bootstrapped as Istio's router proxy,
#               xDS from istiod through asm-local's relay), and the CLB stand-in in front of them
#
# In the `asm` topology (scripts/cluster.sh up --topology asm) istiod is ASM's managed control plane: configuration
# from the mesh control-plane API server, Services and endpoints from the data plane as an Istio remote cluster;
# the controller reads IstioGateways there and makes the gateway in the data plane, where the pods run.
#
#   scripts/mesh.sh up|down|status|env          (ASM_TCP_SHIFT_CLUSTER picks the cluster, as in cluster.sh)
#   scripts/mesh.sh restart istiod|controller|gateway
#   scripts/mesh.sh stop istiod|controller|gateway
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

NAME=$(cluster_name)
if [[ "$NAME" == asm-tcp-shift ]]; then
  CLUSTER_DIR="$ROOT/.local/cluster"; DIR="$ROOT/.local/mesh"
else
  CLUSTER_DIR="$ROOT/.local/cluster-$NAME"; DIR="$ROOT/.local/mesh-$NAME"
fi
# The data plane's admin kubeconfig (in `local`, the only cluster's). The rest is written by cluster.sh.
KUBECONFIG_OUT="$CLUSTER_DIR/kubeconfig"
CP_ADMIN="$CLUSTER_DIR/control-plane-admin.kubeconfig"
TOPOLOGY=$(cat "$CLUSTER_DIR/topology" 2>/dev/null || echo local)
if [[ "$TOPOLOGY" == asm ]]; then
  DP_ID=$(cat "$CLUSTER_DIR/data-plane-cluster-id" 2>/dev/null || true)
  CP_ID="asm-$NAME"
fi
PATH="$(bash "$ROOT/scripts/toolchain.sh" --print-path):$PATH"
COMPONENTS=(istiod controller gateway)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Ports and the CLB's loopback address, chosen once per cluster and kept: the default cluster uses Istio's
# well-known ports (the seed's `istioctl proxy-status --xds-address 127.0.0.1:15010`) and 127.0.0.1; any
# other cluster (the tests' own) gets free ports and its own 127.0.0.x, so two clusters can run at once.
# Each gateway pod's Envoy gets free loopback ports of its own (admin, listeners), whatever the cluster.
# DRAIN_DURATION / TERMINATION_DRAIN_DURATION: the mesh's ProxyConfig defaults (Istio's: 45s and 5s).
load_env() {
  mkdir -p "$DIR/state"
  if [[ ! -f "$DIR/env" ]]; then
    if [[ "$NAME" == asm-tcp-shift ]]; then
      printf 'XDS_PORT=15010\nISTIOD_HTTP_PORT=15080\nISTIOD_MONITORING_PORT=15014\nGATEWAY_ADMIN_PORT=15000\nINGRESS_IP=127.0.0.1\n' > "$DIR/env"
    else
      local n=$(( $(printf '%s' "$NAME" | cksum | cut -d' ' -f1) % 200 + 20 ))
      printf 'XDS_PORT=%s\nISTIOD_HTTP_PORT=%s\nISTIOD_MONITORING_PORT=%s\nGATEWAY_ADMIN_PORT=%s\nINGRESS_IP=127.0.0.%s\n' \
        "$(free_port)" "$(free_port)" "$(free_port)" "$(free_port)" "$n" > "$DIR/env"
    fi
    printf 'DRAIN_DURATION=%s\nTERMINATION_DRAIN_DURATION=%s\n' "${ASM_TCP_SHIFT_DRAIN_DURATION:-45s}" "${ASM_TCP_SHIFT_TERMINATION_DRAIN_DURATION:-5s}" >> "$DIR/env"
  fi
  # shellcheck disable=SC1091
  . "$DIR/env"
}

asm_local() { bash "$ROOT/scripts/toolchain.sh" --mesh-binary; }

pid_of() {
  local f="$DIR/$1.pid" pid
  [[ -f "$f" ]] || return 1
  pid=$(cat "$f")
  # Only our own process: the pid file may outlive it and the pid be reused.
  [[ -r "/proc/$pid/cmdline" ]] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "$DIR" && echo "$pid"
}

start() {
  local what=$1 pid
  if pid=$(pid_of "$what"); then return 0; fi
  local log="$DIR/$what.log"
  case "$what" in
    istiod)
      # Upstream Envoy runs the gateway pods (docs/envoy.md): no auto mTLS (its transport_socket_matches need an
      # SDS server) and no metrics provider (istio.stats is an Istio-proxy-only filter; none is configured here).
      cat > "$DIR/mesh.yaml" <<YAML
rootNamespace: istio-system
enableAutoMtls: false
defaultConfig:
  discoveryAddress: 127.0.0.1:$XDS_PORT
  drainDuration: ${DRAIN_DURATION:-45s}
  terminationDrainDuration: ${TERMINATION_DRAIN_DURATION:-5s}
YAML
      # Topology: in `local` one cluster is config and registry. In `asm` the config cluster (--kubeconfig, Istio CRs,
      # its own cluster id) is the mesh control plane, and the data plane is a remote cluster read from a folder of
      # kubeconfigs (PILOT_MULTICLUSTER_KUBECONFIG_PATH, istio/istio pilot/pkg/features/pilot.go; it takes precedence
      # over remote Secrets, pkg/kube/multicluster/secretcontroller.go). The remote's cluster id is its kubeconfig's
      # current-context cluster (kubeconfig_files.go clusterIDFromKubeconfig). EXTERNAL_ISTIOD stays unset, so istiod
      # only reads the remote (no webhook patches or ConfigMaps there: pilot/pkg/serviceregistry/kube/controller/
      # multicluster.go), with a user bound to a copy of Istio's istio-reader-clusterrole (cluster/ack-rbac.yaml).
      local kubeconfig=$KUBECONFIG_OUT cluster_id=Kubernetes topology_env=()
      if [[ "$TOPOLOGY" == asm ]]; then
        [[ -n "$DP_ID" && -f "$CP_ADMIN" ]] || die "asm topology without its control plane or data-plane cluster id; run cluster.sh up --topology asm"
        kubeconfig=$CP_ADMIN cluster_id=$CP_ID
        mkdir -p "$DIR/remote-clusters"
        # An inline client certificate (file paths would fail istiod's kubeconfig sanitizer), written whole and
        # owner-only before istiod looks (it watches *.yaml only, so the .tmp file is never read half-written).
        if [[ ! -f "$DIR/remote-clusters/$DP_ID.yaml" ]]; then
          (umask 077 && bash "$ROOT/scripts/cluster.sh" credentials --plane data --role istio-reader > "$DIR/remote-clusters/$DP_ID.yaml.tmp") \
            || die "could not mint istiod's data-plane kubeconfig"
          mv -f "$DIR/remote-clusters/$DP_ID.yaml.tmp" "$DIR/remote-clusters/$DP_ID.yaml"
        fi
        topology_env=(PILOT_MULTICLUSTER_KUBECONFIG_PATH="$DIR/remote-clusters")
      fi
      # The env turns off what needs a real cluster's webhooks and certificates; debug endpoint auth is
      # off so that istioctl proxy-status works over plaintext xDS; metadata exchange is off because its
      # cluster filter (istio.metadata_exchange) exists only in Istio's proxy build: upstream Envoy rejects
      # every cluster that carries it.
      env POD_NAMESPACE=istio-system POD_NAME=istiod-local INJECT_ENABLED=false INJECTION_WEBHOOK_CONFIG_NAME= \
        VALIDATION_WEBHOOK_CONFIG_NAME= ENABLE_CA_SERVER=false ENABLE_DEBUG_ENDPOINT_AUTH=false PILOT_ENABLE_GATEWAY_API=false \
        PILOT_ENABLE_METADATA_EXCHANGE=false "${topology_env[@]}" \
        setsid pilot-discovery discovery --kubeconfig "$kubeconfig" --meshConfig "$DIR/mesh.yaml" \
        --networksConfig "$DIR/no-networks.yaml" --domain cluster.local --clusterID "$cluster_id" \
        --grpcAddr "127.0.0.1:$XDS_PORT" --secureGRPCAddr "" --httpAddr "127.0.0.1:$ISTIOD_HTTP_PORT" --httpsAddr "" \
        --monitoringAddr "127.0.0.1:$ISTIOD_MONITORING_PORT" --ctrlz_port 0 --log_output_level default:info \
        </dev/null >>"$log" 2>&1 &
      ;;
    controller)
      # In `asm`: IstioGateways (and their status) on the control plane, the gateway and the echo pods in the data plane.
      local cross=()
      [[ "$TOPOLOGY" == asm ]] && cross=(--config-kubeconfig "$CP_ADMIN" --cluster-id "$DP_ID")
      setsid "$(asm_local)" controller --kubeconfig "$KUBECONFIG_OUT" --state-dir "$DIR/state" --ingress-ip "$INGRESS_IP" \
        --tcp-echo "$(command -v tcp-echo)" "${cross[@]}" </dev/null >>"$log" 2>&1 &
      ;;
    gateway)
      # The gateway pods' CLUSTER_ID is the cluster they run in, so istiod finds them in that cluster's registry
      # (pilot/pkg/serviceregistry/aggregate/controller.go looks a proxy up only in the registry of its cluster).
      local gw_cluster=Kubernetes
      [[ "$TOPOLOGY" == asm ]] && gw_cluster=$DP_ID
      setsid "$(asm_local)" gateway --kubeconfig "$KUBECONFIG_OUT" --state-dir "$DIR/state" --xds-address "127.0.0.1:$XDS_PORT" --cluster-id "$gw_cluster" \
        --admin-address "127.0.0.1:$GATEWAY_ADMIN_PORT" --envoy "$(command -v envoy)" \
        --drain-duration "${DRAIN_DURATION:-45s}" --termination-drain-duration "${TERMINATION_DRAIN_DURATION:-5s}" </dev/null >>"$log" 2>&1 &
      ;;
  esac
  echo $! > "$DIR/$what.pid"
}

wait_ready() {
  local what=$1 url
  case "$what" in
    istiod) url="http://127.0.0.1:$ISTIOD_HTTP_PORT/ready" ;;
    gateway) url="http://127.0.0.1:$GATEWAY_ADMIN_PORT/pods" ;;
    controller) [[ -f "$DIR/state/echo-pods.json" ]] && return 0; url="" ;;
  esac
  for _ in $(seq 600); do
    # (Liveness by pid: just after the fork the command line may not be the program's yet.)
    kill -0 "$(cat "$DIR/$what.pid")" 2>/dev/null || { tail -n 30 "$DIR/$what.log" >&2; die "$what exited (log: $DIR/$what.log)"; }
    if [[ -n "$url" ]]; then curl -fsS -o /dev/null "$url" 2>/dev/null && return 0; else [[ -f "$DIR/state/echo-pods.json" ]] && return 0; fi
    sleep 0.1
  done
  die "$what did not become ready in 60s (log: $DIR/$what.log)"
}

stop() {
  local what=$1 pid
  if pid=$(pid_of "$what"); then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$DIR/$what.pid"
}

up() {
  [[ -f "$KUBECONFIG_OUT" ]] || die "no local cluster ($KUBECONFIG_OUT); run cluster.sh up"
  [[ "$TOPOLOGY" != asm || -f "$CP_ADMIN" ]] || die "no mesh control plane ($CP_ADMIN); run cluster.sh up --topology asm"
  bash "$ROOT/scripts/toolchain.sh" mesh envoy
  load_env
  local started=$SECONDS
  for c in "${COMPONENTS[@]}"; do start "$c"; wait_ready "$c"; done
  log "mesh ready in $((SECONDS - started))s: istiod xDS 127.0.0.1:$XDS_PORT (debug http://127.0.0.1:$ISTIOD_MONITORING_PORT/debug), gateway pods (each Envoy's admin address) http://127.0.0.1:$GATEWAY_ADMIN_PORT/pods, LoadBalancer address $INGRESS_IP"
}

down() {
  [[ -d "$DIR" ]] || return 0
  for c in gateway controller istiod; do stop "$c"; done
  rm -rf "$DIR"
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

status() {
  [[ -d "$DIR" ]] || { echo "mesh: not running"; return 3; }
  load_env
  local total=0 pid rss down=0
  printf '%-12s %-8s %8s  %s\n' COMPONENT PID RSS_MB ADDRESS
  for c in "${COMPONENTS[@]}"; do
    local addr
    case "$c" in
      istiod) addr="xDS 127.0.0.1:$XDS_PORT, http 127.0.0.1:$ISTIOD_HTTP_PORT, debug 127.0.0.1:$ISTIOD_MONITORING_PORT" ;;
      controller) addr="LoadBalancer address $INGRESS_IP" ;;
      gateway) addr="pods http://127.0.0.1:$GATEWAY_ADMIN_PORT/pods (relay, CLB stand-in)" ;;
    esac
    if pid=$(pid_of "$c"); then
      rss=$(rss_kb "$pid"); total=$((total + rss))
      printf '%-12s %-8s %8d  %s\n' "$c" "$pid" $((rss / 1024)) "$addr"
    else
      printf '%-12s %-8s %8s  %s\n' "$c" "-" "-" "not running"; down=1
    fi
  done
  # The echo pods' processes (children of the controller).
  local n=0 echo_rss=0
  if pid=$(pid_of controller); then
    for child in $(pgrep -P "$pid" || true); do n=$((n + 1)); echo_rss=$((echo_rss + $(rss_kb "$child"))); done
  fi
  total=$((total + echo_rss))
  printf '%-12s %-8s %8d  %s\n' "echo pods" "$n procs" $((echo_rss / 1024)) "Istio's tcp-echo, one per pod (table: $DIR/state/echo-pods.json)"
  # The gateway pods' Envoys (children of the gateway runner).
  local m=0 envoy_rss=0
  if pid=$(pid_of gateway); then
    for child in $(pgrep -P "$pid" || true); do m=$((m + 1)); envoy_rss=$((envoy_rss + $(rss_kb "$child"))); done
  fi
  total=$((total + envoy_rss))
  printf '%-12s %-8s %8d  %s\n' "envoy pods" "$m procs" $((envoy_rss / 1024)) "Envoy $(envoy --version 2>/dev/null | grep -oE '/[0-9]+\.[0-9]+\.[0-9]+/' | tr -d / | head -n1), one per gateway pod (admin addresses: /pods above)"
  printf '%-12s %-8s %8d\n' "mesh total" "" $((total / 1024))
  return $down
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  env)
    load_env; cat "$DIR/env"; echo "KUBECONFIG=$KUBECONFIG_OUT"; echo "MESH_DIR=$DIR"; echo "TOPOLOGY=$TOPOLOGY"
    if [[ "$TOPOLOGY" == asm ]]; then
      echo "CONTROL_PLANE_KUBECONFIG=$CP_ADMIN"; echo "CONTROL_PLANE_CLUSTER_ID=$CP_ID"; echo "DATA_PLANE_CLUSTER_ID=$DP_ID"
    fi
    ;;
  stop) load_env; stop "${2:?component}" ;;
  start) load_env; start "${2:?component}"; wait_ready "$2" ;;
  restart) load_env; stop "${2:?component}"; start "$2"; wait_ready "$2" ;;
  *) die "usage: scripts/mesh.sh up|down|status|env|start|stop|restart [istiod|controller|gateway]" ;;
esac
