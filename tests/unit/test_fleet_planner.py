"""Fleet mode's pure planning: Karmada objects as the API server sends them, parsed by the slim
readers, planned against hand-built signals. Tables for each outcome, properties for the limits."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from core.config import EcoPulseConfiguration, parse_config_text
from core.kube.caches import NamespaceInfo
from core.managed import unmanaged as never_managed
from core.model import CarbonSignal, SignalSnapshot, Subject
from fleet.planner import (
    FleetSnapshot,
    MoveStep,
    Outcome,
    Reason,
    Window,
    decision_annotation,
    explain,
    placement_patch,
    plan,
    unmanaged,
)
from fleet.records import (
    AVAILABLE_SINCE_ANNOTATION,
    MOVED_AT_ANNOTATION,
    MOVING_TO_ANNOTATION,
    AffinityTerm,
    ReplicaMode,
    slim_binding,
    slim_cluster,
    slim_deployment,
    slim_policy,
    workload_subject,
)
from tests.factories import THREE_REGIONS

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
REGIONS = ("us-east-1", "eu-west-1", "eu-north-1")
CLUSTERS = {region: f"member-{region}" for region in REGIONS}

CONFIG = (
    """\
apiVersion: ecopulse.io/v1alpha1
kind: EcoPulseConfiguration
"""
    + THREE_REGIONS
    + """\
carbon: {provider: mock, mock: {us-east-1: 450, eu-west-1: 300, eu-north-1: 30}}
economics: {horizonHours: 6, carbonPriceUsdPerTonne: 1000, maxCarbonPriceUsdPerTonne: 1000,
            migrationCostUsd: 0.001, restartDowntimeSeconds: 0, egressUsdPerGb: 0.09}
prices:
  us-east-1: {vcpuHour: 0.03, gibHour: 0.004, spotVcpuHour: 0.01, spotGibHour: 0.001}
  eu-west-1: {vcpuHour: 0.03, gibHour: 0.004, spotVcpuHour: 0.01, spotGibHour: 0.001}
  eu-north-1: {vcpuHour: 0.03, gibHour: 0.004, spotVcpuHour: 0.01, spotGibHour: 0.001}
fleet: {minNetBenefitUsd: 0.01, maxMovesPerPass: 10, maxMovesPerNamespace: 5, cooldownSeconds: 600}
"""
)


def config(extra: str = "") -> EcoPulseConfiguration:
    return parse_config_text(CONFIG + extra)


def signals(intensities: dict[str, float] | None = None) -> SignalSnapshot:
    values = intensities or {"us-east-1": 450, "eu-west-1": 300, "eu-north-1": 30}
    return SignalSnapshot(
        taken_at=NOW,
        provider="mock",
        carbon={
            region: CarbonSignal(
                region=region,
                zone="Z",
                carbon_g_per_kwh=value,
                observed_at=NOW,
                fetched_at=NOW,
                source="test",
            )
            for region, value in values.items()
        },
    )


# --- wire builders ---------------------------------------------------------------------------------


def cluster(
    name: str,
    region: str | None,
    *,
    ready: bool = True,
    via_label: bool = False,
    since: datetime = NOW - timedelta(days=1),
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    spec: dict[str, Any] = {"syncMode": "Push"}
    if region is not None and via_label:
        metadata["labels"] = {"topology.kubernetes.io/region": region}
    elif region is not None:
        spec["region"] = region
    return {
        "apiVersion": "cluster.karmada.io/v1alpha1",
        "kind": "Cluster",
        "metadata": metadata,
        "spec": spec,
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "lastTransitionTime": since.isoformat().replace("+00:00", "Z"),
                }
            ]
        },
    }


def deployment(
    name: str,
    *,
    namespace: str = "shop",
    replicas: int = 3,
    cpu: str = "2",
    memory: str = "4Gi",
    annotations: dict[str, str] | None = None,
    template_annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    claimed_by: str | None = None,
) -> dict[str, Any]:
    meta_annotations = dict(annotations or {})
    if claimed_by is not None:
        meta_annotations["propagationpolicy.karmada.io/name"] = claimed_by
        meta_annotations["propagationpolicy.karmada.io/namespace"] = namespace
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{name}",
            "labels": labels or {"app": name},
            "annotations": meta_annotations,
        },
        "spec": {
            "replicas": replicas,
            "template": {
                "metadata": {"annotations": template_annotations or {}},
                "spec": {
                    "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": memory}}}]
                },
            },
        },
    }


def policy(
    name: str,
    *,
    namespace: str = "shop",
    selects: str | None = None,
    match_labels: dict[str, str] | None = None,
    placement: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
    kind: str = "PropagationPolicy",
) -> dict[str, Any]:
    selector: dict[str, Any] = {"apiVersion": "apps/v1", "kind": "Deployment"}
    if selects is not None:
        selector["name"] = selects
    if match_labels is not None:
        selector["labelSelector"] = {"matchLabels": match_labels}
    if kind == "ClusterPropagationPolicy":
        selector["namespace"] = namespace
    metadata: dict[str, Any] = {
        "name": name,
        "uid": f"uid-{name}",
        "resourceVersion": "7",
        "annotations": annotations or {},
    }
    if kind == "PropagationPolicy":
        metadata["namespace"] = namespace
    return {
        "apiVersion": "policy.karmada.io/v1alpha1",
        "kind": kind,
        "metadata": metadata,
        "spec": {
            "resourceSelectors": [selector],
            "placement": placement or {"clusterAffinity": {"clusterNames": list(CLUSTERS.values())}},
        },
    }


def binding(name: str, clusters: dict[str, int], *, namespace: str = "shop") -> dict[str, Any]:
    return {
        "apiVersion": "work.karmada.io/v1alpha2",
        "kind": "ResourceBinding",
        "metadata": {"name": f"{name}-deployment", "namespace": namespace},
        "spec": {
            "resource": {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": namespace, "name": name},
            "clusters": [{"name": c, "replicas": n} for c, n in clusters.items()],
        },
    }


def expanded(*first: str) -> dict[str, Any]:
    """The placement a move's first step writes: the new cluster and the old, Duplicated."""
    rest = [c for c in CLUSTERS.values() if c not in first]
    terms = [list(first), *([c] for c in rest)]
    return {
        "clusterAffinities": [
            {"affinityName": f"ecopulse-{rank}", "clusterNames": names} for rank, names in enumerate(terms)
        ],
        "replicaScheduling": {"replicaSchedulingType": "Duplicated"},
    }


