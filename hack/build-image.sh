#!/usr/bin/env bash
# Build the Eco-Pulse OCI image without a container engine: a minimal Debian root filesystem
# from mmdebstrap (Debian's own python3) plus our wheel and its dependencies, packed with umoci
# as an OCI image layout. The manifests reference ghcr.io/eco-pulse/eco-pulse:<version>; this
# layout's tag is that same <version> (pyproject.toml), and --print-ref prints the reference.
#
#   hack/build-image.sh [--out DIR] [--install-tools] [--refresh-base] [--force]
#   hack/build-image.sh --tools-only | --print-ref
#
#   --out DIR         where the layout goes (default .build/image; the layout is DIR/oci)
#   --install-tools   install missing mmdebstrap/umoci with apt-get (also when CI is set)
#   --tools-only      only install the missing tools (make image-tools), then exit
#   --refresh-base    rebuild the cached Debian root filesystem (new security updates)
#   --force           rebuild even when the inputs of the last build are unchanged
#   --print-ref       print the image reference the build tags (what manifests/ must use), exit
#
# Layers: 1. the Debian root filesystem, cached under ~/.cache/eco-pulse/image keyed on
# everything that goes into it (suite, mirrors, packages, this recipe), so a rebuild takes
# seconds; 2. /usr/local: our wheel and its dependencies' wheels (binary wheels for the image's
# Python, whatever Python runs this script), byte-compiled here so a read-only root works.
# Prints the manifest digest on stdout (also in DIR/digest); everything else goes to stderr.
#
# Needs root (mmdebstrap's root mode, chroot for byte-compiling, umoci without --rootless),
# python3 >= 3.11 with pip (PYTHON=...), tar. Reproducibility: SOURCE_DATE_EPOCH (default: the
# last commit's time) sets every timestamp of our layer and of the image configuration.
# Publish: skopeo copy oci:.build/image/oci:<version> docker://ghcr.io/eco-pulse/eco-pulse:<version>
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

OUT=.build/image
INSTALL_TOOLS=false
REFRESH_BASE=false
FORCE=false
TOOLS_ONLY=false
PRINT_REF=false
case "${CI:-}" in "" | 0 | false) ;; *) INSTALL_TOOLS=true ;; esac
while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUT=${2:?--out needs a directory}; shift 2 ;;
        --install-tools) INSTALL_TOOLS=true; shift ;;
        --refresh-base) REFRESH_BASE=true; shift ;;
        --force) FORCE=true; shift ;;
        --tools-only) INSTALL_TOOLS=true; TOOLS_ONLY=true; shift ;;
        --print-ref) PRINT_REF=true; shift ;;
        -h | --help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-image: unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done

SUITE=bookworm                 # Debian 12: python3 is 3.11, our oldest supported Python
UID_GID=65532:65532            # the conventional "nonroot" (distroless); runAsUser in manifests/
# python-is-python3: the manifests' command is `python -m ...`, as in the python:3.11 images.
PACKAGES=python3,python-is-python3,ca-certificates,tzdata
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/eco-pulse/image
BASE_RECIPE=1                  # bump when the mmdebstrap call below changes meaning

log() { echo "build-image: $*" >&2; }
die() { log "$*"; exit 1; }

PYTHON=${PYTHON:-python3}
# The one name the image is published under; manifests/ reference REPOSITORY:<version>
# (tests/contract/test_manifests.py checks it against --print-ref).
REPOSITORY=ghcr.io/eco-pulse/eco-pulse
project_version() {
    "$PYTHON" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])'
}
if $PRINT_REF; then
    echo "$REPOSITORY:$(project_version)"
    exit 0
fi

# --- tools ---------------------------------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || die "needs root (mmdebstrap root mode, chroot, umoci); run it as root, e.g. sudo make image, or use the Dockerfile where Docker exists"
missing=()
for tool in mmdebstrap umoci; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
    if $INSTALL_TOOLS && command -v apt-get >/dev/null 2>&1; then
        log "installing Debian packages: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    else
        die "missing: ${missing[*]}. On Debian/Ubuntu: apt-get install --no-install-recommends ${missing[*]} (or rerun with --install-tools)"
    fi
fi
if $TOOLS_ONLY; then
    log "mmdebstrap and umoci are installed"
    exit 0
fi
for tool in tar chroot sha256sum; do
    command -v "$tool" >/dev/null 2>&1 || die "missing: $tool"
