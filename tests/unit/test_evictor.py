"""The evictor, the one choke point: what it asks the Eviction API and which Events it records."""

from __future__ import annotations

from typing import Any

import pytest

from core.config import EcoPulseConfiguration, parse_config_text
from core.economics import NetBenefit
from core.kube.slim import slim_pod
from core.model import PodRecord
from rebalancer.evictor import Evictor
from rebalancer.kubeapi import EvictionOutcome
from rebalancer.planner import Candidate, plan
from tests.factories import FakeEvictionApi
from tests.factories import pod as pod_json
from tests.unit.test_planner import NODES, NOW, config, many, node, pod, signals

SETTINGS = parse_config_text(
    "apiVersion: ecopulse.io/v1alpha1\nkind: EcoPulseConfiguration\n"
    "regions: [{name: us-east-1, zone: US-MIDA-PJM}, {name: eu-north-1, zone: SE-SE3}]\n"
    "baselineRegion: us-east-1\ncarbon: {provider: mock, mock: {us-east-1: 450, eu-north-1: 30}}\n"
    "rebalancer: {dryRun: false}\n"
).rebalancer


def candidate(record: PodRecord) -> Candidate:
    benefit = NetBenefit(
        source="us-east-1",
        target="eu-north-1",
        price_savings_usd=0.0,
        carbon_value_usd=0.01,
        migration_cost_usd=0.001,
        egress_cost_usd=0.0,
        latency_penalty_usd=0.0,
        avoided_grams=10.0,
    )
    return Candidate(
        pod=record,
        source_region="us-east-1",
        target_region="eu-north-1",
        benefit=benefit,
        source_g_per_kwh=450,
        target_g_per_kwh=30,
    )


@pytest.mark.parametrize(
    ("api_version", "kind"),
    [
        ("apps/v1", "ReplicaSet"),
        ("apps/v1", "StatefulSet"),
        ("batch/v1", "Job"),
        ("v1", "ReplicationController"),
    ],
)
def test_the_event_on_the_owner_names_the_owner_s_own_api_version(api_version: str, kind: str) -> None:
    record = slim_pod(pod_json(owner=(api_version, kind, "owner-1"), node_name="us-a"))
    assert record is not None
    api = FakeEvictionApi()
    attempt = Evictor(api=api, settings=SETTINGS).evict(candidate(record))
    assert attempt.result == "evicted"
    on_pod, on_owner = api.involved
    assert on_pod == {
        "kind": "Pod",
        "apiVersion": "v1",
        "name": "web-1",
        "uid": "uid-web-1",
        "namespace": "shop",
    }
    assert on_owner == {"kind": kind, "apiVersion": api_version, "name": "owner-1", "namespace": "shop"}


# --- limits, dry run and refusals, over the planner's candidates -----------------------------------


def evict_all(pods: list[PodRecord], cfg: EcoPulseConfiguration, api: FakeEvictionApi) -> list[str]:
    big = {**NODES, "eu-a": node("eu-a", "eu-north-1", cpu=1000, memory=4000)}
    result = plan(pods=pods, nodes=big, namespaces={}, signals=signals(), config=cfg, now=NOW)
    evictor = Evictor(api=api, settings=cfg.rebalancer)
    return [evictor.evict(c).result for c in result.candidates]


@pytest.mark.parametrize(
    ("limits", "evicted"),
    [
        (dict(max_evictions_per_cycle=3, max_evictions_per_namespace=100, max_evictions_per_node=100), 3),
        (dict(max_evictions_per_cycle=100, max_evictions_per_namespace=4, max_evictions_per_node=100), 4),
        (
            dict(max_evictions_per_cycle=100, max_evictions_per_namespace=100, max_evictions_per_node=2),
            4,
        ),  # 2 nodes
        (dict(max_evictions_per_cycle=0, max_evictions_per_namespace=100, max_evictions_per_node=100), 0),
    ],
)
def test_limits_per_cycle_namespace_and_node(limits: dict[str, int], evicted: int) -> None:
    api = FakeEvictionApi()
    results = evict_all(many(10), config(**limits), api)
    assert results.count("evicted") == evicted
    assert len(api.calls) == evicted  # a limit is checked before the API is called


