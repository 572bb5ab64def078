"""The Event for ignored annotations: its subject (pure), and the bounded queue that posts it."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import REGISTRY

from webhook.events import (
    PLACEMENT_EVENTS,
    AnnotationEvent,
    EventQueue,
    PlacementNotices,
    annotation_event,
    placement_event,
)

PROBLEMS = (
    "ecopulse.io/allowed-region: unknown annotation, ignored (did you mean ecopulse.io/allowed-regions?)",
)
OWNER = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "u1", "controller": True}


def counted(result: str) -> float:
    return REGISTRY.get_sample_value("ecopulse_annotation_events_total", {"result": result}) or 0.0


@pytest.mark.parametrize(
    ("metadata", "regarding"),
    [
        pytest.param(
            {"name": "p", "ownerReferences": [OWNER]},
            {"apiVersion": "v1", "kind": "Pod", "name": "p", "namespace": "ns"},
            id="a named pod is the subject",
        ),
        pytest.param(
            {"generateName": "web-1-", "ownerReferences": [OWNER]},
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "u1", "namespace": "ns"},
            id="an unnamed pod: its controller",
        ),
        pytest.param(
            {"generateName": "x-", "ownerReferences": [{**OWNER, "controller": False}]},
            None,
            id="no controller",
        ),
        pytest.param(
            {"generateName": "x-", "ownerReferences": [{**OWNER, "uid": ""}]}, None, id="owner without uid"
        ),
        pytest.param({"generateName": "x-", "ownerReferences": "junk"}, None, id="junk owners"),
        pytest.param({}, None, id="nothing to name"),
    ],
)
def test_the_subject(metadata: dict[str, Any], regarding: dict[str, str] | None) -> None:
    event = annotation_event({"metadata": metadata}, namespace="ns", problems=PROBLEMS)
    if regarding is None:
        assert event is None
        return
    assert event is not None
    assert dict(event.regarding) == regarding
    assert "did you mean ecopulse.io/allowed-regions?" in event.note


def event(name: str, note: str = "n") -> AnnotationEvent:
    return AnnotationEvent(namespace="ns", regarding={"kind": "Pod", "name": name}, note=note)


def recorder(posted: list[str]) -> Callable[[AnnotationEvent], bool]:
    def post(e: AnnotationEvent) -> bool:
        posted.append(e.regarding["name"])
        return True

    return post


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_full_queue_drops_and_counts_and_never_blocks() -> None:
    posted: list[str] = []
    events = EventQueue(recorder(posted), capacity=2)
    dropped = counted("dropped")
    results = [events.offer(event(f"p{i}")) for i in range(5)]
    assert results == ["queued", "queued", "dropped", "dropped", "dropped"]
    assert counted("dropped") == dropped + 3
    events.drain()
    assert posted == ["p0", "p1"]
    assert events.offer(event("p2")) == "queued"  # a dropped one is not remembered as sent


def test_the_same_event_is_posted_once_per_window() -> None:
    clock = Clock()
    posted: list[str] = []
    events = EventQueue(recorder(posted), deduplicate_seconds=600, clock=clock)
    assert events.offer(event("p")) == "queued"
    clock.now = 599
    assert events.offer(event("p")) == "duplicate"
    assert events.offer(event("p", note="another problem")) == "queued"
    clock.now = 600
    assert events.offer(event("p")) == "queued"
    events.drain()
    assert posted == ["p", "p", "p"]


def test_a_failed_post_is_counted_and_may_be_tried_again() -> None:
    failed = counted("failed")
    events = EventQueue(lambda _: False)
    assert events.offer(event("p")) == "queued"
    events.drain()
    assert counted("failed") == failed + 1
    assert events.offer(event("p")) == "queued"


def test_a_raising_poster_does_not_kill_the_thread() -> None:
    calls: list[str] = []
    done = threading.Event()

    def post(e: AnnotationEvent) -> bool:
        calls.append(e.regarding["name"])
        if e.regarding["name"] == "boom":
            raise RuntimeError("bug")
        done.set()
        return True

    events = EventQueue(post)
    events.start()
    events.offer(event("boom"))
    events.offer(event("after"))
    assert done.wait(timeout=10)
    events.stop()
    assert calls == ["boom", "after"]


def test_no_subject_is_counted() -> None:
    before = counted("no-subject")
    assert EventQueue(lambda _: True).offer(None) == "no-subject"
    assert counted("no-subject") == before + 1


# --- placements (issue 29) ----------------------------------------------------------------------


def test_a_placement_is_one_event_per_controller_and_region_and_a_shared_outcome_is_not_decoded() -> None:
    posted: list[AnnotationEvent] = []

    def post(event: AnnotationEvent) -> bool:
        posted.append(event)
        return True

    queue = EventQueue(post, results=PLACEMENT_EVENTS)
    notices = PlacementNotices(queue)
    pod = json.dumps({"metadata": {"generateName": "web-1-", "ownerReferences": [OWNER]}}).encode()
    shared = object()  # what the outcome memo hands every replica of a template
    for _ in range(3):
        notices.offer(pod, namespace="ns", region="eu-north-1", decision="a\nb", outcome=shared)
    notices.offer(b"not json", namespace="ns", region="eu-north-1", decision="a", outcome=shared)  # not read
    notices.offer(pod, namespace="ns", region="eu-north-1", decision="a\nc", outcome=object())  # duplicate
    notices.offer(pod, namespace="ns", region="eu-west-1", decision="moved", outcome=object())
    queue.drain()
    assert [(e.regarding["name"], e.note) for e in posted] == [
        ("web-1", "Placed its pods in eu-north-1: a; b"),
        ("web-1", "Placed its pods in eu-west-1: moved"),
    ]
    assert (posted[0].reason, posted[0].event_type, posted[0].action) == ("RegionPlaced", "Normal", "Place")
    assert placement_event(b"{}", namespace="ns", region="r", decision="d") is None  # no controller
