"""Issue 29: `make demo` shows where each pod runs now and the latest decision about it, in units."""

from __future__ import annotations

import json
from typing import Any

from tests.e2e import demo_tables

ANNOTATION = (
    "preferred eu-north-1 (chosen at admission)\n"
    "net benefit vs us-east-1 over 6 h:\n"
    "eu-north-1: +0.0332 USD at 30 gCO2/kWh\n"
    "us-east-1: +0.0000 USD at 450 gCO2/kWh\n"
    "signals: mock, at most 1 s old"
)
GRID = {"us-east-1": 450.0, "eu-west-1": 300.0, "eu-north-1": 30.0}
NODES = [
    {"metadata": {"name": "kwok-eu-north-1-0", "labels": {demo_tables.REGION_LABEL: "eu-north-1"}}},
    {"metadata": {"name": "kwok-us-east-1-0", "labels": {demo_tables.REGION_LABEL: "us-east-1"}}},
]
OWNER = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9c", "controller": True}


def pod(name: str, node: str, created: str, annotation: str | None = ANNOTATION) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "creationTimestamp": created, "ownerReferences": [OWNER]}
    if annotation is not None:
        metadata["annotations"] = {demo_tables.DECISION_ANNOTATION: annotation}
    return {"metadata": metadata, "spec": {"nodeName": node}}


def event(reason: str, note: str, at: str, regarding: dict[str, str], controller: str) -> dict[str, Any]:
    return {
        "reason": reason,
        "note": note,
        "eventTime": at,
        "regarding": regarding,
        "reportingController": controller,
    }


def row(table: str, name: str) -> str:
    return next(line for line in table.splitlines() if line.startswith(name))


def test_a_pod_shows_where_it_runs_now_with_the_grid_in_units() -> None:
    table = demo_tables.pods_table(
        [pod("web-a", "kwok-eu-north-1-0", "2026-12-07T17:00:00Z")], NODES, [], GRID
    )
    line = row(table, "web-a")
    assert "eu-north-1" in line and "30 gCO2/kWh" in line
    assert line.endswith(
        "admission: preferred eu-north-1; eu-north-1: +0.0332 USD at 30 gCO2/kWh "
        "(net benefit vs us-east-1 over 6 h)"
    )
    assert "30g" not in line.replace("30 gCO2", "")


def test_a_later_refusal_is_the_latest_decision_not_the_admission_text() -> None:
    # Placed in us-east-1 when it was green; the grid flipped and the rebalancer refused to move it.
    placed = pod(
        "web-b", "kwok-us-east-1-0", "2026-12-07T17:00:00Z", ANNOTATION.replace("eu-north-1", "us-east-1")
    )
    refusal = event(
        "CarbonRebalanceRefused",
        "Not moving pod web-b: stays in us-east-1 (450 gCO2/kWh): too-young; moving to eu-north-1 ...",
        "2026-12-07T17:05:00.000000Z",
        {"kind": "ReplicaSet", "name": "web-7d4b9c", "namespace": "demo"},
        "ecopulse.io/rebalancer",
    )
    foreign = event("Scheduled", "assigned", "2026-12-07T17:09:00Z", {"kind": "Pod", "name": "web-b"}, "")
    line = row(demo_tables.pods_table([placed], NODES, [refusal, foreign], GRID), "web-b")
    assert "us-east-1" in line and "450 gCO2/kWh" in line
    assert (
        "CarbonRebalanceRefused: Not moving pod web-b: stays in us-east-1 (450 gCO2/kWh): too-young" in line
    )
    assert " 2026-12-07T17:05:00Z " in line  # to the second
    assert "admission:" not in line


def test_a_pod_the_webhook_left_alone_says_so() -> None:
    line = row(
        demo_tables.pods_table([pod("web-c", "kwok-us-east-1-0", "t", annotation=None)], NODES, [], GRID),
        "web-c",
    )
    assert "left alone" in line


def test_the_fleet_decision_reads_as_a_sentence_with_units() -> None:
    annotation = json.dumps(
        {
            "decision": "move",
            "reason": "better-cluster",
            "from": ["member-us-east-1"],
            "to": "member-eu-north-1",
            "netBenefitUsd": 0.0123,
            "avoidedGrams": 45.6,
            "clusters": ["member-eu-north-1"],
        }
    )
    policy = {"metadata": {"name": "web", "annotations": {demo_tables.DECISION_ANNOTATION: annotation}}}
    text = demo_tables.latest_policy_decision(policy, []).text
    assert text.startswith("move (better-cluster): member-us-east-1 -> member-eu-north-1")
    assert "+0.0123 USD" in text and "45.6 gCO2eq" in text
    moved = event(
        "FleetMoved", "move (better-cluster): a -> b; net benefit +0.0100 USD", "2026-12-07T17:10:00Z",
        {"kind": "PropagationPolicy", "name": "web"}, "ecopulse.io/fleet",
    )  # fmt: skip
    assert demo_tables.latest_policy_decision(policy, [moved]).text.startswith("FleetMoved: move")


def test_an_event_later_in_the_same_second_is_the_later_decision() -> None:
    placed = pod("web-d", "kwok-us-east-1-0", "2026-12-07T17:00:00Z")
    refusal = event(
        "CarbonRebalanceRefused",
        "Not moving pod web-d: ...",
        "2026-12-07T17:00:00.500000Z",
        {"kind": "ReplicaSet", "name": "web-7d4b9c"},
        "ecopulse.io/rebalancer",
    )
    assert demo_tables.latest_pod_decision(placed, [refusal]).text.startswith("CarbonRebalanceRefused")


def test_a_workload_refusal_is_not_the_decision_about_a_replica_elsewhere() -> None:
    # The refusal is about the replicas left in us-east-1; one already in eu-north-1 was placed there.
    moved = pod("web-e", "kwok-eu-north-1-0", "2026-12-07T17:00:00Z")
    refusal = event(
        "CarbonRebalanceRefused",
        "Not moving pod web-f: stays in us-east-1 (450 gCO2/kWh): too-young; moving to eu-north-1 ...",
        "2026-12-07T17:00:05Z",
        {"kind": "ReplicaSet", "name": "web-7d4b9c"},
        "ecopulse.io/rebalancer",
    )
    line = row(demo_tables.pods_table([moved], NODES, [refusal], GRID), "web-e")
    assert "admission: preferred eu-north-1" in line and "CarbonRebalanceRefused" not in line
