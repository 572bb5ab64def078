"""Ignored ecopulse.io/ annotations become Events, posted off the request path (issue 19, item 4).

The real webhook (uvicorn, TLS) with its cluster client pointed at a fake API server on 127.0.0.1
that answers lists and watches with nothing and records each events.k8s.io/v1 POST; the test can
hold the POST's answer, to prove that the review is answered while the Event still waits.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import StartWebhook, Webhook, write_kubeconfig
from tests.integration.test_webhook import eventually, metric, pod, post, review

EVENTS_PATH = "/apis/events.k8s.io/v1/namespaces/shop/events"


class FakeApiServer:
    """Empty lists, watches that end at once, and Event POSTs recorded (answered when ``release`` is set)."""

    def __init__(self) -> None:
        self.posted: list[dict[str, Any]] = []
        self.received: list[str] = []
        self.release = threading.Event()
        self.release.set()
        state = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _send(self, status: int, body: dict[str, Any]) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self) -> None:
                kind = "NamespaceList" if "/namespaces" in self.path else "NodeList"
                if "watch=" in self.path:
                    time.sleep(0.5)  # a watch with nothing to say, ended (the reflector backs off)
                    self._send(200, {})
                    return
                self._send(
                    200, {"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": []}
                )

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                state.received.append(self.path)
                state.release.wait(timeout=30)
                if self.path != EVENTS_PATH:
                    self._send(404, {"kind": "Status", "apiVersion": "v1", "code": 404})
                    return
                state.posted.append(body)
                self._send(201, {**body, "metadata": {**body["metadata"], "name": "e1"}})

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def events(self) -> list[dict[str, Any]]:
        """The ignored-annotation Events (the placements' are in ``placed``)."""
        return [e for e in self.posted if e["reason"] == "AnnotationIgnored"]

    @property
    def placed(self) -> list[dict[str, Any]]:
        return [e for e in self.posted if e["reason"] == "RegionPlaced"]

    def close(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()

    def kubeconfig(self, path: Path) -> Path:
        return write_kubeconfig(path, self.url)


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApiServer]:
    server = FakeApiServer()
    monkeypatch.setenv("KUBECONFIG", str(server.kubeconfig(tmp_path / "kubeconfig")))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    yield server
    server.close()


@pytest.fixture
def webhook(start_webhook: StartWebhook, api: FakeApiServer) -> Webhook:
    started = start_webhook(watch_cluster=True)
    started.wait_ready()
    return started


def misspelt(name: str | None = None) -> dict[str, Any]:
    obj = pod()
    obj["metadata"]["annotations"] = {"ecopulse.io/allowed-region": "eu-north-1"}
    if name is not None:
        obj["metadata"]["name"] = name
    return obj


def test_a_misspelt_key_becomes_an_event_naming_the_closest_key(webhook: Webhook, api: FakeApiServer) -> None:
    response = post(webhook, review(misspelt(name="web-1")))
    assert any("ecopulse.io/allowed-regions" in w for w in response.get("warnings", []))
    eventually("the Event is posted", lambda: len(api.events) == 1)
    (event,) = api.events
    assert event["type"] == "Warning"
    assert event["reason"] == "AnnotationIgnored"
    assert event["reportingController"] == "ecopulse.io/webhook"
    assert event["regarding"] == {"apiVersion": "v1", "kind": "Pod", "name": "web-1", "namespace": "shop"}
    assert "ecopulse.io/allowed-region: unknown annotation" in event["note"]
    assert "did you mean ecopulse.io/allowed-regions?" in event["note"]


def test_an_unnamed_pod_is_reported_on_its_controller_once_per_template(
    webhook: Webhook, api: FakeApiServer
) -> None:
    for uid in ("a", "b", "c"):  # three replicas of one ReplicaSet
        post(webhook, review(misspelt(), uid=uid))
    eventually("the Event is posted", lambda: len(api.events) == 1)
    time.sleep(0.3)  # a second (duplicate) Event would have been posted by now
    assert len(api.events) == 1
    (owner,) = pod()["metadata"]["ownerReferences"]
    assert api.events[0]["regarding"] == {
        "apiVersion": owner["apiVersion"],
        "kind": "ReplicaSet",
        "name": owner["name"],
        "uid": owner["uid"],
        "namespace": "shop",
    }


def test_an_invalid_value_is_an_event_too(webhook: Webhook, api: FakeApiServer) -> None:
    obj = pod()
    obj["metadata"]["name"] = "web-2"
    obj["metadata"]["annotations"] = {"ecopulse.io/max-latency-ms": "soon"}
    post(webhook, review(obj))
    eventually("the Event is posted", lambda: len(api.events) == 1)
    assert "ecopulse.io/max-latency-ms" in api.events[0]["note"]


def test_reviews_are_answered_while_the_api_holds_an_event(webhook: Webhook, api: FakeApiServer) -> None:
    api.release.clear()
    post(webhook, review(misspelt(name="web-3")))
    eventually("the first Event reaches the API", lambda: len(api.received) >= 1)
    # The API now holds that POST (for up to 30 s, longer than the client's 10 s timeout): a review
    # that waited for it would fail here.
    response = post(webhook, review(misspelt(name="web-6")))
    assert any("ecopulse.io/allowed-regions" in w for w in response.get("warnings", []))
    assert api.events == []
    api.release.set()
    eventually("both Events are posted", lambda: len(api.events) == 2)
    assert [e["regarding"]["name"] for e in api.events] == ["web-3", "web-6"]


def test_a_dry_run_posts_nothing(webhook: Webhook, api: FakeApiServer) -> None:
    body = review(misspelt(name="web-4"))
    body["request"]["dryRun"] = True
    response = post(webhook, body)
    assert any("ecopulse.io/allowed-regions" in w for w in response.get("warnings", []))
    post(webhook, review(misspelt(name="web-5")))  # a real one after it, as a marker
    eventually("the marker Event is posted", lambda: len(api.events) >= 1)
    time.sleep(0.2)
    assert [e["regarding"]["name"] for e in api.events] == ["web-5"]


def test_a_pod_without_problems_posts_nothing(webhook: Webhook, api: FakeApiServer) -> None:
    before = metric("ecopulse_admission_requests_total", outcome="mutated")
    obj = pod()
    obj["metadata"]["name"] = "fine"
    post(webhook, review(obj))
    eventually(
        "the review is recorded",
        lambda: metric("ecopulse_admission_requests_total", outcome="mutated") > before,
    )
    time.sleep(0.2)
    assert api.events == []


# --- where a controller's pods were placed (issue 29) --------------------------------------------


def test_a_placement_is_an_event_on_the_controller_once_per_region(
    webhook: Webhook, api: FakeApiServer
) -> None:
    for uid in ("a", "b", "c"):  # three replicas of one ReplicaSet, no name yet
        response = post(webhook, review(pod(), uid=uid))
        assert response["patchType"] == "JSONPatch"
    eventually("the placement Event is posted", lambda: len(api.placed) == 1)
    time.sleep(0.3)  # a duplicate would have been posted by now
    (event,) = api.placed
    (owner,) = pod()["metadata"]["ownerReferences"]
    assert event["regarding"] == {
        "apiVersion": owner["apiVersion"],
        "kind": "ReplicaSet",
        "name": owner["name"],
        "uid": owner["uid"],
        "namespace": "shop",
    }
    assert (event["type"], event["action"]) == ("Normal", "Place")
    assert event["note"].startswith("Placed its pods in eu-north-1: preferred eu-north-1")
    assert "gCO2/kWh" in event["note"] and "\n" not in event["note"]


def test_a_bare_pod_and_a_dry_run_get_no_placement_event(webhook: Webhook, api: FakeApiServer) -> None:
    bare = pod()
    del bare["metadata"]["ownerReferences"]
    bare["metadata"]["name"] = "solo"
    post(webhook, review(bare))
    dry = review(pod(), uid="dry")
    dry["request"]["dryRun"] = True
    post(webhook, dry)
    marker = misspelt(name="marker")
    del marker["metadata"]["ownerReferences"]
    post(webhook, review(marker))  # posted after them, as a marker
    eventually("the marker Event is posted", lambda: len(api.events) == 1)
    time.sleep(0.2)
    assert api.placed == []