def snapshot(
    *,
    policies: list[dict[str, Any]],
    deployments: list[dict[str, Any]],
    bindings: list[dict[str, Any]] = (),  # type: ignore[assignment]
    clusters: list[dict[str, Any]] | None = None,
    namespaces: dict[str, NamespaceInfo] | None = None,
) -> FleetSnapshot:
    members = [slim_cluster(c) for c in (clusters or [cluster(n, r) for r, n in CLUSTERS.items()])]
    workloads = [slim_deployment(d) for d in deployments]
    slim_bindings = [slim_binding(b) for b in bindings]
    return FleetSnapshot(
        clusters={c.name: c for c in members if c is not None},
        policies=[p for p in (slim_policy(raw) for raw in policies) if p is not None],
        workloads={w.key: w for w in workloads if w is not None},
        bindings={b.resource_key: b for b in slim_bindings if b is not None},
        namespaces=namespaces or {},
    )


def only(result: Any) -> Any:
    assert len(result.decisions) == 1, result.decisions
    return result.decisions[0]


# --- records ---------------------------------------------------------------------------------------


def test_a_cluster_region_comes_from_spec_then_the_label() -> None:
    assert slim_cluster(cluster("a", "eu-west-1")).region == "eu-west-1"  # type: ignore[union-attr]
    assert slim_cluster(cluster("b", "eu-west-1", via_label=True)).region == "eu-west-1"  # type: ignore[union-attr]
    unready = slim_cluster(cluster("c", None, ready=False))
    assert unready is not None and unready.region is None and not unready.ready
    assert slim_cluster({"metadata": {}}) is None


@pytest.mark.parametrize(
    ("placement", "mode", "weights"),
    [
        ({}, ReplicaMode.DUPLICATED, ()),
        ({"replicaScheduling": {"replicaSchedulingType": "Duplicated"}}, ReplicaMode.DUPLICATED, ()),
        (
            {
                "replicaScheduling": {
                    "replicaSchedulingType": "Divided",
                    "replicaDivisionPreference": "Aggregated",
                }
            },
            ReplicaMode.AGGREGATED,
            (),
        ),
        (
            {
                "replicaScheduling": {
                    "replicaSchedulingType": "Divided",
                    "replicaDivisionPreference": "Weighted",
                    "weightPreference": {
                        "staticWeightList": [{"targetCluster": {"clusterNames": ["a", "b"]}, "weight": 2}]
                    },
                }
            },
            ReplicaMode.STATIC_WEIGHTED,
            (("a", 2), ("b", 2)),
        ),
        (
            {
                "replicaScheduling": {
                    "replicaSchedulingType": "Divided",
                    "replicaDivisionPreference": "Weighted",
                    "weightPreference": {"dynamicWeight": "AvailableReplicas"},
                }
            },
            ReplicaMode.DYNAMIC_WEIGHTED,
            (),
        ),
    ],
)
def test_replica_scheduling_is_read_as_karmada_defaults_it(
    placement: dict[str, Any], mode: ReplicaMode, weights: tuple[tuple[str, int], ...]
) -> None:
    record = slim_policy(policy("p", selects="web", placement=placement))
    assert record is not None
    assert record.placement.replica_mode is mode
    assert record.placement.static_weights == weights


def test_a_list_item_without_kind_is_named_by_its_scope() -> None:
    raw = policy("p", selects="web")
    del raw["kind"]
    assert slim_policy(raw).kind == "PropagationPolicy"  # type: ignore[union-attr]
    raw = policy("p", selects="web", kind="ClusterPropagationPolicy")
    del raw["kind"]
    assert slim_policy(raw).kind == "ClusterPropagationPolicy"  # type: ignore[union-attr]


def test_odd_values_never_raise() -> None:
    assert slim_policy({"metadata": {"name": "p", "namespace": "n"}, "spec": {"resourceSelectors": [1, {}]}})
    odd = slim_deployment({"metadata": {"name": "d", "namespace": "n"}, "spec": {"replicas": "many"}})
    assert odd is not None and odd.replicas == 1
    assert slim_binding({"spec": {"resource": {"kind": "Deployment"}}}) is None


# --- outcomes --------------------------------------------------------------------------------------


def test_a_new_workload_is_placed_in_the_greenest_cluster_with_failover_in_rank_order() -> None:
    result = plan(
        snapshot(policies=[policy("web", selects="web")], deployments=[deployment("web")]),
        signals=signals(),
        config=config(),
        now=NOW,
    )
    decision = only(result)
    assert (decision.outcome, decision.reason) == (Outcome.PLACE, Reason.NEW_WORKLOAD)
    assert decision.ranked_clusters == ("member-eu-north-1", "member-eu-west-1", "member-us-east-1")
    assert decision.desired.cluster_affinities == (
        AffinityTerm(name="ecopulse-0", cluster_names=("member-eu-north-1",)),
        AffinityTerm(name="ecopulse-1", cluster_names=("member-eu-west-1",)),
        AffinityTerm(name="ecopulse-2", cluster_names=("member-us-east-1",)),
    )
    assert decision.writes_placement
    patch = placement_patch(decision.desired, decision.policy.placement)
    assert patch["clusterAffinity"] is None  # Karmada allows only one of the two forms
    affinities = patch["clusterAffinities"]
    assert isinstance(affinities, list)
    assert affinities[0] == {
        "affinityName": "ecopulse-0",
        "clusterNames": ["member-eu-north-1"],
    }


