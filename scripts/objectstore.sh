#!/usr/bin/env bash
# The local team backend: an S3-compatible server (versitygw over a POSIX folder, built from Go modules
# by scripts/toolchain.sh) on loopback, with one bucket for Pulumi's state. Data lives in .local/objectstore.
#   scripts/objectstore.sh up       start (idempotent), create the bucket, print the backend settings
#   scripts/objectstore.sh env      print the backend settings (shell `export` lines) without starting
#   scripts/objectstore.sh down     stop the server; the state in the bucket is kept
#   scripts/objectstore.sh status   running or not, and the backend URL
# `eval "$(bash scripts/objectstore.sh up)"` points the shell's pulumi, npm run local and the tools at it.
# ASM_TCP_SHIFT_OBJECTSTORE_DIR / _PORT / _BUCKET run a second, independent server (the tests use their own).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

DIR=${ASM_TCP_SHIFT_OBJECTSTORE_DIR:-$ROOT/.local/objectstore}
PORT=${ASM_TCP_SHIFT_OBJECTSTORE_PORT:-7070}
BUCKET=${ASM_TCP_SHIFT_OBJECTSTORE_BUCKET:-asm-tcp-shift-state}
REGION=$OBJECTSTORE_REGION
ACCESS_KEY=$OBJECTSTORE_ACCESS_KEY
SECRET_KEY=$OBJECTSTORE_SECRET_KEY
PIDFILE="$DIR/versitygw.pid"
LOGFILE="$DIR/versitygw.log"
ENDPOINT="127.0.0.1:$PORT"
BACKEND_URL="s3://$BUCKET?endpoint=$ENDPOINT&disableSSL=true&s3ForcePathStyle=true&region=$REGION"

pid_of_server() {
  local pid
  pid=$(cat "$PIDFILE" 2>/dev/null || true)
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q "versitygw" && echo "$pid"
}
healthy() { curl -sf -o /dev/null --max-time 2 "http://$ENDPOINT/health"; }
# Signed bucket requests without a body (curl signs the payload hash header it is given, as S3 requires).
EMPTY_SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
# The credentials reach curl on its standard input (`-K -`), never on its command line, where every process could read them.
s3() {
  printf 'user = "%s:%s"\n' "$ACCESS_KEY" "$SECRET_KEY" |
    curl -s --max-time 10 -K - --aws-sigv4 "aws:amz:$REGION:s3" -H "x-amz-content-sha256: $EMPTY_SHA256" "$@"
}

print_env() {
  cat <<EOF
export PULUMI_BACKEND_URL='$BACKEND_URL'
export AWS_ACCESS_KEY_ID='$ACCESS_KEY'
export AWS_SECRET_ACCESS_KEY='$SECRET_KEY'
export AWS_REGION='$REGION'
EOF
}

start_server() {
  local meta=("$@")
  mkdir -p "$DIR/data"
  # Its own session, so it outlives this script; the recorded pid is the server's own. The root credentials go in
  # its environment (versitygw reads ROOT_ACCESS_KEY_ID / ROOT_SECRET_ACCESS_KEY), never on its command line.
  ROOT_ACCESS_KEY_ID=$ACCESS_KEY ROOT_SECRET_ACCESS_KEY=$SECRET_KEY setsid "$(command -v versitygw)" --port "$ENDPOINT" --region "$REGION" \
    --health /health --quiet posix "${meta[@]}" "$DIR/data" >>"$LOGFILE" 2>&1 < /dev/null &
  echo $! > "$PIDFILE"
}

up() {
  bash "$ROOT/scripts/toolchain.sh" objectstore
  PATH="$(bash "$ROOT/scripts/toolchain.sh" --print-path):$PATH"
  mkdir -p "$DIR"
  if [[ -n "$(pid_of_server)" ]] && healthy; then
    log "object store already running on $ENDPOINT"
  else
    if healthy; then die "$ENDPOINT already serves something that is not this object store (pid file $PIDFILE); set ASM_TCP_SHIFT_OBJECTSTORE_PORT"; fi
    local meta=()
    # Object metadata goes to extended attributes; a filesystem without user xattrs gets a sidecar folder.
    [[ -d "$DIR/meta" ]] && meta=(--sidecar "$DIR/meta")
    start_server "${meta[@]}"
    for _ in $(seq 100); do healthy && break; kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break; sleep 0.1; done
    if ! healthy && [[ ${#meta[@]} -eq 0 ]] && grep -q "xattr check failed" "$LOGFILE"; then
      log "no extended attributes on $DIR/data; keeping object metadata in $DIR/meta"
      mkdir -p "$DIR/meta"
      start_server --sidecar "$DIR/meta"
      for _ in $(seq 100); do healthy && break; kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break; sleep 0.1; done
    fi
    healthy || { tail -n 20 "$LOGFILE" >&2; die "the object store did not start on $ENDPOINT (log: $LOGFILE)"; }
    log "object store listening on $ENDPOINT (pid $(cat "$PIDFILE"), data in ${DIR/#$ROOT/.}/data)"
  fi
  local code
  code=$(s3 -o /dev/null -w '%{http_code}' -I "http://$ENDPOINT/$BUCKET")
  if [[ "$code" == 404 ]]; then
    code=$(s3 -o /dev/null -w '%{http_code}' -X PUT "http://$ENDPOINT/$BUCKET")
    [[ "$code" == 200 ]] || die "creating bucket $BUCKET failed (HTTP $code)"
    log "created bucket $BUCKET"
  elif [[ "$code" != 200 ]]; then
    die "bucket $BUCKET is not usable (HTTP $code)"
  fi
  print_env
}

down() {
  local pid
  pid=$(pid_of_server || true)
  if [[ -n "$pid" ]]; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    log "object store stopped (state kept in ${DIR/#$ROOT/.}/data)"
  else
    log "object store not running"
  fi
  rm -f "$PIDFILE"
}

status() {
  if [[ -n "$(pid_of_server || true)" ]] && healthy; then
    echo "object store: running on $ENDPOINT (pid $(cat "$PIDFILE")), data in $DIR/data"
    echo "PULUMI_BACKEND_URL=$BACKEND_URL"
  else
    echo "object store: not running"
    return 3
  fi
}

case "${1:-}" in
  up) up ;;
  env) print_env ;;
  down) down ;;
  status) status ;;
  *) die "usage: scripts/objectstore.sh up|env|down|status" ;;
esac