done
"$PYTHON" -c 'import sys, tomllib, pip' 2>/dev/null \
    || die "$PYTHON needs to be Python >= 3.11 with pip (set PYTHON=.venv/bin/python)"

VERSION=$(project_version)
ARCH=$(dpkg --print-architecture 2>/dev/null || echo amd64)
case "$ARCH" in
    amd64) PY_ARCH=x86_64 ;;
    arm64) PY_ARCH=aarch64 ;;
    *) die "unsupported architecture $ARCH (amd64 and arm64 have binary wheels for every dependency)" ;;
esac
if git rev-parse --git-dir >/dev/null 2>&1; then
    REVISION=$(git rev-parse HEAD)
    git diff --quiet HEAD -- 2>/dev/null || REVISION="$REVISION-dirty"
    : "${SOURCE_DATE_EPOCH:=$(git log -1 --format=%ct)}"
else
    REVISION=unknown
fi
: "${SOURCE_DATE_EPOCH:=0}"
export SOURCE_DATE_EPOCH
CREATED=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)

# --- the Debian mirrors this machine's apt uses ------------------------------------------------------
# Entries of /etc/apt/sources.list(.d) for this suite (and its -updates/-security), as deb822:
# no host is hard-coded, and third-party repositories of the build machine stay out.
apt_sources() {
    "$PYTHON" - "$SUITE" <<'EOF'
import pathlib, sys
suite = sys.argv[1]
wanted = {suite, f"{suite}-updates", f"{suite}-security"}
entries = []
root = pathlib.Path("/etc/apt")
files = [root / "sources.list", *sorted((root / "sources.list.d").glob("*"))]
for path in files:
    if not path.is_file():
        continue
    text = path.read_text(errors="replace")
    if path.name.endswith(".list"):
        for line in text.splitlines():
            words = line.split("#", 1)[0].split()
            if not words or words[0] != "deb":
                continue
            options, rest = [], words[1:]
            if rest and rest[0].startswith("["):
                while rest:
                    word = rest.pop(0)
                    options.append(word.strip("[]"))
                    if word.endswith("]"):
                        break
            if len(rest) >= 3 and rest[1] in wanted:
                signed = [o.split("=", 1)[1] for o in options if o.startswith("signed-by=")]
                entries.append((rest[0], rest[1], " ".join(rest[2:]), signed[0] if signed else ""))
    elif path.name.endswith(".sources"):
        for stanza in text.split("\n\n"):
            fields = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line or line[0].isspace():
                    continue
                key, value = line.split(":", 1)
                fields[key.strip().lower()] = value.strip()
            if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes") == "no":
                continue
            for uri in fields.get("uris", "").split():
                for s in fields.get("suites", "").split():
                    if s in wanted:
                        entries.append((uri, s, fields.get("components", "main"), fields.get("signed-by", "")))
if not entries:
    sys.exit(f"no apt source for {suite} in /etc/apt/sources.list(.d)")
for uri, s, components, signed in entries:
    print(f"Types: deb\nURIs: {uri}\nSuites: {s}\nComponents: {components}")
    if signed:
        print(f"Signed-By: {signed}")
    print()
EOF
}

# --- layer 1: the Debian root filesystem (cached) --------------------------------------------------
SOURCES=$(apt_sources) || die "cannot derive the Debian mirrors from /etc/apt (set up apt for $SUITE first)"
MMDEBSTRAP_ARGS=(
    --mode=root --format=tar --variant=essential --architectures="$ARCH" --include="$PACKAGES"
    --skip=output/dev            # the runtime provides /dev; device nodes have no place in a layer
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*'
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/doc/*'
    --dpkgopt='path-include=/usr/share/doc/*/copyright'   # the licences stay
    # A passwd entry for the numeric user, so getpass and ~ expansion work; no home directory.
    --customize-hook='echo "nonroot:x:65532:65532:nonroot:/nonexistent:/usr/sbin/nologin" >>"$1/etc/passwd"'
    --customize-hook='echo "nonroot:x:65532:" >>"$1/etc/group"'
    # Mount points: the Deployment's volumes (/dev is added with our layer, see below).
    --customize-hook='mkdir -p "$1/etc/ecopulse/config" "$1/etc/ecopulse/tls" "$1/dev"'
    --customize-hook='rm -rf "$1/var/cache/apt" "$1/var/lib/apt/lists" "$1/var/log"/*.log "$1/var/cache/debconf"/*-old'
)
BASE_KEY=$(printf '%s\n' "$BASE_RECIPE" "$SUITE" "$ARCH" "$PACKAGES" "$SOURCES" "$(mmdebstrap --version)" \
    "${MMDEBSTRAP_ARGS[@]}" | sha256sum | cut -c1-16)
