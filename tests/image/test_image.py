"""The image `make image` builds: unpacked, the webhook started from it, read-only and non-root.

No container engine runs here, so the test does what a runtime does, with util-linux: it unpacks
the OCI layout with ``umoci unpack``, then starts the image's own entrypoint, environment and user
(from the image configuration) in a fresh mount and PID namespace (``unshare``), chrooted into
the root filesystem mounted READ-ONLY, with the mounts the Deployment gives it (TLS key pair
read-only, an empty /tmp) and the host's network. It must answer /healthz over TLS.

Needs root and mmdebstrap/umoci (``make image-tools``); run with ``make test-image`` (marker
``image``, outside ``make test``: a build from a cold cache takes minutes, see docs/image.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import issue_tls

pytestmark = pytest.mark.image

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / ".build" / "image"
LAYOUT = OUT / "oci"
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
NONROOT = 65532
START_TIMEOUT_SECONDS = 120

# Run inside `unshare --mount --pid --fork`: what a container runtime sets up, in shell.
RUN_IN_ROOT = r"""
set -eu
root=$1; tls=$2; user=$3; workdir=$4; shift 4
mount --bind "$root" "$root"
mount -o remount,bind,ro "$root"
mount --rbind /dev "$root/dev"
mount -t proc proc "$root/proc"
mount -t tmpfs -o size=16m,mode=1777 tmpfs "$root/tmp"
mount --bind "$tls" "$root/etc/ecopulse/tls"
mount -o remount,bind,ro "$root/etc/ecopulse/tls"
cd "$root$workdir"
exec chroot --userspec="$user" "$root" "$@"
"""


@dataclass(frozen=True)
class Image:
    layout: Path
    manifest: dict[str, Any]
    config: dict[str, Any]
    build_seconds: float


def blob(layout: Path, digest: str) -> dict[str, Any]:
    algorithm, value = digest.split(":", 1)
    loaded: dict[str, Any] = json.loads((layout / "blobs" / algorithm / value).read_text())
    return loaded


@pytest.fixture(scope="module")
def image() -> Image:
    if os.geteuid() != 0:
        pytest.fail("the image test needs root (mmdebstrap, chroot, umoci, mounts): sudo make test-image")
    began = time.monotonic()
    built = subprocess.run(
        ["hack/build-image.sh", "--out", str(OUT)],
        cwd=REPO,
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    digest = built.stdout.strip().splitlines()[-1]
    index = json.loads((LAYOUT / "index.json").read_text())
    (entry,) = [
        m
        for m in index["manifests"]
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == VERSION
    ]
    assert entry["digest"] == digest, "the digest printed is the tagged manifest's"
    manifest = blob(LAYOUT, digest)
    return Image(
        layout=LAYOUT,
        manifest=manifest,
        config=blob(LAYOUT, manifest["config"]["digest"]),
        build_seconds=time.monotonic() - began,
    )


def test_the_image_says_its_version_and_runs_as_nonroot(image: Image) -> None:
    labels = image.config["config"]["Labels"]
    assert labels["org.opencontainers.image.version"] == VERSION
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.revision"]
    assert image.manifest["annotations"]["org.opencontainers.image.version"] == VERSION
    assert image.config["config"]["User"] == f"{NONROOT}:{NONROOT}"
    assert image.config["config"]["Entrypoint"] == ["eco-pulse"]
    assert image.config["config"]["Cmd"] == ["webhook"]


def test_the_manifests_run_the_tag_the_build_produces(image: Image) -> None:
    reference = subprocess.run(
        ["hack/build-image.sh", "--print-ref"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert reference.rsplit(":", 1)[1] == VERSION  # the layout's tag
    for name in ("webhook.yaml", "rebalancer.yaml"):
        for document in yaml.safe_load_all((REPO / "manifests" / "base" / name).read_text()):
            if document and document.get("kind") == "Deployment":
                for container in document["spec"]["template"]["spec"]["containers"]:
                    assert container["image"] == reference, (name, container["name"])


@pytest.fixture(scope="module")
def rootfs(image: Image, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    bundle = tmp_path_factory.mktemp("bundle") / "webhook"
    subprocess.run(
        ["umoci", "unpack", "--image", f"{image.layout}:{VERSION}", str(bundle)],
        check=True,
        capture_output=True,
    )
    yield bundle / "rootfs"
    shutil.rmtree(bundle, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def test_the_webhook_starts_from_the_image_read_only_and_answers_healthz(
    image: Image, rootfs: Path, tmp_path: Path
) -> None:
    # The Deployments' command is `eco-pulse webhook`; `python -m webhook` must work too.
    assert (rootfs / "usr" / "bin" / "python").exists()
    command_file = rootfs / "usr" / "local" / "bin" / "eco-pulse"
    assert command_file.read_text().startswith("#!/usr/bin/python3\n")
    assert command_file.stat().st_mode & 0o111
    tls = tmp_path / "tls"
    ca_file = issue_tls(tls)
    for path in (tls, *tls.iterdir()):
        os.chown(path, NONROOT, NONROOT)  # the Deployment's fsGroup does this for the Secret
    port, metrics_port = free_port(), free_port()
    settings = image.config["config"]
    environment = [
        *settings["Env"],
        "ECOPULSE_BIND_ADDRESS=127.0.0.1",
        f"ECOPULSE_WEBHOOK_PORT={port}",
        "ECOPULSE_METRICS_BIND_ADDRESS=127.0.0.1",
        f"ECOPULSE_METRICS_PORT={metrics_port}",
        "ECOPULSE_WATCH_CLUSTER=false",
    ]
    command = [*settings["Entrypoint"], *settings["Cmd"]]
    log_path = tmp_path / "webhook.log"
    with log_path.open("wb") as log:
        runner = subprocess.Popen(
            [
                "unshare", "--mount", "--pid", "--fork", "--kill-child",
                "sh", "-c", RUN_IN_ROOT, "run-in-root",
                str(rootfs), str(tls), settings["User"], settings.get("WorkingDir") or "/",
                "env", "-i", *environment, *command,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        context = ssl.create_default_context(cafile=str(ca_file))
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            assert runner.poll() is None, f"the webhook exited: {log_path.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(
                    f"https://127.0.0.1:{port}/healthz", context=context, timeout=2
                ) as answer:
                    health = json.loads(answer.read())
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                assert time.monotonic() < deadline, f"no /healthz answer: {log_path.read_text()[-3000:]}"
                time.sleep(0.5)
        assert health == {"status": "ok"}
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as answer:
            metrics = answer.read().decode()
        assert f'ecopulse_build_info{{app="webhook",version="{VERSION}"}} 1.0' in metrics.splitlines()
        (server,) = [
            pid for pid in descendants(runner.pid) if b"webhook" in Path(f"/proc/{pid}/cmdline").read_bytes()
        ]
        status = Path(f"/proc/{server}/status").read_text()
        uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
        assert uid_line.split()[1:] == [str(NONROOT)] * 4, uid_line
        mounts = [line.split() for line in Path(f"/proc/{server}/mounts").read_text().splitlines()]
        root_options = next(fields[3] for fields in mounts if fields[1] == "/")
        assert root_options.split(",")[0] == "ro", "the root filesystem is mounted read-only"
    finally:
        with contextlib.suppress(ProcessLookupError):  # it may have exited (the test then failed)
            os.killpg(runner.pid, signal.SIGTERM)
        runner.wait(timeout=30)
