"""Shared fixtures: a CA and serving certificate, config files, a real webhook over TLS on loopback."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.routing import BaseRoute

from certs.issue import CertificateAuthority, issue_ca, issue_serving_cert, write_bundle
from core.policy import PolicySet
from tests.factories import ONE_PRICE, THREE_REGIONS
from webhook.server import RunningWebhook, build
from webhook.settings import WebhookSettings

MOCK_CONFIG = (
    "apiVersion: ecopulse.io/v1alpha1\nkind: EcoPulseConfiguration\n"
    + THREE_REGIONS
    + "carbon:\n  provider: mock\n  mock: {us-east-1: 450, eu-west-1: 300, eu-north-1: 30}\n"
    + ONE_PRICE
)


def write_kubeconfig(path: Path, server_url: str) -> Path:
    """A kubeconfig for a fake API server at ``server_url`` (plain HTTP, a made-up token)."""
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters: [{{name: fake, cluster: {{server: '{server_url}'}}}}]\n"
        "users: [{name: fake, user: {token: fake-token}}]\n"
        "contexts: [{name: fake, context: {cluster: fake, user: fake}}]\n"
        "current-context: fake\n"
    )
    return path


def issue_tls(
    directory: Path, *, common_name: str = "eco-pulse test CA", ca: CertificateAuthority | None = None
) -> Path:
    """A serving bundle in ``directory``, signed by ``ca`` or a new CA named ``common_name``."""
    ca = ca or issue_ca(common_name)
    leaf = issue_serving_cert(
        ca,
        service="eco-pulse-webhook",
        namespace="eco-pulse",
        dns_names=["localhost"],
        ip_addresses=["127.0.0.1"],
    )
    write_bundle(directory, ca=ca, leaf=leaf)
    return directory / "ca.crt"


@dataclass
class Webhook:
    running: RunningWebhook
    base_url: str
    ca_file: Path
    config_file: Path
    tls_dir: Path

    def client(self, *, ca_file: Path | None = None) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(ca_file or self.ca_file))
        return httpx.Client(base_url=self.base_url, verify=context, timeout=10)

    def wait_ready(self, *, regions: int = 3, timeout_seconds: float = 10) -> None:
        deadline = time.monotonic() + timeout_seconds
        with self.client() as client:
            while time.monotonic() < deadline:
                body = client.get("/readyz").json()
                if len(body.get("freshRegions", [])) >= regions:
                    return
                time.sleep(0.02)
        raise AssertionError(f"signals not fresh within {timeout_seconds}s: {body}")


StartWebhook = Callable[..., Webhook]


def launch_webhook(
    directory: Path,
    config_text: str = MOCK_CONFIG,
    *,
    extra_routes: Sequence[BaseRoute] = (),
    node_region: Callable[[str], str | None] | None = None,
    policies: Callable[[frozenset[str]], PolicySet] | None = None,
    read_job: Callable[[str, str], Mapping[str, object] | None] | None = None,
    **overrides: object,
) -> Webhook:
    """Start the real webhook (uvicorn, TLS, refresher, watchers) on a free loopback port."""
    directory.mkdir(parents=True, exist_ok=True)
    tls_dir = directory / "tls"
    ca_file = issue_tls(tls_dir)
    config_file = directory / "config.yaml"
    config_file.write_text(config_text)
    # proto must say TCP: asyncio only sets TCP_NODELAY on sockets that do, and without it every
    # response waits out the peer's delayed ACK (40 ms).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    options: dict[str, object] = {
        "tls_dir": tls_dir,
        "bind_address": "127.0.0.1",
        "port": sock.getsockname()[1],
        "config_path": config_file,
        "reload_interval_seconds": 0.05,
    }
    options.update(overrides)
    options.setdefault("watch_cluster", False)  # no cluster here; the e2e tests run the real watches
    running = build(
        WebhookSettings(**options),  # type: ignore[arg-type]
        sock=sock,
        extra_routes=extra_routes,
        node_region=node_region,
        policies=policies,
        read_job=read_job,
    )
    return Webhook(
        running=running,
        base_url=f"https://localhost:{running.port}",
        ca_file=ca_file,
        config_file=config_file,
        tls_dir=tls_dir,
    )


@pytest.fixture
def start_webhook(tmp_path: Path) -> Iterator[StartWebhook]:
    started: list[Webhook] = []

    def start(config_text: str = MOCK_CONFIG, **overrides: object) -> Webhook:
        webhook = launch_webhook(tmp_path / f"webhook{len(started)}", config_text, **overrides)  # type: ignore[arg-type]
        started.append(webhook)
        return webhook

    yield start
    for webhook in started:
        webhook.running.stop()
