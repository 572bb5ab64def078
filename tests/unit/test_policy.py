"""Policy parsing and resolution: precedence, specificity, conflicts, invalid policies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.config import PlacementMode, default_config
from core.model import ALLOWED_REGIONS_ANNOTATION, MAX_LATENCY_ANNOTATION
from core.podspec import placement_hints
from core.policy import (
    CLUSTER_KIND,
    EMPTY_POLICY_SET,
    NAMESPACED_KIND,
    Policy,
    PolicyError,
    PolicyMode,
    Rebalance,
    build_policy_set,
    parse_policy,
    placement_config,
    resolve,
)

KNOWN = frozenset({"us-east-1", "eu-west-1", "eu-north-1"})
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def wire(
    name: str,
    spec: dict[str, Any],
    *,
    namespace: str | None = "shop",
    age_minutes: int = 0,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "uid": f"uid-{name}",
        "generation": 1,
        "creationTimestamp": (T0 - timedelta(minutes=age_minutes)).isoformat().replace("+00:00", "Z"),
    }
    if namespace is not None:
        metadata["namespace"] = namespace
    kind = NAMESPACED_KIND if namespace is not None else CLUSTER_KIND
    return {"apiVersion": "ecopulse.io/v1alpha1", "kind": kind, "metadata": metadata, "spec": spec}


def policies(*objects: dict[str, Any]) -> list[Policy]:
    return [parse_policy(o) for o in objects]


def hints_for(objects: list[Policy], *, labels: dict[str, str], annotations: dict[str, str]) -> Any:
    resolution = resolve(build_policy_set(objects, known_regions=KNOWN), namespace="shop", pod_labels=labels)
    return placement_hints(resolution.annotations(annotations), known_regions=KNOWN).hints, resolution


# --- parsing -------------------------------------------------------------------------------


def test_a_full_policy_parses_into_typed_values() -> None:
    policy = parse_policy(
        wire(
            "web",
            {
                "selector": {
                    "matchLabels": {"app": "web"},
                    "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}],
                },
                "mode": "required",
                "allowedRegions": ["eu-west-1", "eu-north-1"],
                "maxLatencyMs": 40,
                "dataRegion": "eu-west-1",
                "egressGbPerHour": 0.5,
                "expectedRuntimeHours": 2,
                "minNetBenefitUsd": 0.01,
                "rebalance": "never",
                "maxUnavailable": "25%",
            },
        )
    )
    assert policy.ref == "EcoPulsePolicy/shop/web"
    assert policy.selector.terms == 2
    assert policy.spec.mode is PolicyMode.REQUIRED
    assert policy.spec.allowed_regions == frozenset({"eu-west-1", "eu-north-1"})
    assert policy.spec.max_latency_ms == 40.0
    assert policy.spec.rebalance is Rebalance.NEVER
    assert policy.spec.max_unavailable == "25%"
    assert policy.annotations[ALLOWED_REGIONS_ANNOTATION] == "eu-north-1,eu-west-1"
    assert policy.created_at == T0


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"mode": "sometimes"}, "spec.mode"),
        ({"allowedRegions": []}, "spec.allowedRegions"),
        ({"maxLatencyMs": 0}, "spec.maxLatencyMs"),
        ({"maxLatencyMs": True}, "spec.maxLatencyMs"),
        ({"egressGbPerHour": -1}, "spec.egressGbPerHour"),
        ({"maxUnavailable": "150%"}, "spec.maxUnavailable"),
        ({"rebalance": "later"}, "spec.rebalance"),
        ({"selector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}, "matchExpressions[0].values"),
        (
            {"selector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}},
            "matchExpressions[0].operator",
        ),
    ],
)
def test_an_unreadable_policy_is_refused_naming_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(PolicyError, match=field.replace("[", r"\[").replace("]", r"\]")):
        parse_policy(wire("p", spec))


# --- precedence ------------------------------------------------------------------------------

CLUSTER = wire("base", {"maxLatencyMs": 200, "allowedRegions": ["us-east-1", "eu-west-1"]}, namespace=None)
BROAD = wire("all", {"maxLatencyMs": 100})
WEB = wire("web", {"selector": {"matchLabels": {"app": "web"}}, "maxLatencyMs": 50})

# (policies, pod labels, pod annotations, expected max latency, expected allowed, expected refs)
PRECEDENCE: list[tuple[list[dict[str, Any]], dict[str, str], dict[str, str], Any, Any, str]] = [
    # nothing: the configuration file decides (no constraint)
    ([], {"app": "web"}, {}, None, None, ""),
    # the cluster policy alone
    ([CLUSTER], {"app": "web"}, {}, 200.0, {"us-east-1", "eu-west-1"}, "ClusterEcoPulsePolicy/base"),
    # a namespaced policy over the cluster one, field by field (allowedRegions still the cluster's)
    (
        [CLUSTER, BROAD],
        {"app": "web"},
        {},
        100.0,
        {"us-east-1", "eu-west-1"},
        "EcoPulsePolicy/shop/all,ClusterEcoPulsePolicy/base",
    ),
    # the most specific namespaced policy wins over a broader one
    ([BROAD, WEB], {"app": "web"}, {}, 50.0, None, "EcoPulsePolicy/shop/web"),
    # ... and does not apply where its selector does not match
    ([BROAD, WEB], {"app": "db"}, {}, 100.0, None, "EcoPulsePolicy/shop/all"),
    # the pod's annotation over every policy
    ([CLUSTER, WEB], {"app": "web"}, {MAX_LATENCY_ANNOTATION: "7"}, 7.0, {"us-east-1", "eu-west-1"}, ""),
    ([CLUSTER], {}, {ALLOWED_REGIONS_ANNOTATION: "eu-north-1"}, 200.0, {"eu-north-1"}, ""),
]


@pytest.mark.parametrize(("objects", "labels", "annotations", "latency", "allowed", "refs"), PRECEDENCE)
def test_precedence(
    objects: list[dict[str, Any]],
    labels: dict[str, str],
    annotations: dict[str, str],
    latency: Any,
    allowed: Any,
    refs: str,
) -> None:
    hints, resolution = hints_for(policies(*objects), labels=labels, annotations=annotations)
    assert hints.max_latency_ms == latency
    assert hints.allowed_regions == (frozenset(allowed) if allowed is not None else None)
    if refs:
        assert resolution.refs == refs


def test_a_policy_in_another_namespace_never_applies() -> None:
    other = parse_policy(wire("web", {"maxLatencyMs": 5}, namespace="billing"))
    resolution = resolve(build_policy_set([other], known_regions=KNOWN), namespace="shop", pod_labels={})
    assert resolution.applied == ()


def test_mode_and_floor_come_from_the_nearest_layer_that_sets_them() -> None:
    objects = policies(
        wire("base", {"mode": "required", "minNetBenefitUsd": 0.5}, namespace=None),
        wire(
            "web", {"selector": {"matchLabels": {"app": "web"}}, "mode": "required", "minNetBenefitUsd": 0.1}
        ),
    )
    config = default_config()
    resolution = resolve(
        build_policy_set(objects, known_regions=KNOWN), namespace="shop", pod_labels={"app": "web"}
    )
    derived = placement_config(config, resolution)
    assert derived.placement.mode is PlacementMode.REQUIRED
    assert derived.placement.min_net_benefit_usd == 0.1
    assert placement_config(config, resolution) is derived  # shared: memos keyed on identity hold
    assert config.placement.mode is PlacementMode.PREFERRED  # the file's own is untouched
    assert placement_config(config, resolve(EMPTY_POLICY_SET, namespace="shop", pod_labels={})) is config


def test_mode_off_opts_out_unless_the_pod_says_otherwise() -> None:
    objects = policies(wire("legacy", {"mode": "off"}))
    resolution = resolve(build_policy_set(objects, known_regions=KNOWN), namespace="shop", pod_labels={})
    assert resolution.opts_out({})
    assert not resolution.opts_out({"ecopulse.io/opt-out": "false"})


# --- conflicts and invalid policies ------------------------------------------------------------


def test_two_equally_specific_policies_conflict_and_the_oldest_applies() -> None:
    older = wire("older", {"selector": {"matchLabels": {"app": "web"}}, "maxLatencyMs": 10}, age_minutes=60)
    newer = wire("newer", {"selector": {"matchLabels": {"tier": "front"}}, "maxLatencyMs": 90})
    hints, resolution = hints_for(
        policies(newer, older), labels={"app": "web", "tier": "front"}, annotations={}
    )
    assert resolution.namespaced is not None and resolution.namespaced.name == "older"
    assert hints.max_latency_ms == 10.0
    assert {p.name for p in resolution.conflicts} == {"older", "newer"}


def test_same_age_ties_are_broken_by_name() -> None:
    a = wire("a", {"maxLatencyMs": 10})
    b = wire("b", {"maxLatencyMs": 90})
    for order in ((a, b), (b, a)):
        _, resolution = hints_for(policies(*order), labels={}, annotations={})
        assert resolution.namespaced is not None and resolution.namespaced.name == "a"


def test_an_unknown_region_makes_a_policy_invalid_and_ignored() -> None:
    bad = parse_policy(wire("mars", {"allowedRegions": ["mars-1"], "maxLatencyMs": 5}))
    worse = parse_policy(wire("moon", {"dataRegion": "moon-1"}, namespace=None))
    policy_set = build_policy_set([bad, worse], known_regions=KNOWN)
    assert "spec.allowedRegions" in policy_set.invalid[bad.ref][0]
    assert "mars-1" in policy_set.invalid[bad.ref][0]
    assert "spec.dataRegion" in policy_set.invalid[worse.ref][0]
    assert resolve(policy_set, namespace="shop", pod_labels={}).applied == ()


# --- properties -------------------------------------------------------------------------------

label_values = st.sampled_from(["a", "b"])
selectors = st.dictionaries(st.sampled_from(["app", "tier", "team"]), label_values, max_size=3)


@given(
    specs=st.lists(st.tuples(selectors, st.integers(0, 1000), st.integers(1, 500)), min_size=1, max_size=6),
    labels=st.dictionaries(st.sampled_from(["app", "tier", "team"]), label_values, max_size=3),
)
def test_resolution_is_the_oldest_of_the_most_specific_matching(
    specs: list[tuple[dict[str, str], int, int]], labels: dict[str, str]
) -> None:
    objects = [
        parse_policy(wire(f"p{i}", {"selector": {"matchLabels": s}, "maxLatencyMs": ms}, age_minutes=age))
        for i, (s, age, ms) in enumerate(specs)
    ]
    resolution = resolve(build_policy_set(objects, known_regions=KNOWN), namespace="shop", pod_labels=labels)
    matching = [p for p in objects if all(labels.get(k) == v for k, v in p.selector.match_labels)]
    if not matching:
        assert resolution.namespaced is None and resolution.conflicts == ()
        return
    top = max(p.selector.terms for p in matching)
    tied = sorted((p for p in matching if p.selector.terms == top), key=lambda p: p.order)
    assert resolution.namespaced == tied[0]
    assert set(resolution.conflicts) == (set(tied) if len(tied) > 1 else set())
    # Input order never matters: every replica sees the same answer.
    again = resolve(
        build_policy_set(list(reversed(objects)), known_regions=KNOWN), namespace="shop", pod_labels=labels
    )
    assert again == resolution


@given(annotation=st.integers(1, 1000), namespaced=st.integers(1, 1000), cluster=st.integers(1, 1000))
def test_a_nearer_layer_always_wins(annotation: int, namespaced: int, cluster: int) -> None:
    objects = policies(
        wire("c", {"maxLatencyMs": cluster}, namespace=None),
        wire("n", {"maxLatencyMs": namespaced}),
    )
    with_annotation, _ = hints_for(objects, labels={}, annotations={MAX_LATENCY_ANNOTATION: str(annotation)})
    assert with_annotation.max_latency_ms == annotation
    without, _ = hints_for(objects, labels={}, annotations={})
    assert without.max_latency_ms == namespaced
    cluster_only, _ = hints_for(objects[:1], labels={}, annotations={})
    assert cluster_only.max_latency_ms == cluster


expressions = st.lists(
    st.fixed_dictionaries(
        {
            "key": st.sampled_from(["app", "tier"]),
            "operator": st.sampled_from(["In", "NotIn"]),
            "values": st.just(["a"]),
        }
    )
    | st.fixed_dictionaries(
        {"key": st.sampled_from(["app", "team"]), "operator": st.sampled_from(["Exists", "DoesNotExist"])}
    ),
    max_size=2,
)


@given(
    specs=st.lists(st.tuples(selectors, expressions, st.integers(0, 100)), min_size=1, max_size=8),
    labels=st.dictionaries(st.sampled_from(["app", "tier", "team"]), label_values, max_size=3),
)
def test_the_label_index_finds_what_a_full_scan_finds(
    specs: list[tuple[dict[str, str], list[dict[str, Any]], int]], labels: dict[str, str]
) -> None:
    objects = [
        parse_policy(
            wire(
                f"p{i}",
                {"selector": {"matchLabels": m, "matchExpressions": e}, "maxLatencyMs": 5},
                age_minutes=a,
            )
        )
        for i, (m, e, a) in enumerate(specs)
    ]
    resolution = resolve(build_policy_set(objects, known_regions=KNOWN), namespace="shop", pod_labels=labels)
    matching = sorted((p for p in objects if p.selector.matches(labels)), key=lambda p: p.order)
    if not matching:
        assert resolution.namespaced is None
        return
    top = max(p.selector.terms for p in matching)
    assert resolution.namespaced == next(p for p in matching if p.selector.terms == top)
