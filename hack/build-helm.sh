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

BINARIES=(helm)
NAME="$VERSIONS_KEY"

version_ok() {  # version_ok NAME: does $BIN_DIR/NAME run and report the pinned version?
  local out
  [[ -x "$BIN_DIR/$1" ]] || return 1
  out=$(timeout 20 "$BIN_DIR/$1" version --template '{{.Version}}' 2>/dev/null) || return 1
  [[ $out == "$HELM_VERSION" ]]
}

build_complete() {
  [[ -f "$STAMP" ]] || return 1
  grep -qx "fingerprint=$(fingerprint)" "$STAMP" || return 1
  version_ok helm
}

for f in helm/go.mod helm/go.sum; do
  [[ -f "$HACK_DIR/$f" ]] || die "missing $HACK_DIR/$f (it is part of the repository)"
done
grep -Eq "^[[:space:]]*(require[[:space:]]+)?helm.sh/helm/v4 ${HELM_VERSION}( |$)" "$HACK_DIR/helm/go.mod" ||
  die "hack/helm/go.mod does not require helm.sh/helm/v4 $HELM_VERSION; update the pin here or there"

# shellcheck source=hack/lib/build.sh
source "$HACK_DIR/lib/build.sh"
exit_if_done

# ---- build ------------------------------------------------------------------
begin_build
log "pin: helm $HELM_VERSION; $go_ver; GOFLAGS=$GOFLAGS"
log "output: $BIN_DIR"

timed "download helm modules" go -C "$HACK_DIR/helm" mod download
timed "build helm" go -C "$HACK_DIR/helm" build -mod=readonly -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=${HELM_VERSION} -X helm.sh/helm/v4/internal/version.gitTreeState=clean" \
  -o "$TMP_BIN/helm" helm.sh/helm/v4/cmd/helm
finish_build "versions=$VERSIONS_KEY"
printf '%s\n' "$BIN_DIR"
