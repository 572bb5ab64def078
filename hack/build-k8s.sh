#!/usr/bin/env bash
# Builds the real Kubernetes control plane used by the e2e tests, from pinned
# upstream Go modules (no Docker, no release downloads: only the Go module proxy):
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl  (k8s.io/kubernetes)
#   etcd                                                             (go.etcd.io/etcd/server/v3)
#   kwok                                                             (sigs.k8s.io/kwok)
# Binaries go to ${XDG_CACHE_HOME:-$HOME/.cache}/eco-pulse/k8s/<versions>/bin/,
# never into the repository. A complete, matching build there is reused in seconds.
#
# Usage: hack/build-k8s.sh [--print-bin-dir | --check | --force | --help]
#   (no option)      build if needed, then print the bin dir on the last line of stdout
#   --print-bin-dir  print the bin dir and exit (does not build or check anything)
#   --check          exit 0 if the bin dir holds a complete build of the pins, else 1
#   --force          rebuild even if a complete build exists
# Environment: BUILD_K8S_JOBS (go build -p, default 2), plus the usual GOPROXY,
#   GOMODCACHE, GOCACHE. Builds run under `nice -n 15`.
set -euo pipefail

# ---- pins (keep in sync with the wrapper modules hack/{k8s,etcd,kwok}/go.mod) --
K8S_VERSION=v1.36.4          # k8s.io/kubernetes; staging modules k8s.io/* at v0.36.4
K8S_GIT_COMMIT=bb826b1d48562f110659e64e8ec444327433db95   # upstream tag v1.36.4
K8S_SOURCE_DATE=2026-08-20T11:51:43Z  # tag time (module proxy); used as buildDate for reproducibility
ETCD_VERSION=v3.6.16         # go.etcd.io/etcd/server/v3 and its sibling modules
KWOK_VERSION=v0.8.0          # sigs.k8s.io/kwok
MIN_GO_MINOR=26              # all three need go >= 1.26.0
# -----------------------------------------------------------------------------

HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VERSIONS_KEY="k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/eco-pulse/k8s"
OUT_DIR="${CACHE_ROOT}/${VERSIONS_KEY}"
BIN_DIR="${OUT_DIR}/bin"
STAMP="${OUT_DIR}/build.stamp"
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok)

log() { printf '[build-k8s] %s\n' "$*" >&2; }
die() { printf '[build-k8s] ERROR: %s\n' "$*" >&2; exit 1; }

usage() { sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

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

# What a build depends on besides the versions in the directory name: the
# wrappers' go.mod/go.sum and the version metadata baked into the binaries.
fingerprint() {
  {
    printf '%s\n' "$VERSIONS_KEY" "$K8S_GIT_COMMIT" "$K8S_SOURCE_DATE"
    cat "$HACK_DIR/k8s/go.mod" "$HACK_DIR/k8s/go.sum" \
        "$HACK_DIR/etcd/go.mod" "$HACK_DIR/etcd/go.sum" \
        "$HACK_DIR/kwok/go.mod" "$HACK_DIR/kwok/go.sum"
  } | sha256sum | cut -d' ' -f1
}

# version_ok NAME: does $BIN_DIR/NAME run and report the pinned version?
version_ok() {
  local name=$1 bin="$BIN_DIR/$1" out
  [[ -x "$bin" ]] || return 1
  case "$name" in
    kubectl) out=$(timeout 20 "$bin" version --client 2>/dev/null) || return 1
             grep -qx "Client Version: ${K8S_VERSION}" <<<"$out" ;;
    etcd)    out=$(timeout 20 "$bin" --version 2>/dev/null) || return 1
             grep -qx "etcd Version: ${ETCD_VERSION#v}" <<<"$out" ;;
    kwok)    out=$(timeout 20 "$bin" --version 2>/dev/null) || return 1
             grep -q "^kwok version ${KWOK_VERSION} " <<<"$out" ;;
    *)       out=$(timeout 20 "$bin" --version 2>/dev/null) || return 1
             grep -qx "Kubernetes ${K8S_VERSION}" <<<"$out" ;;
  esac
}

