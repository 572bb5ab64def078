#!/usr/bin/env bash
# Builds helm from its pinned upstream Go module (helm.sh/helm/v4, through the Go
# module proxy; no release downloads), for the chart's tests (helm lint, template,
# install against the local control plane).
# The binary goes to ${XDG_CACHE_HOME:-$HOME/.cache}/eco-pulse/helm/<version>/bin/helm,
# never into the repository. A complete, matching build there is reused in a second.
#
# Usage: hack/build-helm.sh [--print-bin-dir | --check | --force | --help]
#   (no option)      build if needed, then print the bin dir on the last line of stdout
#   --print-bin-dir  print the bin dir and exit (does not build or check anything)
#   --check          exit 0 if the bin dir holds a complete build of the pin, else 1
#   --force          rebuild even if a complete build exists
# Environment: BUILD_K8S_JOBS (go build -p, default 2), plus the usual GOPROXY,
#   GOMODCACHE, GOCACHE. Builds run under `nice -n 15`.
set -euo pipefail

# ---- pin (keep in sync with the wrapper module hack/helm/go.mod) --------------
HELM_VERSION=v4.3.2          # helm.sh/helm/v4
MIN_GO_MINOR=26
# -----------------------------------------------------------------------------

HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VERSIONS_KEY="helm-${HELM_VERSION}"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/eco-pulse/helm"
OUT_DIR="${CACHE_ROOT}/${VERSIONS_KEY}"
BIN_DIR="${OUT_DIR}/bin"
STAMP="${OUT_DIR}/build.stamp"

log() { printf '[build-helm] %s\n' "$*" >&2; }
die() { printf '[build-helm] ERROR: %s\n' "$*" >&2; exit 1; }

usage() { sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

MODE=build
case "${1:-}" in
  "") ;;
  --print-bin-dir) printf '%s\n' "$BIN_DIR"; exit 0 ;;
  --check) MODE=check ;;
  --force) MODE=force ;;
  -h|--help) usage; exit 0 ;;
  *) usage >&2; die "unknown option: $1" ;;
esac
[[ $# -le 1 ]] || die "at most one option expected"

# What a build depends on besides the version in the directory name: the wrapper's go.mod/go.sum.
fingerprint() {
  { printf '%s\n' "$VERSIONS_KEY"; cat "$HACK_DIR/helm/go.mod" "$HACK_DIR/helm/go.sum"; } |
    sha256sum | cut -d' ' -f1
}

version_ok() {
  local out
  [[ -x "$BIN_DIR/helm" ]] || return 1
  out=$(timeout 20 "$BIN_DIR/helm" version --template '{{.Version}}' 2>/dev/null) || return 1
  [[ $out == "$HELM_VERSION" ]]
}

build_complete() {
  [[ -f "$STAMP" ]] || return 1
  grep -qx "fingerprint=$(fingerprint)" "$STAMP" || return 1
  version_ok
}

for f in helm/go.mod helm/go.sum; do
  [[ -f "$HACK_DIR/$f" ]] || die "missing $HACK_DIR/$f (it is part of the repository)"
done
grep -Eq "^[[:space:]]*(require[[:space:]]+)?helm.sh/helm/v4 ${HELM_VERSION}( |$)" "$HACK_DIR/helm/go.mod" ||
  die "hack/helm/go.mod does not require helm.sh/helm/v4 $HELM_VERSION; update the pin here or there"

if [[ $MODE == check ]]; then
  build_complete && exit 0
  log "no complete build in $BIN_DIR"; exit 1
fi

if [[ $MODE == build ]] && build_complete; then
  log "up to date: $VERSIONS_KEY"
  printf '%s\n' "$BIN_DIR"; exit 0
fi

# ---- build ------------------------------------------------------------------
command -v go >/dev/null || die "go not found in PATH (need go >= 1.${MIN_GO_MINOR})"
go_ver=$(GOTOOLCHAIN=local go env GOVERSION)
[[ $go_ver =~ ^go1\.([0-9]+) ]] || die "cannot parse go version '$go_ver'"
(( BASH_REMATCH[1] >= MIN_GO_MINOR )) || die "need go >= 1.${MIN_GO_MINOR}, found $go_ver"

mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/.build.lock"
if ! flock -n 9; then
  log "another build-helm.sh is running; waiting for it (lock $CACHE_ROOT/.build.lock)"
  flock 9
  if [[ $MODE == build ]] && build_complete; then
    log "up to date: $VERSIONS_KEY"; printf '%s\n' "$BIN_DIR"; exit 0
  fi
fi

export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0
export GOFLAGS="-p=${BUILD_K8S_JOBS:-2} -buildvcs=false"
rm -f "$STAMP"
mkdir -p "$BIN_DIR"
TMP_BIN=$(mktemp -d "$OUT_DIR/.bin.XXXXXX")
trap 'rm -rf "$TMP_BIN"' EXIT

log "pin: helm $HELM_VERSION; $go_ver; GOFLAGS=$GOFLAGS"
log "output: $BIN_DIR"

declare -A SECONDS_FOR=()
timed() {  # timed LABEL CMD...: run CMD under nice, record its wall time
  local label=$1; shift
  local t0=$SECONDS
  log "$label ..."
  if ! nice -n 15 "$@"; then die "$label failed: $*"; fi
  SECONDS_FOR[$label]=$((SECONDS - t0))
  log "$label done in ${SECONDS_FOR[$label]}s"
}

timed "download helm modules" go -C "$HACK_DIR/helm" mod download
timed "build helm" go -C "$HACK_DIR/helm" build -mod=readonly -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=${HELM_VERSION} -X helm.sh/helm/v4/internal/version.gitTreeState=clean" \
  -o "$TMP_BIN/helm" helm.sh/helm/v4/cmd/helm

[[ -x "$TMP_BIN/helm" ]] || die "expected binary $TMP_BIN/helm was not produced"
mv -f "$TMP_BIN/helm" "$BIN_DIR/helm"
version_ok || die "$BIN_DIR/helm does not report the pinned version"

{
  echo "fingerprint=$(fingerprint)"
  echo "versions=$VERSIONS_KEY"
  echo "go=$go_ver"
  echo "built_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  for k in "${!SECONDS_FOR[@]}"; do echo "seconds[$k]=${SECONDS_FOR[$k]}"; done | sort
} > "$STAMP.tmp"
mv -f "$STAMP.tmp" "$STAMP"

log "built helm in ${SECONDS}s"
printf '%s\n' "$BIN_DIR"
