"""The reflector against a local fake API server that speaks the list/watch protocol.

The fake is a real HTTP server on 127.0.0.1 (the official client talks to it as to a
kube-apiserver); what it does with each watch request is scripted. Time is simulated: the
reflector waits on a FakeTimer that advances at once, so "8 seconds" costs no real time and the
request counts are exact.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from kubernetes import client
from prometheus_client import REGISTRY

from core.kube.caches import slim_node_region
from core.kube.reflector import Reflector

# A server that ends every watch at once, over 8 simulated seconds, with the shortest pauses the
# jitter allows (0.4, 0.8, 1.6, 3.2 s: watches at 0, 0.4, 1.2, 2.8 and 6.0 s): one list and five
# watches. Before the backoff the reflector sent about 3,400 requests in 8 real seconds.
MAX_REQUESTS_IN_8_SECONDS = 6
# Safety net for a reflector that never pauses: the test stops it after this many requests.
FLOOD = 1000


def node(name: str, region: str, resource_version: str) -> dict[str, Any]:
    return {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "resourceVersion": resource_version,
            "labels": {"topology.kubernetes.io/region": region},
        },
    }


class FakeTimer:
    """Simulated time: ``wait`` moves the clock on at once; past ``horizon_seconds`` it says stop."""

    def __init__(self, horizon_seconds: float) -> None:
        self.now_seconds = 0.0
        self.horizon_seconds = horizon_seconds
        self.pauses_seconds: list[float] = []

    def monotonic(self) -> float:
        return self.now_seconds

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        self.pauses_seconds.append(round(seconds, 6))
        self.now_seconds += seconds
        return stop.is_set() or self.now_seconds >= self.horizon_seconds


@dataclass
class Request:
    kind: str  # "list" or "watch"
    at_seconds: float  # simulated time
    resource_version: str | None
    timeout_seconds: int | None


@dataclass
class FakeApiServer:
    """``watches``: what the next watch requests get, in order; after that, "close".

    "close": 200 and the stream ends at once. "error": 500. "gone": HTTP 410. "expired": a 200
    stream carrying an ERROR event with code 410. "event": one MODIFIED node (the resourceVersion
    moves on), then the end. "long": the stream ends after 300 simulated seconds.
    """

    timer: FakeTimer
    watches: list[str] = field(default_factory=list)
    list_resource_versions: list[str] = field(default_factory=lambda: ["100"])
    requests: list[Request] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, request: Request) -> int:
        with self.lock:
            self.requests.append(request)
            return len([r for r in self.requests if r.kind == request.kind]) - 1

    def of_kind(self, kind: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.kind == kind]


@pytest.fixture
def make_server() -> Iterator[Any]:
    servers: list[ThreadingHTTPServer] = []

    def make(fake: FakeApiServer) -> FakeApiServer:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path != "/api/v1/nodes":
                    self.send_json(404, {"kind": "Status", "code": 404})
                    return
                query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
                watching = query.get("watch") in ("true", "1")
                timeout = query.get("timeoutSeconds")
                index = fake.record(
                    Request(
                        kind="watch" if watching else "list",
                        at_seconds=fake.timer.now_seconds,
                        resource_version=query.get("resourceVersion"),
                        timeout_seconds=int(timeout) if timeout else None,
                    )
                )
                if not watching:
                    versions = fake.list_resource_versions
                    version = versions[min(index, len(versions) - 1)]
                    self.send_json(
                        200,
                        {
                            "kind": "NodeList",
                            "apiVersion": "v1",
                            "metadata": {"resourceVersion": version},
                            "items": [node("n1", "eu-west-1", version)],
                        },
                    )
                    return
                action = fake.watches[index] if index < len(fake.watches) else "close"
                if action == "error":
                    self.send_json(500, {"kind": "Status", "code": 500, "message": "boom"})
                elif action == "gone":
                    self.send_json(410, {"kind": "Status", "code": 410, "reason": "Expired"})
                elif action == "expired":
                    status = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}
                    self.send_stream([{"type": "ERROR", "object": status}])
                elif action == "event":
                    self.send_stream([{"type": "MODIFIED", "object": node("n1", "eu-north-1", "105")}])
                elif action == "long":
                    fake.timer.now_seconds += 300
                    self.send_stream([])
                else:
                    self.send_stream([])

            def send_json(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def send_stream(self, events: list[dict[str, Any]]) -> None:
                # As the API server does: chunked, one JSON event per line, then the last chunk.
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for event in events:
                    line = json.dumps(event).encode() + b"\n"
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                self.wfile.write(b"0\r\n\r\n")

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        servers.append(server)
        fake.url = f"http://127.0.0.1:{server.server_address[1]}"
        return fake

    yield make
    for server in servers:
        server.shutdown()
        server.server_close()


def reflector_for(fake: FakeApiServer, name: str, *, random_fraction: float = 0.0) -> Reflector[str]:
    configuration = client.Configuration()
    configuration.host = fake.url
    api = client.CoreV1Api(client.ApiClient(configuration))
    return Reflector(
        name=name,
        list_call=api.list_node,
        slim=slim_node_region,
        timer=fake.timer,
        random_fraction=lambda: random_fraction,
    )


def run_until_the_horizon(reflector: Reflector[str], fake: FakeApiServer) -> None:
    """Run the reflector until its timer says stop (or it floods the server: then stop it)."""
    thread = threading.Thread(target=reflector.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while thread.is_alive() and len(fake.requests) < FLOOD and time.monotonic() < deadline:
        thread.join(0.02)
    reflector.stop()
    thread.join(5)
    assert not thread.is_alive()


def reconnects(name: str, reason: str) -> float:
    value = REGISTRY.get_sample_value("ecopulse_watch_reconnects_total", {"resource": name, "reason": reason})
    return value or 0.0


def relists(name: str) -> float:
    return REGISTRY.get_sample_value("ecopulse_watch_relists_total", {"resource": name}) or 0.0


def test_a_server_that_ends_every_watch_at_once_gets_a_bounded_request_rate(make_server: Any) -> None:
    fake = make_server(FakeApiServer(timer=FakeTimer(horizon_seconds=8)))
    reflector = reflector_for(fake, "nodes-storm", random_fraction=1.0)  # the shortest pauses

    run_until_the_horizon(reflector, fake)

    assert len(fake.requests) <= MAX_REQUESTS_IN_8_SECONDS, (
        f"{len(fake.requests)} requests in 8 s to a server that ends every watch at once"
    )
    assert [r.kind for r in fake.requests] == ["list"] + ["watch"] * 5
    assert [r.at_seconds for r in fake.of_kind("watch")] == pytest.approx([0, 0.4, 1.2, 2.8, 6.0])
    # Every watch resumes from the list's resourceVersion: nothing is listed again.
    assert {r.resource_version for r in fake.of_kind("watch")} == {"100"}
    assert fake.timer.pauses_seconds == pytest.approx([0.4, 0.8, 1.6, 3.2, 6.4])
    assert reconnects("nodes-storm", "too-short") == 5
    assert relists("nodes-storm") == 1
    assert reflector.items == {"n1": "eu-west-1"}


def test_the_pauses_are_capped_and_the_longest_without_jitter(make_server: Any) -> None:
    fake = make_server(FakeApiServer(timer=FakeTimer(horizon_seconds=200)))
    reflector = reflector_for(fake, "nodes-cap", random_fraction=0.0)

    run_until_the_horizon(reflector, fake)

    assert fake.timer.pauses_seconds[:7] == pytest.approx([0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30])
    assert set(fake.timer.pauses_seconds[6:]) == {30}
    assert len(fake.of_kind("list")) == 1


def test_watch_errors_back_off_and_resume_from_the_resource_version(make_server: Any) -> None:
    fake = make_server(
        FakeApiServer(timer=FakeTimer(horizon_seconds=20), watches=["event", "error", "error", "error"])
    )
    reflector = reflector_for(fake, "nodes-errors", random_fraction=1.0)

    run_until_the_horizon(reflector, fake)

    assert len(fake.of_kind("list")) == 1, "a watch error keeps the cache and its resourceVersion"
    versions = [r.resource_version for r in fake.of_kind("watch")]
    assert versions[0] == "100"
    assert set(versions[1:]) == {"105"}, "after the event, watches resume from its resourceVersion"
    assert fake.timer.pauses_seconds[:4] == pytest.approx([0.4, 0.8, 1.6, 3.2])
    assert reconnects("nodes-errors", "error") == 3
    assert reflector.items == {"n1": "eu-north-1"}


@pytest.mark.parametrize("how", ["expired", "gone"])
def test_an_expired_resource_version_lists_again(make_server: Any, how: str) -> None:
    fake = make_server(
        FakeApiServer(
            timer=FakeTimer(horizon_seconds=310), watches=["long", how], list_resource_versions=["100", "200"]
        )
    )
    name = f"nodes-{how}"
    reflector = reflector_for(fake, name, random_fraction=1.0)

    run_until_the_horizon(reflector, fake)

    lists = fake.of_kind("list")
    assert len(lists) == 2
    watches = fake.of_kind("watch")
    assert [r.resource_version for r in watches[:2]] == ["100", "100"]
    assert {r.resource_version for r in watches[2:]} == {"200"}, "the new list's resourceVersion"
    assert reconnects(name, "expired") == 1
    assert relists(name) == 2


def test_a_healthy_watch_starts_the_backoff_again(make_server: Any) -> None:
    fake = make_server(
        FakeApiServer(timer=FakeTimer(horizon_seconds=400), watches=["close", "close", "close", "long"])
    )
    reflector = reflector_for(fake, "nodes-healthy", random_fraction=0.0)

    run_until_the_horizon(reflector, fake)

    # Three short watches (0.8, 1.6, 3.2), a long one that ends normally (no pause: the server's
    # timeout is routine), then short again from the initial pause.
    assert fake.timer.pauses_seconds[:5] == pytest.approx([0.8, 1.6, 3.2, 0.8, 1.6])
    assert reconnects("nodes-healthy", "closed") == 1
    assert len(fake.of_kind("list")) == 1


def test_watch_timeouts_are_spread(make_server: Any) -> None:
    fake = make_server(FakeApiServer(timer=FakeTimer(horizon_seconds=1)))
    for fraction, expected in ((0.0, 300), (0.5, 450), (1.0, 600)):
        fake.requests.clear()
        fake.timer.now_seconds = 0
        reflector = reflector_for(fake, "nodes-timeouts", random_fraction=fraction)
        run_until_the_horizon(reflector, fake)
        assert fake.of_kind("watch")[0].timeout_seconds == expected


@dataclass
class SyncWatchingTimer(FakeTimer):
    """Also notes, at every pause, whether the reflector then claims to be in step."""

    reflector: Reflector[str] | None = None
    synced_at_pauses: list[bool] = field(default_factory=list)

    def __init__(self, horizon_seconds: float) -> None:
        super().__init__(horizon_seconds)
        self.reflector = None
        self.synced_at_pauses = []

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        assert self.reflector is not None
        self.synced_at_pauses.append(self.reflector.synced.is_set())
        return super().wait(seconds, stop)


@pytest.mark.parametrize("how", ["expired", "gone"])
def test_an_expired_cache_is_not_synced_until_it_is_listed_again(make_server: Any, how: str) -> None:
    """Issue 17 drill (API server restart): after a 410 the cache has missed events; while the
    reflector waits to list again, readers such as the rebalancer must not plan from it."""
    timer = SyncWatchingTimer(horizon_seconds=5)
    fake = make_server(FakeApiServer(timer=timer, watches=[how], list_resource_versions=["100", "200"]))
    reflector = reflector_for(fake, f"nodes-stale-{how}", random_fraction=1.0)
    timer.reflector = reflector

    run_until_the_horizon(reflector, fake)

    assert len(fake.of_kind("list")) == 2
    assert timer.synced_at_pauses[0] is False, "synced while waiting to re-list an expired cache"
    assert reflector.synced.is_set(), "in step again after the second list"