def test_one_replica_per_workload_per_cycle() -> None:
    api = FakeEvictionApi()
    pods = [pod(f"r{i}", owner_name="same", node_name="us-a" if i % 2 else "us-b") for i in range(4)]
    results = evict_all(pods, config(max_evictions_per_node=10), api)
    assert results.count("evicted") == 1
    assert results.count("limit-workload") == 3


def test_dry_run_decides_everything_and_evicts_nothing() -> None:
    api = FakeEvictionApi()
    results = evict_all(many(3), config(dry_run=True), api)
    assert results == ["dry-run"] * 3
    assert all(dry_run for _, dry_run in api.calls)
    assert api.events == []


def test_a_pdb_refusal_is_counted_and_skipped_and_a_gone_pod_ignored() -> None:
    api = FakeEvictionApi(answers={"p0": EvictionOutcome.BLOCKED, "p1": EvictionOutcome.GONE})
    results = evict_all(many(4), config(max_evictions_per_cycle=2), api)
    assert results.count("blocked") == 1 and results.count("gone") == 1
    assert results.count("evicted") == 2  # neither refusal used up the cycle's budget


def test_each_eviction_explains_itself_on_the_pod_and_its_owner() -> None:
    api = FakeEvictionApi()
    evict_all(many(1), config(), api)
    assert len(api.events) == 2
    pod_event, owner_event = api.events
    assert pod_event.startswith(
        "Pod/p0: Evicted by eco-pulse, moving from us-east-1 (450 gCO2/kWh) to eu-north-1 (30"
    )
    assert "net benefit" in pod_event and "carbon value" in pod_event and "egress" in pod_event
    assert owner_event.startswith("ReplicaSet/w0:")


def test_an_eviction_whose_outcome_is_unknown_counts_against_the_limits() -> None:
    # Issue 20, defect 2: a timeout after the server did evict must not let a second replica go.
    api = FakeEvictionApi(answers={"r0": EvictionOutcome.ERROR})
    pods = [pod(f"r{i}", owner_name="same", node_name="us-a" if i % 2 else "us-b") for i in range(3)]
    results = evict_all(pods, config(max_evictions_per_node=10, max_evictions_per_workload=1), api)
    assert results == ["error", "limit-workload", "limit-workload"]
    assert len(api.calls) == 1


def test_known_refusals_do_not_use_up_a_limit() -> None:
    # A PDB refusal (429), a gone pod (404) and RBAC (403) evicted nothing: the next replica may go.
    for refusal in (EvictionOutcome.BLOCKED, EvictionOutcome.GONE, EvictionOutcome.FORBIDDEN):
        api = FakeEvictionApi(answers={"r0": refusal})
        pods = [pod(f"r{i}", owner_name="same", node_name="us-a" if i % 2 else "us-b") for i in range(2)]
        results = evict_all(pods, config(max_evictions_per_node=10, max_evictions_per_workload=1), api)
        assert results == [str(refusal), "evicted"]


@pytest.mark.parametrize(
    ("owner", "restart_policy", "expected"),
    [
        (("apps/v1", "ReplicaSet", "web-abc"), None, False),
        (("apps/v1", "ReplicaSet", "web-abc"), "Always", False),
        (("batch/v1", "Job", "train"), "Never", True),
        (("batch/v1", "Job", "train"), "OnFailure", True),
        (("argoproj.io/v1alpha1", "Workflow", "etl"), "Never", True),
        (("argoproj.io/v1alpha1", "Workflow", "etl"), "OnFailure", True),
    ],
)
def test_the_cache_knows_a_run_to_completion_pod(
    owner: tuple[str, str, str], restart_policy: str | None, expected: bool
) -> None:
    extra: dict[str, Any] = {"restartPolicy": restart_policy} if restart_policy else {}
    record = slim_pod(pod_json(owner=owner, node_name="us-a", **extra))
    assert record is not None and record.run_to_completion is expected