BASE_TAR=$CACHE/rootfs-$SUITE-$ARCH-$BASE_KEY.tar
mkdir -p "$CACHE"
if $REFRESH_BASE || [ ! -s "$BASE_TAR" ]; then
    log "building the Debian $SUITE root filesystem with mmdebstrap (cached as $BASE_TAR)"
    started=$(date +%s)
    printf '%s\n' "$SOURCES" | mmdebstrap --quiet "${MMDEBSTRAP_ARGS[@]}" "$SUITE" "$BASE_TAR.part" - >&2 \
        || die "mmdebstrap failed (mirrors: /etc/apt/sources.list(.d))"
    mv "$BASE_TAR.part" "$BASE_TAR"
    log "root filesystem built in $(( $(date +%s) - started ))s"
fi

# --- skip when nothing changed ----------------------------------------------------------------------
LAYOUT=$OUT/oci
INPUTS_KEY=$( {
    printf '%s\n' "$BASE_KEY" "$VERSION" "$REVISION" "$SOURCE_DATE_EPOCH" "$UID_GID"
    sha256sum "$0" pyproject.toml README.md
    find core webhook rebalancer certs report -type f ! -path '*/__pycache__/*' ! -name '*.py[co]' -print0 \
        | LC_ALL=C sort -z | xargs -0 sha256sum
} | sha256sum | cut -c1-64)
if ! $FORCE && [ -s "$OUT/digest" ] && [ -d "$LAYOUT" ] && [ "$(cat "$OUT/inputs" 2>/dev/null)" = "$INPUTS_KEY" ]; then
    log "up to date: $LAYOUT:$VERSION (--force rebuilds)"
    cat "$OUT/digest"
    exit 0
fi