def test_replicas_in_the_best_cluster_are_kept_and_nothing_is_written() -> None:
    result = plan(
        snapshot(
            policies=[policy("web", selects="web")],
            deployments=[deployment("web")],
            bindings=[binding("web", {"member-eu-north-1": 3})],
        ),
        signals=signals(),
        config=config(),
        now=NOW,
    )
    decision = only(result)
    assert (decision.outcome, decision.reason) == (Outcome.KEEP, Reason.BEST_CLUSTER)
    assert not decision.writes_placement


def test_after_the_grid_flips_the_replicas_move_when_it_pays() -> None:
    flipped = signals({"us-east-1": 450, "eu-west-1": 20, "eu-north-1": 500})
    result = plan(
        snapshot(
            policies=[policy("web", selects="web")],
            deployments=[deployment("web")],
            bindings=[binding("web", {"member-eu-north-1": 3})],
        ),
        signals=flipped,
        config=config(),
        now=NOW,
    )
    decision = only(result)
    assert (decision.outcome, decision.reason) == (Outcome.MOVE, Reason.PAYS)
    assert decision.source_clusters == ("member-eu-north-1",)
    assert decision.target_cluster == "member-eu-west-1"
    assert decision.benefit.net_usd > 0.01
    assert decision.benefit.migration_cost_usd == pytest.approx(3 * 0.001)
    assert decision.writes_placement and not decision.reschedule
    assert "member-eu-north-1 -> member-eu-west-1" in explain(decision)
    annotation = json.loads(decision_annotation(decision))
    assert annotation["decision"] == "move" and annotation["to"] == "member-eu-west-1"
    # A move names where its prices came from (not their age: the annotation stays stable).
    assert annotation["prices"] == "config"
    assert json.loads(decision_annotation(decision, prices="azure"))["prices"] == "azure"


def test_an_egress_heavy_workload_with_its_data_where_it_runs_stays() -> None:
    heavy = deployment(
        "etl",
        template_annotations={"ecopulse.io/data-region": "us-east-1", "ecopulse.io/egress-gb-per-hour": "50"},
    )
    result = plan(
        snapshot(
            policies=[policy("etl", selects="etl")],
            deployments=[heavy],
            bindings=[binding("etl", {"member-us-east-1": 3})],
        ),
        signals=signals(),
        config=config(),
        now=NOW,
    )
    decision = only(result)
    # Ranked with its egress, the data region itself is the best place, green or not: it stays.
    assert (decision.outcome, decision.reason) == (Outcome.KEEP, Reason.BEST_CLUSTER)
    assert decision.ranked_clusters[0] == "member-us-east-1"
    assert not decision.writes_placement


def test_a_move_that_does_not_pay_is_refused_with_its_figures() -> None:
    result = plan(
        snapshot(
            policies=[policy("tiny", selects="tiny")],
            deployments=[deployment("tiny", replicas=1, cpu="10m", memory="16Mi")],
            bindings=[binding("tiny", {"member-us-east-1": 1})],
        ),
        signals=signals(),
        config=config(),
        now=NOW,
    )
    decision = only(result)
    assert (decision.outcome, decision.reason) == (Outcome.REFUSE, Reason.BELOW_MIN_BENEFIT)
    assert decision.benefit is not None and decision.benefit.net_usd < 0.01
    assert not decision.writes_placement
    assert "netBenefitUsd" not in json.loads(decision_annotation(decision))  # stable: no figures


@pytest.mark.parametrize(
    ("namespaces", "policy_annotations", "template_annotations", "reason"),
    [
        ({"shop": NamespaceInfo(opted_out=True)}, {}, {}, Reason.NAMESPACE_OPTED_OUT),
        (
            {"shop": NamespaceInfo(hint_annotations={"ecopulse.io/opt-out": "true"})},
            {},
            {},
            Reason.OPTED_OUT,
        ),
        ({}, {"ecopulse.io/opt-out": "true"}, {}, Reason.OPTED_OUT),
        ({}, {}, {"ecopulse.io/opt-out": "True"}, Reason.OPTED_OUT),
    ],
)
def test_opted_out_policies_are_never_touched(
    namespaces: dict[str, NamespaceInfo],
    policy_annotations: dict[str, str],
    template_annotations: dict[str, str],
    reason: Reason,
) -> None:
    result = plan(
        snapshot(
            policies=[policy("web", selects="web", annotations=policy_annotations)],
            deployments=[deployment("web", template_annotations=template_annotations)],
            bindings=[binding("web", {"member-us-east-1": 3})],
            namespaces=namespaces,
        ),
        signals=signals(),
        config=config(),
        now=NOW,
    )
    decision = only(result)
    assert (decision.outcome, decision.reason) == (Outcome.REFUSE, reason)
    assert decision.desired is None and not decision.writes_placement


@pytest.mark.parametrize("space", ["kube-system", "eco-pulse"])
def test_system_and_own_namespaces_are_never_touched(space: str) -> None:
    result = plan(
        snapshot(
            policies=[policy("web", selects="web", namespace=space)],
            deployments=[deployment("web", namespace=space)],
        ),
        signals=signals(),
        config=config(),
        now=NOW,
        own_namespace="eco-pulse",
    )
    assert only(result).reason is Reason.SYSTEM_NAMESPACE  # core.managed's name for it


def test_a_cluster_policy_reaching_an_opted_out_namespace_is_left_alone() -> None:
    result = plan(
        snapshot(
            policies=[
                policy("all", kind="ClusterPropagationPolicy", namespace="shop", match_labels={"app": "web"})
            ],
            deployments=[deployment("web")],
            namespaces={"shop": NamespaceInfo(opted_out=True)},
        ),
        signals=signals(),
        config=config(),
        now=NOW,
    )
    assert only(result).reason is Reason.NAMESPACE_OPTED_OUT


def test_a_policy_without_deployments_is_refused() -> None:
    result = plan(
        snapshot(policies=[policy("cm", selects="nothing")], deployments=[deployment("web")]),
        signals=signals(),
        config=config(),
        now=NOW,
    )
    assert only(result).reason is Reason.NO_WORKLOAD


