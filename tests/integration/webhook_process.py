"""The real webhook as its own process (`python -m webhook`), for what only a process can show:
its resident memory (RSS and its peak, from /proc) and its connection handling under load."""

from __future__ import annotations

import os
import re
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

from tests.conftest import MOCK_CONFIG, issue_tls

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS = 60  # imports on a loaded 2-core machine


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def container_memory_limit_bytes() -> int:
    """The webhook container's memory limit, as the base manifests set it."""
    for document in yaml.safe_load_all((REPO / "manifests/base/webhook.yaml").read_text()):
        if document and document.get("kind") == "Deployment":
            container = document["spec"]["template"]["spec"]["containers"][0]
            limit = str(container["resources"]["limits"]["memory"])
            match = re.fullmatch(r"(\d+)Mi", limit)
            assert match, limit
            return int(match.group(1)) * 1024 * 1024
    raise AssertionError("no Deployment in manifests/base/webhook.yaml")


@dataclass
class WebhookProcess:
    process: subprocess.Popen[bytes]
    port: int
    metrics_port: int
    ca_file: Path
    log_file: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def _status_kib(self, field: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise AssertionError(f"{field} not in /proc/{self.pid}/status")

    def rss_bytes(self) -> int:
        return self._status_kib("VmRSS") * 1024

    def peak_rss_bytes(self) -> int:
        """The high-water mark of resident memory since the process started (what an OOM kill sees)."""
        return self._status_kib("VmHWM") * 1024

    def tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=f"https://localhost:{self.port}", verify=self.tls_context(), timeout=30)

    def metric(self, name: str, labels: Mapping[str, str]) -> float:
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).text
        selector = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
        for line in text.splitlines():
            if line.startswith(f"{name}{{{selector}}} "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0


@contextmanager
def webhook_process(directory: Path, env: Mapping[str, str] | None = None) -> Iterator[WebhookProcess]:
    """Start `python -m webhook` on free loopback ports with a mock grid; stop it afterwards."""
    directory.mkdir(parents=True, exist_ok=True)
    tls_dir = directory / "tls"
    ca_file = issue_tls(tls_dir)
    config_file = directory / "config.yaml"
    config_file.write_text(MOCK_CONFIG)
    port, metrics_port = free_port(), free_port()
    log_file = directory / "webhook.log"
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(directory),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(REPO),
        "ECOPULSE_TLS_DIR": str(tls_dir),
        "ECOPULSE_CONFIG": str(config_file),
        "ECOPULSE_BIND_ADDRESS": "127.0.0.1",
        "ECOPULSE_WEBHOOK_PORT": str(port),
        "ECOPULSE_METRICS_BIND_ADDRESS": "127.0.0.1",
        "ECOPULSE_METRICS_PORT": str(metrics_port),
        "ECOPULSE_WATCH_CLUSTER": "false",
        "ECOPULSE_LOG_LEVEL": "WARNING",
        **(env or {}),
    }
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "webhook"], env=environment, stdout=log, stderr=subprocess.STDOUT
        )
    running = WebhookProcess(process, port, metrics_port, ca_file, log_file)
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            if process.poll() is not None:
                raise AssertionError(f"webhook exited: {log_file.read_text()[-2000:]}")
            try:
                with running.client() as client:
                    if client.get("/healthz").status_code == 200:
                        break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"webhook did not start: {log_file.read_text()[-2000:]}")
            time.sleep(0.1)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
