#!/usr/bin/env bash
# Builds the Kueue manager (sigs.k8s.io/kueue/cmd/kueue) from its pinned upstream Go module,
# through the Go module proxy (no Docker, no release downloads), for the e2e tests that run
# Eco-Pulse beside a real Kueue (tests/e2e/kueue.py). Kueue's CRDs and webhook configurations
# are read from the module source (--print-source-dir), never copied into the repository.
# The binary goes to ${XDG_CACHE_HOME:-$HOME/.cache}/eco-pulse/kueue/<version>/bin/kueue.
#
# Usage: hack/build-kueue.sh [--print-bin-dir | --print-source-dir | --check | --force | --help]
#   (no option)      build if needed, then print the bin dir on the last line of stdout
#   --print-bin-dir  print the bin dir and exit (does not build or check anything)
#   --print-source-dir  print Kueue's source dir in the module cache (downloads it if needed)
#   --check          exit 0 if the bin dir holds a complete build of the pin, else 1
#   --force          rebuild even if a complete build exists
# Environment: BUILD_K8S_JOBS (go build -p, default 2), plus the usual GOPROXY,
#   GOMODCACHE, GOCACHE. Builds run under `nice -n 15`.
set -euo pipefail

# ---- pins (keep in sync with the wrapper module hack/kueue/go.mod) ------------
KUEUE_VERSION=v0.17.0        # sigs.k8s.io/kueue; it pins k8s.io/* at v0.35.x and says go 1.25.0
KUEUE_SOURCE_DATE=2026-03-31T10:20:15Z  # tag time (module proxy .info); BuildDate, for reproducibility
# The proxy's .info for this version carries no Origin, so the tag's commit is not known here;
# GitCommit says so rather than keeping upstream's placeholder.
KUEUE_GIT_COMMIT=unknown-module-proxy
MIN_GO_MINOR=26              # the wrapper says go 1.26.0, like the others
# -----------------------------------------------------------------------------

HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MODULE=sigs.k8s.io/kueue
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/eco-pulse/kueue"
OUT_DIR="${CACHE_ROOT}/${KUEUE_VERSION}"
BIN_DIR="${OUT_DIR}/bin"
STAMP="${OUT_DIR}/build.stamp"
BINARIES=(kueue)
NAME="kueue $KUEUE_VERSION"

log() { printf '[build-kueue] %s\n' "$*" >&2; }
die() { printf '[build-kueue] ERROR: %s\n' "$*" >&2; exit 1; }

usage() { sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

# shellcheck source=hack/lib/build.sh
source "$HACK_DIR/lib/build.sh"
parse_mode "$@"
check_wrapper kueue "$MODULE" "$KUEUE_VERSION"
# Kueue's CRDs (config/components/crd/bases) and webhook configurations (config/components/webhook)
# come from here.
[[ $MODE != source-dir ]] ||
  print_source_dir kueue "$MODULE" config/components/crd/bases/kueue.x-k8s.io_clusterqueues.yaml

# What a build depends on besides the version in the directory name: the wrapper's
# go.mod/go.sum and the version metadata baked into the binary.
fingerprint() {
  {
    printf '%s\n' "$KUEUE_VERSION" "$KUEUE_GIT_COMMIT" "$KUEUE_SOURCE_DATE" "${BINARIES[@]}"
    cat "$HACK_DIR/kueue/go.mod" "$HACK_DIR/kueue/go.sum"
  } | sha256sum | cut -d' ' -f1
}

# version_ok kueue: does the binary run and report the pinned version? The manager has no
# version flag; it logs `"Initializing" ... "gitVersion": "v0.17.0"` once its flags and
# configuration are read, and here then stops at once: the kubeconfig it is given does not exist
# (an explicit path, and no in-cluster variables: it must never reach a cluster it runs in).
version_ok() {
  local bin="$BIN_DIR/$1" out
  [[ -x "$bin" ]] || return 1
  out=$(env -u KUBERNETES_SERVICE_HOST -u KUBERNETES_SERVICE_PORT -u KUBECONFIG timeout 20 "$bin" \
    --kubeconfig=/nonexistent/eco-pulse-version-check --zap-encoder=json 2>&1) || true
  out=$(grep -F '"msg":"Initializing"' <<<"$out") || return 1
  grep -qF "\"gitVersion\":\"${KUEUE_VERSION}\"" <<<"$out" &&
    grep -qF "\"gitCommit\":\"${KUEUE_GIT_COMMIT}\"" <<<"$out"
}

build_complete() {
  [[ -f "$STAMP" ]] || return 1
  grep -qx "fingerprint=$(fingerprint)" "$STAMP" || return 1
  version_ok kueue
}

exit_if_done

# ---- build ------------------------------------------------------------------
begin_build
log "pin: kueue $KUEUE_VERSION; $go_ver; GOFLAGS=$GOFLAGS"
log "output: $BIN_DIR"

# The variables upstream's Makefile sets (LD_FLAGS there), with the tag time as BuildDate.
ver_pkg=${MODULE}/pkg/version
ver_ldflags=" -X ${ver_pkg}.GitVersion=${KUEUE_VERSION}"
ver_ldflags+=" -X ${ver_pkg}.GitCommit=${KUEUE_GIT_COMMIT}"
ver_ldflags+=" -X ${ver_pkg}.BuildDate=${KUEUE_SOURCE_DATE}"

# Downloads (module proxy) first, so download and compile times are separate.
timed "download kueue modules" go -C "$HACK_DIR/kueue" mod download
timed "build kueue" go -C "$HACK_DIR/kueue" build -mod=readonly -trimpath \
  -ldflags "-s -w${ver_ldflags}" -o "$TMP_BIN/kueue" "${MODULE}/cmd/kueue"

finish_build "version=$KUEUE_VERSION"
printf '%s\n' "$BIN_DIR"