def test_no_signal_for_the_baseline_means_do_nothing() -> None:
    result = plan(
        snapshot(policies=[policy("web", selects="web")], deployments=[deployment("web")]),
        signals=signals({"eu-north-1": 30}),
        config=config(),
        now=NOW,
    )
    assert only(result).reason is Reason.NO_SIGNAL


def test_unready_clusters_and_unknown_regions_are_not_ranked() -> None:
    members = [
        cluster("member-eu-north-1", "eu-north-1", ready=False),
        cluster("member-eu-west-1", "eu-west-1"),
        cluster("member-mars", "mars-1"),
    ]
    result = plan(
        snapshot(policies=[policy("web", selects="web")], deployments=[deployment("web")], clusters=members),
        signals=signals(),
        config=config(),
        now=NOW,
    )
    assert only(result).ranked_clusters == ("member-eu-west-1",)
    none_left = plan(
        snapshot(
            policies=[policy("web", selects="web")],
            deployments=[deployment("web")],
            clusters=[cluster("member-mars", "mars-1")],
        ),
        signals=signals(),
        config=config(),
        now=NOW,
    )
    assert only(none_left).reason is Reason.NO_ELIGIBLE_CLUSTER


def test_allowed_regions_on_the_policy_restrict_the_clusters() -> None:
    result = plan(
        snapshot(
            policies=[
                policy(
                    "web", selects="web", annotations={"ecopulse.io/allowed-regions": "us-east-1,eu-west-1"}
                )
            ],
            deployments=[deployment("web")],
        ),
        signals=signals(),
        config=config(),
        now=NOW,
    )
    assert only(result).ranked_clusters == ("member-eu-west-1", "member-us-east-1")


def test_a_move_within_the_cooldown_is_refused() -> None:
    recent = (NOW - timedelta(seconds=60)).isoformat()
    result = plan(
        snapshot(
            policies=[policy("web", selects="web", annotations={MOVED_AT_ANNOTATION: recent})],
            deployments=[deployment("web")],
            bindings=[binding("web", {"member-us-east-1": 3})],
        ),
        signals=signals(),
        config=config(),
        now=NOW,
    )
    assert only(result).reason is Reason.COOLDOWN


def test_duplicated_everywhere_collapses_to_the_best_cluster() -> None:
    result = plan(
        snapshot(
            policies=[policy("web", selects="web")],
            deployments=[deployment("web")],
            bindings=[binding("web", dict.fromkeys(CLUSTERS.values(), 3))],
        ),
        signals=signals(),
        config=config(),
        now=NOW,
    )
    decision = only(result)
    assert decision.outcome is Outcome.MOVE
    assert decision.benefit.migration_cost_usd == 0  # nothing starts anywhere new: copies stop
    assert decision.benefit.price_savings_usd > 0


def test_claimed_workloads_belong_to_the_policy_karmada_bound_them_to() -> None:
    result = plan(
        snapshot(
            policies=[policy("a", match_labels={"app": "web"}), policy("b", match_labels={"app": "web"})],
            deployments=[deployment("web", claimed_by="b")],
        ),
        signals=signals(),
        config=config(),
        now=NOW,
    )
    by_name = {d.policy.name: d for d in result.decisions}
    assert by_name["b"].workloads == ("shop/web",)
    assert by_name["a"].reason is Reason.NO_WORKLOAD


def test_the_placement_already_written_but_not_followed_asks_for_a_fresh_schedule() -> None:
    ours = {
        "clusterAffinities": [
            {"affinityName": "ecopulse-0", "clusterNames": ["member-eu-north-1"]},
            {"affinityName": "ecopulse-1", "clusterNames": ["member-eu-west-1"]},
            {"affinityName": "ecopulse-2", "clusterNames": ["member-us-east-1"]},
        ]
    }
    result = plan(
        snapshot(
            policies=[policy("web", selects="web", placement=ours)],
            deployments=[deployment("web")],
            bindings=[binding("web", {"member-us-east-1": 3})],  # failed over, stuck on ecopulse-2
        ),
        signals=signals(),
        config=config(),
        now=NOW,
    )
    decision = only(result)
    assert decision.outcome is Outcome.MOVE and decision.reschedule and not decision.writes_placement


def test_static_weights_follow_the_ranking() -> None:
    weighted = {
        "replicaScheduling": {
            "replicaSchedulingType": "Divided",
            "replicaDivisionPreference": "Weighted",
            "weightPreference": {"staticWeightList": []},
        }
    }
    result = plan(
        snapshot(
            policies=[policy("web", selects="web", placement=weighted)],
            deployments=[deployment("web", replicas=10)],
        ),
        signals=signals(),
        config=config("placement: {maxPreferredRegions: 2}\n"),
        now=NOW,
    )
    decision = only(result)
    assert decision.desired.static_weights == (("member-eu-north-1", 100), ("member-eu-west-1", 1))
    assert decision.desired.cluster_affinities[0] == AffinityTerm(
        name="ecopulse-0", cluster_names=("member-eu-north-1", "member-eu-west-1")
    )
    assert decision.desired.cluster_affinities[1:] == (
        AffinityTerm(name="ecopulse-1", cluster_names=("member-us-east-1",)),
    )
    patch = placement_patch(decision.desired, decision.policy.placement)
    assert patch["replicaScheduling"] == {
        "weightPreference": {
            "staticWeightList": [
                {"targetCluster": {"clusterNames": ["member-eu-north-1"]}, "weight": 100},
                {"targetCluster": {"clusterNames": ["member-eu-west-1"]}, "weight": 1},
            ]
        }
    }


