"""Every app's scrape says which app and which version it is: ``ecopulse_build_info`` = 1."""

from __future__ import annotations

import tomllib
import urllib.request
from pathlib import Path

import pytest

from core.metrics import serve_metrics
from core.version import VERSION

REPO = Path(__file__).resolve().parents[2]


def test_the_version_is_pyprojects() -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert declared == VERSION


@pytest.mark.parametrize("app", ["webhook", "rebalancer"])
def test_the_metrics_port_exports_build_info_for_its_app(app: str) -> None:
    server = serve_metrics(port=0, address="127.0.0.1", app=app)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    assert f'ecopulse_build_info{{app="{app}",version="{VERSION}"}} 1.0' in text.splitlines()