# --- layer 2: our wheel and its dependencies in /usr/local -------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/eco-pulse-image.XXXXXX")
trap 'rm -rf "$WORK" "$OUT/oci.new"' EXIT
STAGE=$WORK/rootfs
mkdir -p "$STAGE" "$WORK/wheels"
tar -xf "$BASE_TAR" -C "$STAGE"
PY_VERSION=$(chroot "$STAGE" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
GLIBC_MINOR=$(chroot "$STAGE" python3 -c 'import os; print(os.confstr("CS_GNU_LIBC_VERSION").split(".")[1])')
SITE=/usr/local/lib/python$PY_VERSION/dist-packages   # on Debian's sys.path for /usr/bin/python3

# Binary wheels for the image's interpreter and glibc, not for whatever runs this script.
TARGET_ARGS=(--only-binary=:all: --implementation cp --python-version "$PY_VERSION" --abi "cp${PY_VERSION/./}")
for minor in $(seq "$GLIBC_MINOR" -1 17); do
    TARGET_ARGS+=(--platform "manylinux_2_${minor}_$PY_ARCH")
done
TARGET_ARGS+=(--platform "manylinux2014_$PY_ARCH")
PIP=("$PYTHON" -m pip --disable-pip-version-check --quiet)

log "building eco-pulse $VERSION's wheel and fetching its dependencies for cp${PY_VERSION/./} $PY_ARCH"
"${PIP[@]}" wheel --no-deps --wheel-dir "$WORK/wheels" . >&2
WHEEL=$(ls "$WORK"/wheels/eco_pulse-"$VERSION"-*.whl 2>/dev/null) \
    || die "the wheel built is not version $VERSION: $(ls "$WORK/wheels")"
# Resolved from our wheel file (not by name: a same-named package on PyPI must never win).
"${PIP[@]}" download "${TARGET_ARGS[@]}" --dest "$WORK/wheels" "$WHEEL" >&2
"${PIP[@]}" install --no-index --find-links "$WORK/wheels" "${TARGET_ARGS[@]}" --no-compile \
    --target "$STAGE$SITE" "$WHEEL" >&2
rm -rf "$STAGE$SITE/bin"   # console scripts with this machine's interpreter in their shebang
# The one command (pyproject's [project.scripts]), with the image's own interpreter.
mkdir -p "$STAGE/usr/local/bin"
printf '%s\n' '#!/usr/bin/python3' 'import sys' 'from eco_pulse.cli import main' 'sys.exit(main())' \
    > "$STAGE/usr/local/bin/eco-pulse"
chmod 0755 "$STAGE/usr/local/bin/eco-pulse"

# Compiled by the image's own interpreter; unchecked hashes: the files never change in the image,
# and a timestamp check would be invalidated by the layer's clamped mtimes.
chroot "$STAGE" python3 -m compileall -q --invalidation-mode unchecked-hash "$SITE" >&2

# /dev as an empty mount point: mmdebstrap's --skip=output/dev leaves out the directory too, and
# a runtime (or tests/image/) mounting /dev over a read-only root cannot create it.
mkdir -p "$STAGE/dev"
chmod 0755 "$STAGE/dev"
tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --clamp-mtime --owner=0 --group=0 --numeric-owner \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    --no-recursion -cf "$WORK/app.tar" -C "$STAGE" ./dev
tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --clamp-mtime --owner=0 --group=0 --numeric-owner \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -rf "$WORK/app.tar" -C "$STAGE" ./usr/local

# --- the OCI image layout ----------------------------------------------------------------------------
mkdir -p "$OUT"
NEW=$OUT/oci.new   # beside the old layout: replaced by a rename once complete
rm -rf "$NEW"
IMAGE=$NEW:$VERSION
umoci init --layout "$NEW"
umoci new --image "$IMAGE"
umoci raw add-layer --image "$IMAGE" --history.created "$CREATED" \
    --history.created_by "mmdebstrap --variant=essential $SUITE ($PACKAGES)" "$BASE_TAR"
umoci raw add-layer --image "$IMAGE" --history.created "$CREATED" \
    --history.created_by "pip install eco-pulse==$VERSION (wheel) into $SITE" "$WORK/app.tar"
CONFIG_ARGS=(
    --created "$CREATED" --history.created "$CREATED" --history.created_by "hack/build-image.sh"
    --architecture "$ARCH" --os linux --author "Eco-Pulse"
    --config.user "$UID_GID" --config.workingdir /
    # `eco-pulse webhook` by default; the rebalancer's Deployment sets its own command.
    --config.entrypoint eco-pulse --config.cmd webhook
    --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    --config.env LANG=C.UTF-8
    --config.env PYTHONDONTWRITEBYTECODE=1   # read-only root: never try to write a .pyc
    --config.env PYTHONUNBUFFERED=1
    --config.exposedports 8443/tcp --config.exposedports 9090/tcp
    --config.label "org.opencontainers.image.title=eco-pulse"
    --config.label "org.opencontainers.image.description=Carbon- and cost-aware placement for Kubernetes: admission webhook, scheduler extender, rebalancer"
    --config.label "org.opencontainers.image.version=$VERSION"
    --config.label "org.opencontainers.image.revision=$REVISION"
    --config.label "org.opencontainers.image.created=$CREATED"
    --config.label "org.opencontainers.image.licenses=Apache-2.0"
    --config.label "org.opencontainers.image.source=https://github.com/eco-pulse/eco-pulse"
    --config.label "org.opencontainers.image.base.name=debian:$SUITE (mmdebstrap)"
    --manifest.annotation "org.opencontainers.image.version=$VERSION"
    --manifest.annotation "org.opencontainers.image.revision=$REVISION"
    --manifest.annotation "org.opencontainers.image.created=$CREATED"
)
umoci config --image "$IMAGE" "${CONFIG_ARGS[@]}"
umoci gc --layout "$NEW"

DIGEST=$("$PYTHON" - "$NEW" "$VERSION" <<'EOF'
import json, pathlib, sys
index = json.loads((pathlib.Path(sys.argv[1]) / "index.json").read_text())
[digest] = [m["digest"] for m in index["manifests"]
            if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == sys.argv[2]]
print(digest)
EOF
)

rm -rf "$LAYOUT.old"
[ -d "$LAYOUT" ] && mv "$LAYOUT" "$LAYOUT.old"
mv "$NEW" "$LAYOUT"
rm -rf "$LAYOUT.old"
echo "$DIGEST" >"$OUT/digest"
echo "$INPUTS_KEY" >"$OUT/inputs"
log "wrote $LAYOUT:$VERSION ($REPOSITORY:$VERSION), $(du -sh "$LAYOUT" | cut -f1)"
echo "$DIGEST"