def test_several_workloads_of_one_policy_are_ranked_together() -> None:
    pinned = deployment("db", template_annotations={"ecopulse.io/allowed-regions": "eu-west-1,us-east-1"})
    result = plan(
        snapshot(
            policies=[policy("app", match_labels={"tier": "x"})],
            deployments=[
                deployment("web", labels={"tier": "x"}),
                {**pinned, "metadata": {**pinned["metadata"], "labels": {"tier": "x"}}},
            ],
        ),
        signals=signals(),
        config=config(),
        now=NOW,
    )
    decision = only(result)
    assert decision.workloads == ("shop/db", "shop/web")
    assert decision.ranked_clusters == ("member-eu-west-1", "member-us-east-1")  # eligible for both


# --- limits ----------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    per_namespace=st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=4),
    max_pass=st.integers(min_value=0, max_value=8),
    max_namespace=st.integers(min_value=0, max_value=4),
)
def test_moves_never_exceed_the_limits_and_the_best_go_first(
    per_namespace: list[int], max_pass: int, max_namespace: int
) -> None:
    policies, deployments, bindings = [], [], []
    for index, count in enumerate(per_namespace):
        space = f"ns{index}"
        for j in range(count):
            name = f"w{j}"
            # Bigger workloads gain more from moving: the limits must keep those.
            policies.append(policy(name, selects=name, namespace=space))
            deployments.append(deployment(name, namespace=space, replicas=j + 1))
            bindings.append(binding(name, {"member-us-east-1": j + 1}, namespace=space))
    result = plan(
        snapshot(policies=policies, deployments=deployments, bindings=bindings),
        signals=signals(),
        config=parse_config_text(
            CONFIG.replace("maxMovesPerPass: 10", f"maxMovesPerPass: {max_pass}").replace(
                "maxMovesPerNamespace: 5", f"maxMovesPerNamespace: {max_namespace}"
            )
        ),
        now=NOW,
    )
    moves = [d for d in result.decisions if d.outcome is Outcome.MOVE]
    limited = [d for d in result.decisions if d.reason in (Reason.LIMIT_PASS, Reason.LIMIT_NAMESPACE)]
    assert len(moves) <= max_pass
    for index in range(len(per_namespace)):
        assert sum(1 for d in moves if d.policy.namespace == f"ns{index}") <= max_namespace
    assert len(moves) + len(limited) == sum(per_namespace)
    assert len(result.decisions) == sum(per_namespace)
    passed_over = [d for d in limited if d.reason is Reason.LIMIT_PASS]
    if moves and passed_over:
        # The pass limit keeps the moves that pay most.
        kept = [d.benefit.net_usd for d in moves if d.benefit is not None]
        assert min(kept) >= max(d.benefit.net_usd for d in passed_over if d.benefit is not None)


def test_the_opt_out_label_on_the_deployment_is_honoured_as_in_one_cluster() -> None:
    labelled = deployment("web", labels={"app": "web", "ecopulse.io/opt-out": "true"})
    result = plan(
        snapshot(policies=[policy("web", selects="web")], deployments=[labelled]),
        signals=signals(),
        config=config(),
        now=NOW,
    )
    assert only(result).reason is Reason.OPTED_OUT


def test_a_move_starts_with_both_clusters_duplicated_and_settles_when_the_new_is_available() -> None:
    flipped = signals({"us-east-1": 450, "eu-west-1": 20, "eu-north-1": 500})
    first = only(
        plan(
            snapshot(
                policies=[policy("web", selects="web")],
                deployments=[deployment("web")],
                bindings=[binding("web", {"member-eu-north-1": 3})],
            ),
            signals=flipped,
            config=config(),
            now=NOW,
        )
    )
    assert first.step is MoveStep.EXPAND and first.desired.duplicated
    assert first.desired.cluster_affinities[0].cluster_names == ("member-eu-west-1", "member-eu-north-1")

    def pass_with(available: int) -> Any:
        since = (NOW - timedelta(seconds=61)).isoformat()  # the stability window (60 s) is over
        moving = policy(
            "web",
            selects="web",
            annotations={MOVING_TO_ANNOTATION: "member-eu-west-1", AVAILABLE_SINCE_ANNOTATION: since},
            placement=expanded("member-eu-west-1", "member-eu-north-1"),
        )
        both = binding("web", {"member-eu-west-1": 3, "member-eu-north-1": 3})
        both["status"] = {
            "aggregatedStatus": [
                {"clusterName": "member-eu-west-1", "status": {"availableReplicas": available}},
                {"clusterName": "member-eu-north-1", "status": {"availableReplicas": 3}},
            ]
        }
        return only(
            plan(
                snapshot(policies=[moving], deployments=[deployment("web")], bindings=[both]),
                signals=flipped,
                config=config(),
                now=NOW,
            )
        )

    waiting = pass_with(2)
    assert (waiting.outcome, waiting.reason) == (Outcome.KEEP, Reason.MOVE_IN_PROGRESS)
    assert not waiting.writes_placement
    settled = pass_with(3)
    assert (settled.outcome, settled.reason, settled.step) == (
        Outcome.MOVE,
        Reason.NEW_CLUSTER_AVAILABLE,
        MoveStep.SETTLE,
    )
    assert settled.desired.cluster_affinities[0].cluster_names == ("member-eu-west-1",)
    assert not settled.desired.duplicated


def test_collapsing_onto_a_cluster_that_already_runs_every_replica_is_one_step() -> None:
    decision = only(
        plan(
            snapshot(
                policies=[policy("web", selects="web")],
                deployments=[deployment("web")],
                bindings=[binding("web", dict.fromkeys(CLUSTERS.values(), 3))],
            ),
            signals=signals(),
            config=config(),
            now=NOW,
        )
    )
    assert decision.step is MoveStep.SETTLE and not decision.desired.duplicated


