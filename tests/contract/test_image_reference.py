"""The image the build tags, the image the manifests run and the Dockerfile agree (no build here).

``hack/build-image.sh --print-ref`` prints the reference the build tags (repository and the
pyproject version) without root or tools; tests/image/ builds and runs the image itself.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
NONROOT = "65532:65532"


def build_reference() -> str:
    done = subprocess.run(
        ["hack/build-image.sh", "--print-ref"],
        cwd=REPO,
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_the_build_tags_the_project_version() -> None:
    repository, tag = build_reference().rsplit(":", 1)
    assert tag == VERSION
    assert repository == "ghcr.io/eco-pulse/eco-pulse"


def test_every_deployment_runs_the_reference_the_build_produces() -> None:
    reference = build_reference()
    repository, tag = reference.rsplit(":", 1)
    seen = 0
    for path in sorted((REPO / "manifests" / "base").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if not document or document.get("kind") != "Deployment":
                continue
            for container in document["spec"]["template"]["spec"]["containers"]:
                assert container["image"] == reference, (path.name, container["name"])
                seen += 1
            security = document["spec"]["template"]["spec"].get("securityContext", {})
            assert f"{security.get('runAsUser')}:{security.get('runAsGroup')}" == NONROOT, path.name
    assert seen >= 2  # the webhook and the rebalancer
    kustomization = yaml.safe_load((REPO / "manifests" / "base" / "kustomization.yaml").read_text())
    (image,) = [i for i in kustomization["images"] if i["name"] == repository]
    assert image["newTag"] == tag


def test_the_dockerfile_builds_the_same_image() -> None:
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    script = (REPO / "hack" / "build-image.sh").read_text(encoding="utf-8")
    assert re.search(rf"^ARG VERSION={re.escape(VERSION)}$", text, flags=re.MULTILINE)
    assert re.search(rf"^USER {NONROOT}$", text, flags=re.MULTILINE)
    assert f"UID_GID={NONROOT}" in script
    assert re.search(r'^ENTRYPOINT \["eco-pulse"\]$', text, flags=re.MULTILINE)
    # The wheel is built from what is copied: every package the command runs.
    for package in ("core", "webhook", "rebalancer", "fleet", "certs", "report", "eco_pulse"):
        assert re.search(rf"^COPY {package} \./{package}$", text, flags=re.MULTILINE), package
    assert re.search(r'^CMD \["webhook"\]$', text, flags=re.MULTILINE)
    for label in ("title", "description", "version", "licenses", "source"):
        assert f"org.opencontainers.image.{label}=" in text, label
        assert f"org.opencontainers.image.{label}=" in script, label
    for variable in ("PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1"):
        assert variable in text and variable in script, variable
