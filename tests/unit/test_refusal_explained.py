"""Issue 29: a refused move explains itself as an eviction does, in its log line and in an Event."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import pytest

from core.config import EcoPulseConfiguration
from core.kube.events import EventRequest
from core.logs import JsonFormatter
from core.model import PodRecord
from rebalancer.cycle import CycleInputs, run_cycle
from rebalancer.planner import BELOW_MIN_BENEFIT
from rebalancer.refusals import RefusalEvents
from tests.factories import FakeEvictionApi
from tests.unit.test_planner import NODES, NOW, config, pod, signals

BREAKDOWN = (
    "price_savings_usd",
    "carbon_value_usd",
    "egress_cost_usd",
    "latency_penalty_usd",
    "migration_cost_usd",
    "source_capacity_type",
    "target_capacity_type",
    "robust_net_benefit_usd",
)


def cycle(
    pods: list[PodRecord],
    cfg: EcoPulseConfiguration,
    api: FakeEvictionApi,
    *,
    events: RefusalEvents | None,
    minutes: float = 0,
) -> None:
    run_cycle(
        CycleInputs(
            config=lambda: cfg,
            signals=lambda: signals(us=600),
            pods=lambda: {p.uid: p for p in pods},
            nodes=lambda: NODES,
            namespaces=dict,
            synced=lambda: True,
            is_leader=lambda: True,
            api=api,
            clock=lambda: NOW + timedelta(minutes=minutes),
            refusal_events=events,
        )
    )


def refused_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    lines = [json.loads(JsonFormatter().format(r)) for r in caplog.records]
    return [line for line in lines if line.get("decision") == "refused"]


def test_a_refusal_below_the_minimum_logs_the_whole_breakdown(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ecopulse.rebalancer")
    cycle([pod()], config(min_net_benefit_usd=100.0), FakeEvictionApi(), events=None)
    (line,) = refused_lines(caplog)
    assert line["reason"] == BELOW_MIN_BENEFIT
    for key in BREAKDOWN:
        assert key in line, key
    assert line["source_region"] == "us-east-1" and line["target_region"] == "eu-north-1"
    assert line["source_capacity_type"] == "on-demand"
    explanation = str(line["explanation"])
    assert explanation.startswith(
        "stays in us-east-1 (600 gCO2/kWh): below-min-net-benefit; moving to eu-north-1"
    )
    for part in ("price savings", "carbon value", "egress", "latency", "migration", "priced on-demand"):
        assert part in explanation, part


def test_a_protected_pod_s_refusal_still_says_what_the_move_was_worth(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="ecopulse.rebalancer")
    cycle([pod(local_storage=True)], config(), FakeEvictionApi(), events=None)
    (line,) = refused_lines(caplog)
    assert line["reason"] == "local-storage"
    assert isinstance(line["carbon_value_usd"], float) and line["carbon_value_usd"] > 0


def test_the_first_refusal_of_a_workload_per_cooldown_is_an_event_on_its_owner() -> None:
    api, events = FakeEvictionApi(), RefusalEvents()
    cfg = config(min_net_benefit_usd=100.0)  # minPodAgeSeconds 1800: the cooldown
    replicas = [pod("web-1"), pod("web-2", node_name="us-b")]
    cycle(replicas, cfg, api, events=events)
    assert api.calls == []
    (only,) = api.events  # two replicas, one workload: one Event
    assert only.startswith("ReplicaSet/web-abc: Not moving pod web-1: stays in us-east-1 (600 gCO2/kWh)")
    assert "net benefit" in only and "carbon value" in only
    assert api.involved[0]["apiVersion"] == "apps/v1"
    cycle(replicas, cfg, api, events=events, minutes=10)
    assert len(api.events) == 1  # within the cooldown: nothing new
    cycle(replicas, cfg, api, events=events, minutes=31)
    assert len(api.events) == 2  # the cooldown is over: told again


def test_a_bare_pod_is_told_on_itself_and_an_opted_out_one_not_at_all() -> None:
    api = FakeEvictionApi()
    bare = pod("solo", owner_kind=None, owner_name=None, owner_api_version="")
    opted_out = pod("quiet", owner_name="other", hint_annotations={"ecopulse.io/opt-out": "true"})
    cycle([bare, opted_out], config(), api, events=RefusalEvents())
    (only,) = api.events
    assert only.startswith("Pod/solo: Not moving: stays in us-east-1 (600 gCO2/kWh): bare-pod;")
    assert api.involved[0]["uid"] == "uid-solo"


def test_a_cycle_posts_a_bounded_number_of_refusal_events() -> None:
    api = FakeEvictionApi()
    workloads = [pod(f"w{i}", owner_name=f"w{i}") for i in range(30)]
    cycle(workloads, config(min_net_benefit_usd=100.0), api, events=RefusalEvents(max_per_cycle=5))
    assert len(api.events) == 5


def test_a_short_cooldown_still_tells_a_workload_at_most_every_ten_minutes() -> None:
    api, events = FakeEvictionApi(), RefusalEvents()
    cfg = config(min_net_benefit_usd=100.0, min_pod_age_seconds=10)
    for minutes in (0, 1, 5, 9):
        cycle([pod()], cfg, api, events=events, minutes=minutes)
    assert len(api.events) == 1
    cycle([pod()], cfg, api, events=events, minutes=11)
    assert len(api.events) == 2


def test_a_failed_post_ends_the_cycle_s_events_and_is_tried_again_next_cycle() -> None:
    # Each post may wait out its timeout when the API is in trouble: one failure a cycle, not twenty.
    api = FakeEvictionApi()
    attempts: list[str] = []

    def failing(request: EventRequest) -> bool:
        attempts.append(request.involved["name"])
        return False

    api.post_event = failing  # type: ignore[method-assign]
    events = RefusalEvents()
    workloads = [pod(f"w{i}", owner_name=f"w{i}") for i in range(5)]
    cycle(workloads, config(min_net_benefit_usd=100.0), api, events=events)
    assert len(attempts) == 1
    del api.post_event  # the fake's own, which accepts
    cycle(workloads, config(min_net_benefit_usd=100.0), api, events=events, minutes=1)
    assert len(api.events) == 5


@pytest.mark.parametrize(
    "passing",
    [dict(deleting=True), dict(phase="Pending"), dict(ready=False)],
    ids=["terminating", "not-running", "not-ready"],
)
def test_a_passing_state_is_logged_but_not_an_event(passing: dict[str, Any]) -> None:
    api = FakeEvictionApi()
    cycle([pod(**passing)], config(), api, events=RefusalEvents())
    assert api.events == []