@settings(max_examples=30, deadline=None)
@given(
    replicas=st.integers(min_value=1, max_value=20),
    source=st.sampled_from(sorted(CLUSTERS.values())),
    cpu_millis=st.integers(min_value=10, max_value=8000),
)
def test_the_per_replica_shortcut_prices_a_move_as_the_full_sum_does(
    replicas: int, source: str, cpu_millis: int
) -> None:
    flipped = signals({"us-east-1": 450, "eu-west-1": 20, "eu-north-1": 500})

    def benefit(clusters: dict[str, int]) -> Any:
        decision = only(
            plan(
                snapshot(
                    policies=[policy("web", selects="web")],
                    deployments=[deployment("web", replicas=replicas, cpu=f"{cpu_millis}m")],
                    bindings=[binding("web", clusters)],
                ),
                signals=flipped,
                config=config(),
                now=NOW,
            )
        )
        return decision.benefit

    other = next(c for c in CLUSTERS.values() if c != source)
    shortcut = benefit({source: replicas})  # one cluster, all replicas: priced per replica, scaled
    full = benefit({source: replicas, other: 0})  # the same replicas, through the general sum
    for part in (
        "price_savings_usd",
        "carbon_value_usd",
        "migration_cost_usd",
        "egress_cost_usd",
        "avoided_grams",
    ):
        assert getattr(shortcut, part) == pytest.approx(getattr(full, part), rel=1e-9, abs=1e-12), part


def test_a_move_whose_new_replicas_never_come_up_is_rolled_back_after_the_timeout() -> None:
    flipped = signals({"us-east-1": 450, "eu-west-1": 20, "eu-north-1": 500})

    def pass_after(seconds: float) -> Any:
        started = (NOW - timedelta(seconds=seconds)).isoformat()
        moving = policy(
            "web",
            selects="web",
            annotations={MOVING_TO_ANNOTATION: "member-eu-west-1", MOVED_AT_ANNOTATION: started},
            placement=expanded("member-eu-west-1", "member-eu-north-1"),
        )
        both = binding("web", {"member-eu-west-1": 3, "member-eu-north-1": 3})
        both["status"] = {
            "aggregatedStatus": [
                {"clusterName": "member-eu-west-1", "status": {"availableReplicas": 0}},
                {"clusterName": "member-eu-north-1", "status": {"availableReplicas": 3}},
            ]
        }
        return only(
            plan(
                snapshot(policies=[moving], deployments=[deployment("web")], bindings=[both]),
                signals=flipped,
                config=parse_config_text(
                    CONFIG.replace("cooldownSeconds: 600}", "cooldownSeconds: 600, moveTimeoutSeconds: 300}")
                ),
                now=NOW,
            )
        )

    assert pass_after(200).reason is Reason.MOVE_IN_PROGRESS
    rolled_back = pass_after(400)
    assert (rolled_back.outcome, rolled_back.reason, rolled_back.step) == (
        Outcome.MOVE,
        Reason.MOVE_TIMED_OUT,
        MoveStep.SETTLE,
    )
    assert rolled_back.desired.cluster_affinities[0].cluster_names == ("member-eu-north-1",)


# --- faults: a member that fails mid-move or under its replicas (issue 25, drill 3) ------------------

FLIPPED = {"us-east-1": 450.0, "eu-west-1": 20.0, "eu-north-1": 500.0}  # west greenest, north dirtiest
WEST, NORTH, EAST = CLUSTERS["eu-west-1"], CLUSTERS["eu-north-1"], CLUSTERS["us-east-1"]


def moving_pass(
    *,
    available_in_west: int,
    west_ready: bool = True,
    west_ready_since: datetime = NOW - timedelta(days=1),
    available_since: datetime | None = None,
) -> Any:
    """A move north -> west whose first step is written: both copies Duplicated, the old one serving."""
    annotations = {MOVING_TO_ANNOTATION: WEST, MOVED_AT_ANNOTATION: (NOW - timedelta(seconds=30)).isoformat()}
    if available_since is not None:
        annotations[AVAILABLE_SINCE_ANNOTATION] = available_since.isoformat()
    both = binding("web", {WEST: 3, NORTH: 3})
    both["status"] = {
        "aggregatedStatus": [
            {"clusterName": WEST, "status": {"availableReplicas": available_in_west}},
            {"clusterName": NORTH, "status": {"availableReplicas": 3}},
        ]
    }
    members = [
        cluster(EAST, "us-east-1"),
        cluster(NORTH, "eu-north-1"),
        cluster(WEST, "eu-west-1", ready=west_ready, since=west_ready_since),
    ]
    return only(
        plan(
            snapshot(
                policies=[
                    policy("web", selects="web", annotations=annotations, placement=expanded(WEST, NORTH))
                ],
                deployments=[deployment("web")],
                bindings=[both],
                clusters=members,
            ),
            signals=signals(FLIPPED),
            config=config(),
            now=NOW,
        )
    )


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        # First seen all available: the window opens (written on the policy), nothing settles.
        ({"available_in_west": 3}, (Outcome.KEEP, Reason.MOVE_IN_PROGRESS, Window.OPEN, None)),
        # Within the window: wait.
        (
            {"available_in_west": 3, "available_since": NOW - timedelta(seconds=59)},
            (Outcome.KEEP, Reason.MOVE_IN_PROGRESS, None, None),
        ),
        # The window is over and the member stayed Ready since before it opened: settle there.
        (
            {"available_in_west": 3, "available_since": NOW - timedelta(seconds=60)},
            (Outcome.MOVE, Reason.NEW_CLUSTER_AVAILABLE, None, WEST),
        ),
        # The member left Ready and came back inside the window: its status then was no evidence.
        (
            {
                "available_in_west": 3,
                "available_since": NOW - timedelta(seconds=120),
                "west_ready_since": NOW - timedelta(seconds=10),
            },
            (Outcome.KEEP, Reason.MOVE_IN_PROGRESS, Window.OPEN, None),
        ),
        # The copy is no longer all available: the window closes, the move waits.
        (
            {"available_in_west": 2, "available_since": NOW - timedelta(seconds=120)},
            (Outcome.KEEP, Reason.MOVE_IN_PROGRESS, Window.CLOSE, None),
        ),
        # The new member is NotReady: the status it last reported ("all available") is no evidence;
        # the move goes back where the old copy still serves, at once.
        (
            {"available_in_west": 3, "west_ready": False, "available_since": NOW - timedelta(seconds=120)},
            (Outcome.MOVE, Reason.MEMBER_NOT_READY, Window.CLOSE, NORTH),
        ),
        ({"available_in_west": 3, "west_ready": False}, (Outcome.MOVE, Reason.MEMBER_NOT_READY, None, NORTH)),
    ],
)
def test_a_move_settles_only_on_fresh_evidence_from_a_ready_member(
    case: dict[str, Any], expected: tuple[Outcome, Reason, Window | None, str | None]
) -> None:
    decision = moving_pass(**case)
    outcome, reason, window, settled_in = expected
    assert (decision.outcome, decision.reason) == (outcome, reason)
    if outcome is Outcome.MOVE:
        assert decision.step is MoveStep.SETTLE
        assert decision.target_cluster == settled_in
        assert decision.desired.cluster_affinities[0].cluster_names == (settled_in,)
        assert not decision.desired.duplicated
    else:
        assert decision.window is window
        assert not decision.writes_placement


