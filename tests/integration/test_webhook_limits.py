"""Hostile bodies and connections against the real webhook over TLS: refused early, memory bounded.

Body caps: a body over its route's cap is answered 413 without being buffered whole (a declared
Content-Length is checked before any byte is read; a chunked body is counted as it arrives), and
all bodies being read at once share one budget (beyond it: 503). The memory test runs the webhook
as its own process and reads its peak RSS from /proc.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY

from tests.conftest import StartWebhook, Webhook
from tests.integration.webhook_process import container_memory_limit_bytes, webhook_process

MIB = 1024 * 1024


def names_body(total_bytes: int) -> Iterator[bytes]:
    """ExtenderArgs in NodeNames mode, streamed in 64 KiB pieces, ``total_bytes`` long: JSON that a
    buffering server would decode into millions of strings."""
    head = json.dumps({"Pod": {"metadata": {"name": "p", "namespace": "shop"}, "spec": {}}})[:-1]
    yield (head + ', "Nodes": null, "NodeNames": [').encode()
    sent = len(head) + 30
    piece = b'"ip-10-0-0-1.eu-north-1.compute.internal",' * 1500
    while sent + len(piece) < total_bytes:
        yield piece
        sent += len(piece)
    yield b'"last"]}'


def raw_tls(webhook: Webhook) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(webhook.ca_file))
    sock = socket.create_connection(("127.0.0.1", webhook.running.port), timeout=10)
    return context.wrap_socket(sock, server_hostname="localhost")


def read_status(sock: ssl.SSLSocket) -> int:
    head = b""
    while b"\r\n" not in head:
        data = sock.recv(4096)
        if not data:
            break
        head += data
    return int(head.split(b" ", 2)[1])


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_a_60_mb_filter_body_keeps_the_process_under_its_memory_limit(tmp_path: Path) -> None:
    limit_bytes = container_memory_limit_bytes()
    with webhook_process(tmp_path) as webhook:
        statuses: list[int] = []
        with webhook.client() as client:
            try:
                # Chunked: no Content-Length to refuse on, so only counting as it arrives helps.
                answer = client.post("/filter", content=names_body(60_000_000))
                statuses.append(answer.status_code)
            except httpx.TransportError:
                statuses.append(0)  # refused and closed while we were still sending: fine too
            peak = webhook.peak_rss_bytes()
            # Still serving, and it said why (or closed on us mid-send).
            assert client.get("/healthz").status_code == 200
        assert webhook.process.poll() is None
    assert peak < limit_bytes, f"peak RSS {peak / MIB:.0f} MiB over the {limit_bytes / MIB:.0f} MiB limit"
    assert statuses[0] in (413, 0), statuses


@pytest.mark.parametrize("path", ["/mutate", "/filter", "/prioritize"])
def test_a_declared_oversized_body_is_refused_before_a_byte_of_it_is_sent(
    start_webhook: StartWebhook, path: str
) -> None:
    webhook = start_webhook()
    before = sample("ecopulse_webhook_refused_total", {"reason": "body-too-large"})
    with raw_tls(webhook) as sock:
        # The headers only: a server that waited for the body would never answer.
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Content-Length: {60_000_000}\r\n\r\n".encode()
        )
        assert read_status(sock) == 413
    assert sample("ecopulse_webhook_refused_total", {"reason": "body-too-large"}) == before + 1


@pytest.mark.parametrize(("path", "setting"), [("/mutate", "admission"), ("/filter", "extender")])
def test_a_chunked_body_over_the_cap_is_413_and_one_at_the_cap_is_read(
    start_webhook: StartWebhook, path: str, setting: str
) -> None:
    cap = 256 * 1024
    webhook = start_webhook(**{f"{setting}_max_body_bytes": cap})
    with webhook.client() as client:
        over = client.post(path, content=iter([b" " * (cap // 2), b" " * (cap // 2), b"{}"]))
        assert over.status_code == 413
        assert str(cap) in over.json()["message"]
        # Exactly at the cap: read and judged (not JSON we know, so a 400 that says why).
        at = client.post(path, content=iter([b" " * (cap // 2), b" " * (cap // 2 - 2), b"{}"]))
        assert at.status_code == 400


def test_bodies_read_at_once_share_one_budget(start_webhook: StartWebhook) -> None:
    # Charged at 14 bytes per body byte: room for 96 KiB of bodies.
    webhook = start_webhook(extender_max_body_bytes=64 * 1024, body_memory_max_bytes=96 * 1024 * 14)
    before = sample("ecopulse_webhook_refused_total", {"reason": "body-budget"})
    with raw_tls(webhook) as slow:
        # One caller holds 60 KiB of the budget, its body not finished.
        slow.sendall(b"POST /filter HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n")
        slow.sendall(b"%x\r\n%s\r\n" % (60 * 1024, b" " * (60 * 1024)))
        deadline = time.monotonic() + 10
        while sample("ecopulse_webhook_body_memory_bytes") < 60 * 1024 * 14 and time.monotonic() < deadline:
            time.sleep(0.01)  # the server's thread reads it meanwhile
        assert sample("ecopulse_webhook_body_memory_bytes") == 60 * 1024 * 14
        with webhook.client() as client:
            busy = client.post("/filter", content=b" " * (50 * 1024))
            assert busy.status_code == 503
            assert busy.headers["retry-after"]
        slow.sendall(b"0\r\n\r\n")
        assert read_status(slow) == 400  # its turn came: read in full and judged
    assert sample("ecopulse_webhook_refused_total", {"reason": "body-budget"}) == before + 1
    assert sample("ecopulse_webhook_body_memory_bytes") == 0


def assert_closed_by_server(sock: ssl.SSLSocket) -> None:
    """The server closes on us: EOF or a reset, never a wait until our own (generous) timeout."""
    try:
        while sock.recv(4096):
            pass
    except (ConnectionResetError, ssl.SSLError):
        pass
    except TimeoutError:
        raise AssertionError("the server kept the connection open") from None


def test_a_client_that_never_finishes_its_headers_is_disconnected(start_webhook: StartWebhook) -> None:
    webhook = start_webhook(header_timeout_seconds=0.5)
    before = sample("ecopulse_webhook_refused_total", {"reason": "header-timeout"})
    with raw_tls(webhook) as silent, raw_tls(webhook) as trickling:
        silent.sendall(b"POST /mutate HTTP/1.1\r\nHost: local")
        # A byte at a time, each well within the timeout: the deadline is per request, not per byte.
        trickling.settimeout(0.2)
        for byte in b"POST /mutate HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 200:
            try:
                trickling.sendall(bytes([byte]))
                if trickling.recv(1) == b"":
                    break
            except TimeoutError:
                continue
            except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
                break
        else:
            raise AssertionError("a trickling client kept its connection for 40 s")
        silent.settimeout(10)
        assert_closed_by_server(silent)
    assert sample("ecopulse_webhook_refused_total", {"reason": "header-timeout"}) == before + 2


def test_a_stalled_request_after_a_served_one_gets_the_header_deadline_not_the_body_one(
    start_webhook: StartWebhook,
) -> None:
    # The body deadline (30 s) was the last one set on this connection; the next request's
    # headers still have only the header deadline (0.5 s) to arrive.
    webhook = start_webhook(header_timeout_seconds=0.5, body_timeout_seconds=30)
    before = sample("ecopulse_webhook_refused_total", {"reason": "header-timeout"})
    body = json.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "u1",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": "shop",
                "operation": "DELETE",
                "object": None,
            },
        }
    ).encode()
    with raw_tls(webhook) as sock:
        # The first request's body outlasts the header deadline (its headers came in time), so the
        # connection's timer last slept towards the body deadline.
        sock.sendall(b"POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n")
        sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body))
        time.sleep(0.8)
        sock.sendall(body)
        assert read_status(sock) == 200
        sock.sendall(b"POST /mutate HTTP/1.1\r\nHost: local")
        sock.settimeout(10)
        assert_closed_by_server(sock)
    assert sample("ecopulse_webhook_refused_total", {"reason": "header-timeout"}) == before + 1


def test_an_idle_connection_that_never_sends_a_request_is_disconnected(start_webhook: StartWebhook) -> None:
    webhook = start_webhook(header_timeout_seconds=0.5)
    with raw_tls(webhook) as idle:
        idle.settimeout(10)
        assert_closed_by_server(idle)


def test_a_body_that_never_completes_is_cut_off(start_webhook: StartWebhook) -> None:
    webhook = start_webhook(body_timeout_seconds=0.5)
    before = sample("ecopulse_webhook_refused_total", {"reason": "body-timeout"})
    with raw_tls(webhook) as slow:
        slow.sendall(b"POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{")
        slow.settimeout(10)
        assert_closed_by_server(slow)
    assert sample("ecopulse_webhook_refused_total", {"reason": "body-timeout"}) == before + 1
    with webhook.client() as client:  # and the server serves on
        assert client.get("/healthz").status_code == 200


def test_headers_beyond_64_kib_are_refused(start_webhook: StartWebhook) -> None:
    webhook = start_webhook()
    before = sample("ecopulse_webhook_refused_total", {"reason": "headers-too-large"})
    with raw_tls(webhook) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
        assert read_status(sock) == 400
    assert sample("ecopulse_webhook_refused_total", {"reason": "headers-too-large"}) == before + 1


def test_connections_beyond_the_cap_are_refused_and_counted(start_webhook: StartWebhook) -> None:
    webhook = start_webhook(max_connections=5)
    before = sample("ecopulse_webhook_refused_total", {"reason": "connection-limit"})
    held = [raw_tls(webhook) for _ in range(5)]
    try:
        deadline = time.monotonic() + 10
        while sample("ecopulse_webhook_open_connections") < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sample("ecopulse_webhook_open_connections") == 5
        for _ in range(3):
            with raw_tls(webhook) as extra:
                extra.settimeout(10)
                assert_closed_by_server(extra)
        assert sample("ecopulse_webhook_refused_total", {"reason": "connection-limit"}) == before + 3
        # The held ones still work, and a freed place is taken again.
        held[0].sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert read_status(held[0]) == 200
        held.pop().close()
        while sample("ecopulse_webhook_open_connections") > 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        with webhook.client() as client:
            assert client.get("/healthz").status_code == 200
    finally:
        for sock in held:
            sock.close()


def test_a_decision_abandoned_at_its_deadline_keeps_its_body_charged_until_it_ends(
    start_webhook: StartWebhook,
) -> None:
    # The node watch lookup is where the decision blocks (the seam the server injects); it runs
    # in the decision's worker thread for bodies over 64 KiB.
    release = threading.Event()

    def node_region(_name: str) -> str | None:
        release.wait(30)
        return None

    webhook = start_webhook(extender_deadline_seconds=0.2, node_region=node_region)
    names = [f"ip-10-0-{i}.eu-north-1.compute.internal" for i in range(3000)]
    body = json.dumps(
        {"Pod": {"metadata": {"name": "p", "namespace": "shop"}, "spec": {}}, "NodeNames": names}
    )
    assert len(body) > 64 * 1024
    try:
        with webhook.client() as client:
            answer = client.post("/prioritize", content=body)
        assert answer.status_code == 200  # failed open: neutral scores for every node
        assert len({entry["Score"] for entry in answer.json()}) == 1
        # Answered, but the decision still runs on the body: its memory is still charged.
        assert sample("ecopulse_webhook_body_memory_bytes") == len(body) * 14
    finally:
        release.set()
    deadline = time.monotonic() + 10
    while sample("ecopulse_webhook_body_memory_bytes") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sample("ecopulse_webhook_body_memory_bytes") == 0
