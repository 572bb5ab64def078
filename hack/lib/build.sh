# Shared by hack/build-k8s.sh, hack/build-karmada.sh, hack/build-helm.sh and hack/build-kueue.sh;
# sourced, never run on its own. The sourcing script defines log, die, usage, fingerprint, version_ok
# and build_complete, and sets HACK_DIR, MODE (or calls parse_mode), NAME (for messages), CACHE_ROOT,
# OUT_DIR, BIN_DIR, STAMP, MIN_GO_MINOR and BINARIES.

# parse_mode [OPTION]: sets MODE (build, source-dir, check or force) from the one option the scripts
# with an upstream source dir take; --print-bin-dir and --help answer and exit.
parse_mode() {
  MODE=build
  case "${1:-}" in
    "") ;;
    --print-bin-dir) printf '%s\n' "$BIN_DIR"; exit 0 ;;
    --print-source-dir) MODE=source-dir ;;
    --check) MODE=check ;;
    --force) MODE=force ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
  [[ $# -le 1 ]] || die "at most one option expected"
}

# check_wrapper DIR MODULE VERSION: the wrapper module hack/DIR is there, requires MODULE at VERSION
# and replaces nothing (the upstream module's own build list is the pin).
check_wrapper() {
  local dir=$1 module=$2 version=$3 f
  for f in go.mod go.sum; do
    [[ -f "$HACK_DIR/$dir/$f" ]] || die "missing $HACK_DIR/$dir/$f (it is part of the repository)"
  done
  grep -Eq "^[[:space:]]*(require[[:space:]]+)?${module} ${version}( |$)" "$HACK_DIR/$dir/go.mod" ||
    die "hack/$dir/go.mod does not require ${module} ${version}; update the pin here or the wrapper"
  ! grep -Eq '^[[:space:]]*replace[[:space:]]|=>' "$HACK_DIR/$dir/go.mod" ||
    die "hack/$dir/go.mod must not replace modules: ${module}'s own build list is the pin"
}

# print_source_dir DIR MODULE MARKER: print MODULE's source dir in the module cache and exit, once
# MARKER (a path inside it) is there. The module source is the single copy of upstream's manifests;
# `go mod download` verifies it against hack/DIR/go.sum (a no-op when the module cache holds it).
print_source_dir() {
  local dir=$1 module=$2 marker=$3 source
  GOTOOLCHAIN=local GOWORK=off GOFLAGS=-mod=readonly go -C "$HACK_DIR/$dir" mod download "$module" >&2 ||
    die "cannot download $module"
  source=$(GOTOOLCHAIN=local GOWORK=off GOFLAGS=-mod=readonly go -C "$HACK_DIR/$dir" list -m -f '{{.Dir}}' "$module")
  [[ -e "$source/$marker" ]] || die "no $marker in $source"
  printf '%s\n' "$source"
  exit 0
}

# exit_if_done: --check answers, and a complete build is reused; both exit here.
exit_if_done() {
  if [[ $MODE == check ]]; then
    build_complete && exit 0
    log "no complete build in $BIN_DIR"; exit 1
  fi
  if [[ $MODE == build ]] && build_complete; then
    log "up to date: $NAME"; printf '%s\n' "$BIN_DIR"; exit 0
  fi
}

# begin_build: check go, take the lock (reusing what a concurrent build finished meanwhile), set
# the Go environment and a temporary bin dir; sets go_ver and TMP_BIN.
begin_build() {
  command -v go >/dev/null || die "go not found in PATH (need go >= 1.${MIN_GO_MINOR})"
  go_ver=$(GOTOOLCHAIN=local go env GOVERSION)   # e.g. go1.26.8
  [[ $go_ver =~ ^go1\.([0-9]+) ]] || die "cannot parse go version '$go_ver'"
  (( BASH_REMATCH[1] >= MIN_GO_MINOR )) || die "need go >= 1.${MIN_GO_MINOR}, found $go_ver"

  mkdir -p "$CACHE_ROOT"
  exec 9>"$CACHE_ROOT/.build.lock"
  if ! flock -n 9; then
    log "another build of $NAME is running; waiting for it (lock $CACHE_ROOT/.build.lock)"
    flock 9
    if [[ $MODE == build ]] && build_complete; then
      log "up to date: $NAME"; printf '%s\n' "$BIN_DIR"; exit 0
    fi
  fi

  export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0
  export GOFLAGS="-p=${BUILD_K8S_JOBS:-2} -buildvcs=false"
  rm -f "$STAMP"
  mkdir -p "$BIN_DIR"
  TMP_BIN=$(mktemp -d "$OUT_DIR/.bin.XXXXXX")
  trap 'rm -rf "$TMP_BIN"' EXIT
}

declare -A SECONDS_FOR=()
timed() {  # timed LABEL CMD...: run CMD under nice, record its wall time
  local label=$1; shift
  local t0=$SECONDS
  log "$label ..."
  if ! nice -n 15 "$@"; then die "$label failed: $*"; fi
  SECONDS_FOR[$label]=$((SECONDS - t0))
  log "$label done in ${SECONDS_FOR[$label]}s"
}

# finish_build STAMP_LINE...: move the binaries in, check their versions, then write the stamp
# (last: it says the build is complete) with the given lines and the times.
finish_build() {
  local b
  for b in "${BINARIES[@]}"; do
    [[ -x "$TMP_BIN/$b" ]] || die "expected binary $TMP_BIN/$b was not produced"
    mv -f "$TMP_BIN/$b" "$BIN_DIR/$b"
  done
  for b in "${BINARIES[@]}"; do
    version_ok "$b" || die "$BIN_DIR/$b does not report the pinned version"
  done
  {
    echo "fingerprint=$(fingerprint)"
    printf '%s\n' "$@"
    echo "go=$go_ver"
    echo "built_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    local k
    for k in "${!SECONDS_FOR[@]}"; do echo "seconds[$k]=${SECONDS_FOR[$k]}"; done | sort
  } > "$STAMP.tmp"
  mv -f "$STAMP.tmp" "$STAMP"
  log "built all binaries in ${SECONDS}s:"
  (cd "$BIN_DIR" && ls -l "${BINARIES[@]}" >&2)
}