def stranded_pass(
    *, north_ready: bool, moved_ago_seconds: float = 30, binding_clusters: dict[str, int] | None = None
) -> Any:
    """The replicas run in the greenest member, north: moving them out never pays on carbon."""
    members = [
        cluster(EAST, "us-east-1"),
        cluster(WEST, "eu-west-1"),
        cluster(NORTH, "eu-north-1", ready=north_ready),
    ]
    moved_at = (NOW - timedelta(seconds=moved_ago_seconds)).isoformat()
    return only(
        plan(
            snapshot(
                policies=[policy("web", selects="web", annotations={MOVED_AT_ANNOTATION: moved_at})],
                deployments=[deployment("web")],
                bindings=[binding("web", binding_clusters or {NORTH: 3})],
                clusters=members,
            ),
            signals=signals(),  # north at 30 g/kWh, the greenest by far
            config=config(),
            now=NOW,
        )
    )


def test_replicas_in_a_not_ready_member_move_make_before_break_whatever_the_benefit() -> None:
    healthy = stranded_pass(north_ready=True, moved_ago_seconds=3600)
    assert (healthy.outcome, healthy.reason) == (Outcome.KEEP, Reason.BEST_CLUSTER)

    stranded = stranded_pass(north_ready=False)  # and within the cooldown
    assert (stranded.outcome, stranded.reason, stranded.step) == (
        Outcome.MOVE,
        Reason.MEMBER_NOT_READY,
        MoveStep.EXPAND,
    )
    assert stranded.benefit is not None and stranded.benefit.net_usd < 0  # carbon says stay: it goes
    assert stranded.target_cluster == WEST  # the best Ready member
    # Make before break: the NotReady member stays in the first term until the new copy is available.
    assert stranded.desired.duplicated
    assert stranded.desired.cluster_affinities[0].cluster_names == (WEST, NORTH)
    assert NORTH not in stranded.ranked_clusters


def test_where_karmada_failover_acted_first_or_the_member_is_back_the_move_is_decided_afresh() -> None:
    # Karmada's failover rescheduled the replicas to west: nothing stranded, the usual rule (cooldown).
    failed_over = stranded_pass(north_ready=False, binding_clusters={WEST: 3})
    assert (failed_over.outcome, failed_over.reason) == (Outcome.KEEP, Reason.BEST_CLUSTER)
    # North is back, the replicas serve in west: moving back is decided on its own merits.
    back = stranded_pass(north_ready=True, binding_clusters={WEST: 3}, moved_ago_seconds=3600)
    assert (back.outcome, back.reason, back.target_cluster) == (Outcome.MOVE, Reason.PAYS, NORTH)
    cooling = stranded_pass(north_ready=True, binding_clusters={WEST: 3})
    assert cooling.reason is Reason.COOLDOWN


def test_stranded_replicas_go_first_within_the_limits() -> None:
    members = [
        cluster(EAST, "us-east-1"),
        cluster(WEST, "eu-west-1"),
        cluster(NORTH, "eu-north-1", ready=False),
    ]
    result = plan(
        snapshot(
            policies=[policy("pays", selects="pays"), policy("stranded", selects="stranded")],
            deployments=[deployment("pays", replicas=20), deployment("stranded")],
            bindings=[binding("pays", {EAST: 20}), binding("stranded", {NORTH: 3})],
            clusters=members,
        ),
        signals=signals(),
        config=parse_config_text(CONFIG.replace("maxMovesPerPass: 10", "maxMovesPerPass: 1")),
        now=NOW,
    )
    by_name = {d.policy.name: d.reason for d in result.decisions}
    assert by_name == {"stranded": Reason.MEMBER_NOT_READY, "pays": Reason.LIMIT_PASS}


def test_a_policy_propagating_a_job_is_never_rewritten() -> None:
    """Karmada deletes a member's copy when a placement drops it: a started Job would lose its run."""
    raw = policy("batch", selects="web")
    raw["spec"]["resourceSelectors"].append({"apiVersion": "batch/v1", "kind": "Job", "name": "train"})
    for north_ready in (True, False):
        members = [
            cluster(EAST, "us-east-1"),
            cluster(WEST, "eu-west-1"),
            cluster(NORTH, "eu-north-1", ready=north_ready),
        ]
        decision = only(
            plan(
                snapshot(
                    policies=[raw],
                    deployments=[deployment("web")],
                    bindings=[binding("web", {EAST: 3} if north_ready else {NORTH: 3})],
                    clusters=members,
                ),
                signals=signals(),
                config=config(),
                now=NOW,
            )
        )
        assert (decision.outcome, decision.reason) == (Outcome.REFUSE, Reason.RUNS_JOBS)
        assert not decision.writes_placement