build_complete() {
  [[ -f "$STAMP" ]] || return 1
  grep -qx "fingerprint=$(fingerprint)" "$STAMP" || return 1
  local b
  for b in "${BINARIES[@]}"; do version_ok "$b" || return 1; done
}

for f in k8s/go.mod k8s/go.sum etcd/go.mod etcd/go.sum kwok/go.mod kwok/go.sum kwok/stages.yaml; do
  [[ -f "$HACK_DIR/$f" ]] || die "missing $HACK_DIR/$f (it is part of the repository)"
done
# The pins above and the wrapper modules must agree.
STAGING_VERSION="v0.${K8S_VERSION#v1.}"   # v1.36.4 -> v0.36.4
pin_in() { grep -Eq "^[[:space:]]*(require[[:space:]]+)?$2 $3( |$)" "$HACK_DIR/$1" ||
  die "hack/$1 does not require $2 $3; update the pins in hack/build-k8s.sh or the wrapper module"; }
pin_in k8s/go.mod  k8s.io/kubernetes "$K8S_VERSION"
pin_in etcd/go.mod go.etcd.io/etcd/server/v3 "$ETCD_VERSION"
pin_in kwok/go.mod sigs.k8s.io/kwok "$KWOK_VERSION"
if grep -E '^[[:space:]]*k8s\.io/[a-z-]+ => ' "$HACK_DIR/k8s/go.mod" | grep -vq " ${STAGING_VERSION}\$"; then
  die "hack/k8s/go.mod: every k8s.io staging replace must point at ${STAGING_VERSION}"
fi

NAME=$VERSIONS_KEY
# shellcheck source=hack/lib/build.sh
source "$HACK_DIR/lib/build.sh"
exit_if_done

# ---- build ------------------------------------------------------------------
begin_build
log "pins: k8s $K8S_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION; $go_ver; GOFLAGS=$GOFLAGS"
log "output: $BIN_DIR"

k8s_pkg=k8s.io/kubernetes/cmd
ver_ldflags=""
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  ver_ldflags+=" -X ${pkg}.gitVersion=${K8S_VERSION}"
  ver_ldflags+=" -X ${pkg}.gitMajor=$(cut -d. -f1 <<<"${K8S_VERSION#v}")"
  ver_ldflags+=" -X ${pkg}.gitMinor=$(cut -d. -f2 <<<"${K8S_VERSION#v}")"
  ver_ldflags+=" -X ${pkg}.gitCommit=${K8S_GIT_COMMIT}"
  ver_ldflags+=" -X ${pkg}.gitTreeState=clean"
  ver_ldflags+=" -X ${pkg}.buildDate=${K8S_SOURCE_DATE}"
done

# Downloads (module proxy) first, so download and compile times are separate.
timed "download k8s modules"  go -C "$HACK_DIR/k8s"  mod download
timed "download etcd modules" go -C "$HACK_DIR/etcd" mod download
timed "download kwok modules" go -C "$HACK_DIR/kwok" mod download

for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  timed "build $cmd" go -C "$HACK_DIR/k8s" build -mod=readonly -trimpath \
    -ldflags "-s -w${ver_ldflags}" -o "$TMP_BIN/$cmd" "$k8s_pkg/$cmd"
done
timed "build etcd" go -C "$HACK_DIR/etcd" build -mod=readonly -trimpath \
  -ldflags "-s -w" -o "$TMP_BIN/etcd" go.etcd.io/etcd/server/v3
timed "build kwok" go -C "$HACK_DIR/kwok" build -mod=readonly -trimpath \
  -ldflags "-s -w" -o "$TMP_BIN/kwok" sigs.k8s.io/kwok/cmd/kwok

finish_build "versions=$VERSIONS_KEY"
log "kwok stages: $HACK_DIR/kwok/stages.yaml"
printf '%s\n' "$BIN_DIR"
