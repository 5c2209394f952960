# shellcheck shell=bash
# Which Pulumi CLI the project runs (sourced by scripts/toolchain.sh; defines functions only).
#
# The user's own: a `pulumi` on PATH with its Node.js language host (`pulumi-language-nodejs` beside it, as every
# Pulumi install has it), at any version from PULUMI_MIN_VERSION (toolchain.versions) on, is used as is. Only
# when one of these is missing is the pinned CLI built from Go modules (the offline fallback).

# PATH without the entries under a directory (the toolchain's own, so the choice never picks its own output).
path_without() {
  local exclude=$1 out="" entry
  local IFS=:
  for entry in $PATH; do
    [[ -n "$exclude" && "$entry" == "$exclude"* ]] && continue
    out=${out:+$out:}$entry
  done
  printf '%s' "$out"
}

# True when version $1 (x.y.z, an optional leading v) is at least $2.
version_at_least() {
  local have=${1#v} want=${2#v}
  have=${have%%[-+]*}
  [[ "$(printf '%s\n%s\n' "$want" "$have" | sort -V | head -n1)" == "$want" ]]
}

# Prints the user's usable CLI as three lines (pulumi, pulumi-language-nodejs, version), or nothing; the reason for
# passing over one that is there goes to stderr. $1: the toolchain's directory, never looked in.
user_pulumi() {
  local exclude=${1:-} search cli host version
  search=$(path_without "$exclude")
  cli=$(PATH=$search command -v pulumi) || return 0
  host="$(dirname "$cli")/pulumi-language-nodejs"
  [[ -x "$host" ]] || host=$(PATH=$search command -v pulumi-language-nodejs) || {
    log "pulumi on PATH ($cli) has no Node.js language host (pulumi-language-nodejs) beside it or on PATH; not using it"
    return 0
  }
  version=$(PULUMI_SKIP_UPDATE_CHECK=true "$cli" version 2>/dev/null | head -n1)
  if [[ ! "$version" =~ ^v?[0-9]+\.[0-9]+\.[0-9]+ ]]; then
    log "pulumi on PATH ($cli) did not report a version (\`pulumi version\` said \"$version\"); not using it"
    return 0
  fi
  if ! version_at_least "$version" "$PULUMI_MIN_VERSION"; then
    log "pulumi on PATH ($cli) is $version, older than $PULUMI_MIN_VERSION; not using it"
    return 0
  fi
  printf '%s\n%s\n%s\n' "$cli" "$host" "$version"
}