def test_a_cluster_policy_is_counted_in_each_namespace_it_moves() -> None:
    spread = policy("spread", match_labels={"app": "web"}, kind="ClusterPropagationPolicy")
    spread["spec"]["resourceSelectors"] = [
        {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": space, "name": "web"}
        for space in ("a", "b")
    ]
    own = policy("own", selects="web", namespace="b")
    own_web = deployment("web", namespace="b")
    result = plan(
        snapshot(
            policies=[spread, own],
            deployments=[
                deployment("web", namespace="a", replicas=30),
                own_web,
                deployment("web2", namespace="b"),
            ],
            bindings=[binding("web", {EAST: 30}, namespace="a"), binding("web", {EAST: 3}, namespace="b")],
        ),
        signals=signals(),
        config=parse_config_text(CONFIG.replace("maxMovesPerNamespace: 5", "maxMovesPerNamespace: 1")),
        now=NOW,
    )
    by_name = {d.policy.name: d.reason for d in result.decisions}
    # The cluster policy moves workloads in a and b: b's one move is used up by it.
    assert by_name["spread"] is Reason.PAYS
    assert by_name["own"] is Reason.LIMIT_NAMESPACE


def test_a_placement_edited_mid_move_stands_and_the_move_is_dropped() -> None:
    """A user's edit between the two steps won (our writes are conditional): it is never overwritten."""
    annotations = {MOVING_TO_ANNOTATION: WEST, MOVED_AT_ANNOTATION: (NOW - timedelta(seconds=30)).isoformat()}
    pinned = {"clusterAffinities": [{"affinityName": "pinned", "clusterNames": [NORTH]}]}
    ours_without_target = expanded(NORTH, EAST)
    for placement in (pinned, ours_without_target):
        both = binding("web", {WEST: 3, NORTH: 3})
        both["status"] = {
            "aggregatedStatus": [
                {"clusterName": c, "status": {"availableReplicas": 3}} for c in (WEST, NORTH)
            ]
        }
        decision = only(
            plan(
                snapshot(
                    policies=[policy("web", selects="web", annotations=annotations, placement=placement)],
                    deployments=[deployment("web")],
                    bindings=[both],
                ),
                signals=signals(FLIPPED),
                config=config(),
                now=NOW + timedelta(hours=1),  # past the timeout and the window: neither applies
            )
        )
        assert (decision.outcome, decision.reason, decision.abandon) == (
            Outcome.KEEP,
            Reason.PLACEMENT_EDITED,
            True,
        )
        assert not decision.writes_placement


@settings(max_examples=60, deadline=None)
@given(
    available=st.integers(min_value=0, max_value=4),
    ready=st.booleans(),
    window_age=st.one_of(st.none(), st.integers(min_value=0, max_value=300)),
    ready_age=st.integers(min_value=0, max_value=300),
)
def test_a_move_never_settles_in_its_new_member_without_the_evidence(
    available: int, ready: bool, window_age: int | None, ready_age: int
) -> None:
    since = None if window_age is None else NOW - timedelta(seconds=window_age)
    decision = moving_pass(
        available_in_west=available,
        west_ready=ready,
        west_ready_since=NOW - timedelta(seconds=ready_age),
        available_since=since,
    )
    if decision.outcome is Outcome.MOVE and decision.target_cluster == WEST:
        assert ready and available >= 3
        assert window_age is not None and window_age >= 60 and ready_age >= window_age
    if not ready:  # never waits on a NotReady member while the old copy can serve
        assert (decision.outcome, decision.reason, decision.target_cluster) == (
            Outcome.MOVE,
            Reason.MEMBER_NOT_READY,
            NORTH,
        )


OPT_OUT_VALUES = st.sampled_from([None, "true", "false", "True"])


@settings(max_examples=200, deadline=None)
@given(
    cluster_wide=st.booleans(),
    policy_opt_out=OPT_OUT_VALUES,
    spaces=st.dictionaries(
        st.sampled_from(["shop", "ml", "kube-system"]),
        st.builds(
            lambda out, hint: NamespaceInfo(
                opted_out=out, hint_annotations={"ecopulse.io/opt-out": hint} if hint else {}
            ),
            st.booleans(),
            OPT_OUT_VALUES,
        ),
    ),
    workloads=st.lists(
        st.tuples(st.sampled_from(["shop", "ml", "kube-system"]), OPT_OUT_VALUES, OPT_OUT_VALUES), max_size=5
    ),
)
# The workload opting out by its own annotation, or label, behind a plain one of the same namespace.
@example(
    cluster_wide=False,
    policy_opt_out=None,
    spaces={},
    workloads=[("shop", None, None), ("shop", "true", None)],
)
@example(
    cluster_wide=True, policy_opt_out=None, spaces={}, workloads=[("ml", None, None), ("ml", None, "true")]
)
def test_a_policy_is_unmanaged_exactly_when_one_of_its_subjects_is(
    cluster_wide: bool,
    policy_opt_out: str | None,
    spaces: dict[str, NamespaceInfo],
    workloads: list[tuple[str, str | None, str | None]],
) -> None:
    """fleet.planner.unmanaged asks the plain workloads once per namespace: the same answer as
    asking core.managed of the policy and of every workload, in order."""
    records = [
        slim_deployment(
            deployment(
                f"w{i}",
                namespace=space,
                annotations={"ecopulse.io/opt-out": note} if note else None,
                labels={"app": "web", **({"ecopulse.io/opt-out": label} if label else {})},
            )
        )
        for i, (space, note, label) in enumerate(workloads)
    ]
    record = slim_policy(
        policy(
            "p",
            kind="ClusterPropagationPolicy" if cluster_wide else "PropagationPolicy",
            annotations={"ecopulse.io/opt-out": policy_opt_out} if policy_opt_out else None,
        )
    )
    assert record is not None and all(r is not None for r in records)
    found = [r for r in records if r is not None]
    subjects = [Subject(namespace=record.namespace, labels={}, annotations=record.annotations)] * bool(
        record.namespace
    ) + [workload_subject(w, policy_annotations=record.annotations) for w in found]
    expected = next(
        (r for s in subjects if (r := never_managed(s, namespace=spaces.get(s.namespace))) is not None), None
    )
    reason = unmanaged(record, found, spaces)
    assert (reason.value if reason is not None else None) == (expected.value if expected else None)
