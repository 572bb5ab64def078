#!/usr/bin/env bash
# Builds the Karmada control plane used by the local fleet (tests/e2e/fleet.py), from
# the pinned upstream Go module (no Docker, no release downloads: only the Go module proxy):
#   karmada-controller-manager, karmada-scheduler, karmada-webhook,
#   karmada-aggregated-apiserver, karmadactl             (github.com/karmada-io/karmada)
# The Karmada API server is the kube-apiserver from hack/build-k8s.sh. Karmada's CRDs
# and deploy manifests are read from the module source (--print-source-dir), never copied
# into the repository.
# Binaries go to ${XDG_CACHE_HOME:-$HOME/.cache}/eco-pulse/karmada/<version>/bin/.
#
# Usage: hack/build-karmada.sh [--print-bin-dir | --print-source-dir | --check | --force | --help]
#   (no option)      build if needed, then print the bin dir on the last line of stdout
#   --print-bin-dir  print the bin dir and exit (does not build or check anything)
#   --print-source-dir  print Karmada's source dir in the module cache (downloads it if needed)
#   --check          exit 0 if the bin dir holds a complete build of the pin, else 1
#   --force          rebuild even if a complete build exists
# Environment: BUILD_K8S_JOBS (go build -p, default 2), plus the usual GOPROXY,
#   GOMODCACHE, GOCACHE. Builds run under `nice -n 15`.
set -euo pipefail

# ---- pins (keep in sync with the wrapper module hack/karmada/go.mod) ----------
KARMADA_VERSION=v1.16.0      # github.com/karmada-io/karmada; it pins k8s.io/* at v0.34.x
KARMADA_GIT_COMMIT=b1ff49568525b6bff36869af7dc3beb2add92425  # upstream tag v1.16.0 (module proxy Origin)
KARMADA_SOURCE_DATE=2025-11-29T11:11:52Z  # tag time (module proxy); buildDate, for reproducibility
MIN_GO_MINOR=26              # the wrapper says go 1.26.0, like hack/k8s
# -----------------------------------------------------------------------------

HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MODULE=github.com/karmada-io/karmada
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/eco-pulse/karmada"
OUT_DIR="${CACHE_ROOT}/${KARMADA_VERSION}"
BIN_DIR="${OUT_DIR}/bin"
STAMP="${OUT_DIR}/build.stamp"
# binary name -> package under $MODULE/cmd
declare -A PACKAGE_OF=(
  [karmada-controller-manager]=controller-manager
  [karmada-scheduler]=scheduler
  [karmada-webhook]=webhook
  [karmada-aggregated-apiserver]=aggregated-apiserver
  [karmadactl]=karmadactl
)
BINARIES=(karmada-controller-manager karmada-scheduler karmada-webhook karmada-aggregated-apiserver karmadactl)

log() { printf '[build-karmada] %s\n' "$*" >&2; }
die() { printf '[build-karmada] ERROR: %s\n' "$*" >&2; exit 1; }

usage() { sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

# shellcheck source=hack/lib/build.sh
source "$HACK_DIR/lib/build.sh"
parse_mode "$@"
check_wrapper karmada "$MODULE" "$KARMADA_VERSION"
# Karmada's CRDs (charts/karmada/_crds) and deploy manifests (artifacts/deploy) come from here.
[[ $MODE != source-dir ]] || print_source_dir karmada "$MODULE" charts/karmada/_crds/kustomization.yaml

# What a build depends on besides the version in the directory name: the wrapper's
# go.mod/go.sum and the version metadata baked into the binaries.
fingerprint() {
  {
    printf '%s\n' "$KARMADA_VERSION" "$KARMADA_GIT_COMMIT" "$KARMADA_SOURCE_DATE" "${BINARIES[@]}"
    cat "$HACK_DIR/karmada/go.mod" "$HACK_DIR/karmada/go.sum"
  } | sha256sum | cut -d' ' -f1
}

# version_ok NAME: does $BIN_DIR/NAME run and report the pinned version? Every Karmada
# command prints `<name> version: version.Info{GitVersion:"v1.16.0", ...}`.
version_ok() {
  local name=$1 bin="$BIN_DIR/$1" out
  [[ -x "$bin" ]] || return 1
  out=$(timeout 20 "$bin" version 2>/dev/null) || return 1
  grep -q "^${name} version: version.Info{GitVersion:\"${KARMADA_VERSION}\", GitCommit:\"${KARMADA_GIT_COMMIT}\"" <<<"$out"
}

build_complete() {
  [[ -f "$STAMP" ]] || return 1
  grep -qx "fingerprint=$(fingerprint)" "$STAMP" || return 1
  local b
  for b in "${BINARIES[@]}"; do version_ok "$b" || return 1; done
}

NAME="karmada $KARMADA_VERSION"
exit_if_done

# ---- build ------------------------------------------------------------------
begin_build
log "pin: karmada $KARMADA_VERSION; $go_ver; GOFLAGS=$GOFLAGS"
log "output: $BIN_DIR"

ver_pkg=${MODULE}/pkg/version
ver_ldflags=" -X ${ver_pkg}.gitVersion=${KARMADA_VERSION}"
ver_ldflags+=" -X ${ver_pkg}.gitCommit=${KARMADA_GIT_COMMIT}"
ver_ldflags+=" -X ${ver_pkg}.gitShortCommit=${KARMADA_GIT_COMMIT:0:9}"
ver_ldflags+=" -X ${ver_pkg}.gitTreeState=clean"
ver_ldflags+=" -X ${ver_pkg}.buildDate=${KARMADA_SOURCE_DATE}"

# Downloads (module proxy) first, so download and compile times are separate.
timed "download karmada modules" go -C "$HACK_DIR/karmada" mod download

# Largest first: the later ones reuse most of its compiled packages from GOCACHE.
for b in "${BINARIES[@]}"; do
  timed "build $b" go -C "$HACK_DIR/karmada" build -mod=readonly -trimpath \
    -ldflags "-s -w${ver_ldflags}" -o "$TMP_BIN/$b" "${MODULE}/cmd/${PACKAGE_OF[$b]}"
done

finish_build "version=$KARMADA_VERSION"
printf '%s\n' "$BIN_DIR"
