"""Fixtures the contract tests share."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def kubectl() -> Path:
    """The kubectl hack/build-k8s.sh built; the kustomize render checks skip without it."""
    done = subprocess.run(
        [str(REPO / "hack" / "build-k8s.sh"), "--print-bin-dir"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    binary = Path(done.stdout.strip()) / "kubectl"
    if done.returncode != 0 or not binary.is_file():
        pytest.skip(f"kubectl is not built ({binary}): run hack/build-k8s.sh to check the kustomize renders")
    return binary
