"""Every path reads policies the same way: admission, the extender, the planner and the status."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from core.accounting import Accrual
from core.kube.caches import NodeRecord, PolicyRecord, slim_policy
from core.model import CapacityType, PodDemand, PolicyPlacement
from core.policy import PolicySet, PolicyStatus, build_policy_set, parse_policy
from rebalancer.planner import POLICY_NEVER, plan
from rebalancer.policy_status import statuses
from tests.factories import pod_record
from tests.unit.test_outcome_memo import CONFIG, GRID, T0, request
from webhook.admission.mutate import Outcome, OutcomeMemo, Reason, ReviewOutcome, decide
from webhook.extender.decide import judge
from webhook.extender.types import parse_args

KNOWN = frozenset(CONFIG.region_names)


def policy_object(
    name: str, spec: dict[str, Any], *, namespace: str | None = "shop", age: int = 0
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "generation": 3,
        "creationTimestamp": (T0 - timedelta(minutes=age)).isoformat().replace("+00:00", "Z"),
    }
    if namespace:
        metadata["namespace"] = namespace
    kind = "EcoPulsePolicy" if namespace else "ClusterEcoPulsePolicy"
    return {"apiVersion": "ecopulse.io/v1alpha1", "kind": kind, "metadata": metadata, "spec": spec}


def policy_set(*objects: dict[str, Any]) -> PolicySet:
    return build_policy_set([parse_policy(o) for o in objects], known_regions=KNOWN)


def web_pod(**annotations: str) -> dict[str, Any]:
    return {
        "metadata": {
            "generateName": "web-",
            "namespace": "shop",
            "labels": {"app": "web"},
            "annotations": annotations,
        },
        "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}]},
    }


WEST_ONLY = policy_object(
    "west", {"selector": {"matchLabels": {"app": "web"}}, "allowedRegions": ["eu-west-1"]}
)


# --- admission -----------------------------------------------------------------------------------


def test_a_policy_steers_admission_and_the_pod_is_told_which() -> None:
    without = decide(request(web_pod()), signals=GRID, config=CONFIG)
    assert without.region == "eu-north-1"
    outcome = decide(request(web_pod()), signals=GRID, config=CONFIG, policies=policy_set(WEST_ONLY))
    assert outcome.outcome is Outcome.MUTATED
    assert outcome.region == "eu-west-1"
    assert outcome.policy == "EcoPulsePolicy/shop/west"
    written = {
        op["path"]: op["value"] for op in outcome.patch if op["path"].startswith("/metadata/annotations")
    }
    flattened = json.dumps(written)
    assert "EcoPulsePolicy/shop/west" in flattened and "ecopulse.io~1policy" in flattened


def test_the_pod_annotation_overrides_the_policy() -> None:
    pod = web_pod(**{"ecopulse.io/allowed-regions": "eu-north-1,us-east-1"})
    outcome = decide(request(pod), signals=GRID, config=CONFIG, policies=policy_set(WEST_ONLY))
    assert outcome.region == "eu-north-1"


def test_mode_off_skips_and_an_invalid_policy_changes_nothing() -> None:
    off = policy_object("off", {"mode": "off"})
    skipped = decide(request(web_pod()), signals=GRID, config=CONFIG, policies=policy_set(off))
    assert skipped.outcome is Outcome.SKIPPED and skipped.reason is Reason.POLICY_OFF
    assert skipped.policy == "EcoPulsePolicy/shop/off"
    mars = policy_object("mars", {"allowedRegions": ["mars-1"]})
    placed = decide(request(web_pod()), signals=GRID, config=CONFIG, policies=policy_set(mars))
    assert placed.region == "eu-north-1" and placed.policy == ""


def test_a_required_policy_adds_a_required_affinity() -> None:
    required = policy_object("req", {"mode": "required"})
    outcome = decide(request(web_pod()), signals=GRID, config=CONFIG, policies=policy_set(required))
    affinity = json.dumps([op for op in outcome.patch if "affinity" in op["path"]])
    assert "requiredDuringSchedulingIgnoredDuringExecution" in affinity


def test_the_outcome_memo_forgets_when_the_policies_change() -> None:
    memo = OutcomeMemo()
    review = request(web_pod())
    for policies, region in ((PolicySet(), "eu-north-1"), (policy_set(WEST_ONLY), "eu-west-1")):

        def decided(policies: PolicySet = policies) -> ReviewOutcome:
            return decide(review, signals=GRID, config=CONFIG, policies=policies)

        outcome = memo.outcome(
            review, signals=GRID, config=CONFIG, namespace_info=None, policies=policies, decide=decided
        )
        assert outcome.region == region


# --- the extender ----------------------------------------------------------------------------------


def test_the_extender_filters_by_the_policy() -> None:
    args = parse_args(
        json.dumps({"Pod": web_pod(), "NodeNames": ["n-east", "n-west", "n-north"]}).encode(),
        keep_node_objects=False,
    )
    regions = {"n-east": "us-east-1", "n-west": "eu-west-1", "n-north": "eu-north-1"}
    nodes = [(name, regions[name]) for name in args.node_names or ()]
    judgement = judge(args, nodes=nodes, signals=GRID, config=CONFIG, policies=policy_set(WEST_ONLY))
    assert set(judgement.failed) == {"n-east", "n-north"}
    assert "policy" in judgement.failed["n-north"][1]
    assert judgement.policy == "EcoPulsePolicy/shop/west"


# --- the planner and the status -----------------------------------------------------------------------

# Moves that pay: a high carbon price, cheap restarts, a low floor.
MOVING = replace(
    CONFIG,
    economics=replace(
        CONFIG.economics,
        carbon_price_usd_per_tonne=1000,
        migration_cost_usd=0.0001,
        restart_downtime_seconds=5,
    ),
    rebalancer=replace(CONFIG.rebalancer, min_net_benefit_usd=0.0001, min_pod_age_seconds=0),
)
NODES = {
    "east": NodeRecord(
        name="east",
        region="us-east-1",
        capacity_type=CapacityType.ON_DEMAND,
        allocatable_cpu_cores=64,
        allocatable_memory_gib=256,
        schedulable=True,
    ),
    "north": NodeRecord(
        name="north",
        region="eu-north-1",
        capacity_type=CapacityType.ON_DEMAND,
        allocatable_cpu_cores=64,
        allocatable_memory_gib=256,
        schedulable=True,
    ),
}


def east_pod(name: str = "web-1", **overrides: Any) -> Any:
    fields: dict[str, Any] = {"labels": {"app": "web"}, "demand": PodDemand(cpu_cores=4, memory_gib=8)}
    return pod_record(name, started_at=T0 - timedelta(days=1), node_name="east", **(fields | overrides))


def test_rebalance_never_keeps_the_pods_where_they_are() -> None:
    moving = plan(pods=[east_pod()], nodes=NODES, namespaces={}, signals=GRID, config=MOVING, now=T0)
    assert [c.target_region for c in moving.candidates] == ["eu-north-1"]
    never = policy_set(policy_object("pin", {"rebalance": "never"}))
    kept = plan(
        pods=[east_pod()], nodes=NODES, namespaces={}, signals=GRID, config=MOVING, now=T0, policies=never
    )
    assert kept.candidates == []
    assert [(r.reason, r.policy) for r in kept.refusals] == [(POLICY_NEVER, "EcoPulsePolicy/shop/pin")]


def test_a_candidate_names_its_policy_and_max_unavailable_lets_more_move() -> None:
    policies = policy_set(policy_object("two", {"maxUnavailable": 2}))
    pods = [east_pod("web-0", ready=False), east_pod("web-1"), east_pod("web-2")]
    one_at_a_time = plan(pods=pods, nodes=NODES, namespaces={}, signals=GRID, config=MOVING, now=T0)
    assert one_at_a_time.candidates == []  # a replica is already on the move
    result = plan(
        pods=pods, nodes=NODES, namespaces={}, signals=GRID, config=MOVING, now=T0, policies=policies
    )
    assert {c.policy for c in result.candidates} == {"EcoPulsePolicy/shop/two"}
    assert len(result.candidates) == 2


def records(*objects: dict[str, Any]) -> list[PolicyRecord]:
    slimmed = [slim_policy(o) for o in objects]
    return [r for r in slimmed if r is not None]


def test_status_counts_conflicts_invalid_and_totals() -> None:
    older = policy_object("older", {"selector": {"matchLabels": {"app": "web"}}, "maxLatencyMs": 10}, age=60)
    newer = policy_object("newer", {"selector": {"matchLabels": {"tier": "front"}}, "maxLatencyMs": 90})
    mars = policy_object("mars", {"allowedRegions": ["mars-1"]})
    older["status"] = PolicyStatus(carbon_avoided_grams=100.0, cost_saved_usd=1.0).to_wire()
    objects = (older, newer, mars)
    placed = east_pod(
        "web-9",
        labels={"app": "web", "tier": "front"},
        placed=PolicyPlacement(refs="EcoPulsePolicy/shop/older", created_at=T0 - timedelta(minutes=5)),
    )
    stale = east_pod(
        "web-8",
        labels={"app": "web"},
        placed=PolicyPlacement(refs="EcoPulsePolicy/shop/older", created_at=T0 - timedelta(hours=2)),
    )
    result = statuses(
        records(*objects),
        policies=policy_set(*objects),
        pods=[placed, stale],
        namespaces={},
        accrued={"EcoPulsePolicy/shop/older": Accrual(baseline_emissions_grams=50.0, emissions_grams=20.0)},
        moved={"EcoPulsePolicy/shop/older": 1},
        now=T0,
    )
    _, first = result["EcoPulsePolicy/shop/older"]
    _, second = result["EcoPulsePolicy/shop/newer"]
    _, invalid = result["EcoPulsePolicy/shop/mars"]
    assert first.observed_generation == 3
    assert first.pods_matched == 2 and first.pods_placed_last_hour == 1 and first.pods_moved_last_hour == 1
    assert first.carbon_avoided_grams == 130.0 and first.cost_saved_usd == 1.0
    assert first.condition("Ready").status == "True"  # type: ignore[union-attr]
    assert first.condition("Conflict").status == "True"  # type: ignore[union-attr]
    assert "EcoPulsePolicy/shop/newer" in first.condition("Conflict").message  # type: ignore[union-attr]
    assert second.condition("Ready").reason == "Conflict"  # type: ignore[union-attr]
    assert second.condition("Conflict").status == "True"  # type: ignore[union-attr]
    ready = invalid.condition("Ready")
    assert ready is not None and ready.status == "False" and ready.reason == "Invalid"
    assert "spec.allowedRegions" in invalid.condition("Invalid").message  # type: ignore[union-attr]
    assert invalid.pods_matched == 0


def test_an_unchanged_condition_keeps_its_transition_time() -> None:
    obj = policy_object("p", {})
    first = statuses(
        records(obj), policies=policy_set(obj), pods=[], namespaces={}, accrued={}, moved={}, now=T0
    )["EcoPulsePolicy/shop/p"][1]
    obj["status"] = first.to_wire()
    later = statuses(
        records(obj),
        policies=policy_set(obj),
        pods=[],
        namespaces={},
        accrued={},
        moved={},
        now=T0 + timedelta(hours=1),
    )["EcoPulsePolicy/shop/p"][1]
    assert later.to_wire() == first.to_wire()
    assert datetime.fromisoformat(
        first.conditions[0].last_transition_time.replace("Z", "+00:00")
    ) == T0.astimezone(UTC)
