"""core.kube.events: the Event body every app writes, exactly as handed to the client."""

from __future__ import annotations

from datetime import UTC, datetime

from kubernetes import client

from core.kube.events import EventRecorder, EventRequest, event_body

NOW = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
POD = {"kind": "Pod", "apiVersion": "v1", "name": "Web_1.", "uid": "u-1", "extra": "dropped"}


def test_the_body_names_the_object_trims_the_fields_and_keeps_the_namespace() -> None:
    body = event_body(
        EventRequest(
            namespace="shop",
            involved=POD,
            reason="R" * 200,
            message="a  note\nover lines",
            action="Evict",
            event_type="Warning",
        ),
        reporting_controller="ecopulse.io/rebalancer",
        reporting_instance="pod-1",
        now=NOW,
    )
    assert body == {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"generateName": "web-1-", "namespace": "shop"},
        "eventTime": body["eventTime"],
        "regarding": {"apiVersion": "v1", "kind": "Pod", "name": "Web_1.", "namespace": "shop", "uid": "u-1"},
        "reason": "R" * 127 + "…",
        "note": "a  note\nover lines",  # the note keeps its layout; only its bytes are capped
        "action": "Evict",
        "type": "Warning",
        "reportingController": "ecopulse.io/rebalancer",
        "reportingInstance": "pod-1",
    }
    assert body["eventTime"] == NOW


def test_the_recorder_fills_in_who_reports_and_a_normal_eviction_by_default() -> None:
    recorder = EventRecorder(
        client.ApiClient(), reporting_controller="ecopulse.io/rebalancer", reporting_instance="i" * 200
    )
    request = EventRequest(namespace="shop", involved=POD, reason="CarbonRebalance", message="moved")
    body = recorder.event_body(request, now=NOW)
    assert (body["type"], body["action"], body["reportingController"]) == (
        "Normal",
        "Evict",
        "ecopulse.io/rebalancer",
    )
    assert body["reportingInstance"] == "i" * 127 + "…"
    assert body == event_body(
        EventRequest(
            namespace="shop",
            involved=POD,
            reason="CarbonRebalance",
            message="moved",
            action="Evict",
            event_type="Normal",
        ),
        reporting_controller="ecopulse.io/rebalancer",
        reporting_instance="i" * 200,
        now=NOW,
    )
