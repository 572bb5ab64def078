"""webhook.admission.patch: only `add`, only where a parent exists, never replacing what the user wrote."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import jsonpatch
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.config import EcoPulseConfiguration, parse_config_text
from core.model import (
    DECISION_ANNOTATION,
    PREFERRED_REGION_ANNOTATION,
    REGION_LABEL,
    CarbonSignal,
    SignalSnapshot,
)
from core.placement import PlacementChoice
from webhook.admission.mutate import Outcome, Reason, decide
from webhook.admission.patch import (
    PREFERRED,
    REQUIRED,
    Unpatchable,
    affinity_patch,
    annotation_patch,
    count_terms,
    escape,
    region_requirement,
)
from webhook.admission.review import AdmissionRequest, PatchOperation, parse_review

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ODD_KEY = "example.com/odd~key/x"
WANTED = {PREFERRED_REGION_ANNOTATION: "eu-north-1", DECISION_ANNOTATION: "why", ODD_KEY: "added"}

PREFERRED_CHOICE = PlacementChoice(
    best_region="eu-north-1", preferred=(("eu-north-1", 100), ("eu-west-1", 1)), required_regions=None
)
REQUIRED_CHOICE = PlacementChoice(
    best_region="eu-north-1",
    preferred=(("eu-north-1", 100), ("eu-west-1", 1)),
    required_regions=("eu-north-1", "eu-west-1"),
)
CHOICES = {"preferred": PREFERRED_CHOICE, "required": REQUIRED_CHOICE}
REGION_REQUIREMENT = region_requirement(("eu-north-1", "eu-west-1"))

_ABSENT: Any = object()


def pod(*, affinity: Any = _ABSENT, annotations: Any = _ABSENT, **spec: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "web-0", "namespace": "default"}
    if annotations is not _ABSENT:
        metadata["annotations"] = annotations
    body: dict[str, Any] = {"containers": [{"name": "app", "image": "nginx"}], **spec}
    if affinity is not _ABSENT:
        body["affinity"] = affinity
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": body}


def expression(key: str, *values: str) -> dict[str, Any]:
    return {"key": key, "operator": "In", "values": list(values)}


ANTI = {
    "requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}
    ]
}
USER_PREFERRED = [{"weight": 5, "preference": {"matchExpressions": [expression("disk", "ssd")]}}]
USER_REQUIRED = {
    "nodeSelectorTerms": [
        {"matchExpressions": [expression("kubernetes.io/arch", "amd64")]},
        {"matchFields": [expression("metadata.name", "node-1")]},
    ]
}

SHAPES: dict[str, dict[str, Any]] = {
    "no affinity": pod(),
    "affinity null": pod(affinity=None),
    "empty affinity": pod(affinity={}),
    "podAntiAffinity only": pod(affinity={"podAntiAffinity": ANTI}),
    "nodeAffinity null": pod(affinity={"nodeAffinity": None, "podAntiAffinity": ANTI}),
    "nodeAffinity empty": pod(affinity={"nodeAffinity": {}}),
    "preferred only": pod(affinity={"nodeAffinity": {PREFERRED: USER_PREFERRED}, "podAntiAffinity": ANTI}),
    "required terms, one matchFields-only": pod(affinity={"nodeAffinity": {REQUIRED: USER_REQUIRED}}),
    "required and preferred": pod(
        affinity={"nodeAffinity": {REQUIRED: USER_REQUIRED, PREFERRED: USER_PREFERRED}, "podAffinity": ANTI}
    ),
    "preferred and required null": pod(affinity={"nodeAffinity": {PREFERRED: None, REQUIRED: None}}),
    "term with null matchExpressions": pod(
        affinity={
            "nodeAffinity": {
                REQUIRED: {
                    "nodeSelectorTerms": [{"matchExpressions": None, "matchFields": [expression("f", "v")]}]
                }
            }
        }
    ),
    "existing annotations": pod(annotations={"team": "payments", "a/b": "c"}),
    "annotations null": pod(annotations=None),
    "annotations empty": pod(annotations={}),
    "annotation key with / and ~": pod(annotations={"example.com/x~y": "1", ODD_KEY: "user's"}),
    "our decision already there": pod(annotations={DECISION_ANNOTATION: "earlier"}),
    "nodeSelector and tolerations": pod(
        nodeSelector={"disktype": "ssd"}, tolerations=[{"key": "k", "operator": "Exists"}]
    ),
}


def apply(document: dict[str, Any], ops: list[PatchOperation]) -> dict[str, Any]:
    result: dict[str, Any] = jsonpatch.apply_patch(document, ops)
    return result


def node_affinity_of(document: dict[str, Any]) -> dict[str, Any]:
    affinity = document["spec"].get("affinity") or {}
    return affinity.get("nodeAffinity") or {}


@pytest.mark.parametrize("mode", sorted(CHOICES))
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_the_patch_applies_and_leaves_the_users_spec_alone(shape: str, mode: str) -> None:
    original = SHAPES[shape]
    choice = CHOICES[mode]
    before = copy.deepcopy(original)
    ops = affinity_patch(original, choice) + annotation_patch(original, WANTED)
    assert original == before  # the input is not touched
    assert ops
    assert {op["op"] for op in ops} == {"add"}
    patched = apply(original, ops)

    # everything but nodeAffinity under affinity is the user's, unchanged
    old_affinity = original["spec"].get("affinity") or {}
    new_affinity = patched["spec"]["affinity"]
    for member in set(old_affinity) | set(new_affinity):
        if member != "nodeAffinity":
            assert new_affinity.get(member) == old_affinity.get(member)
    assert {k: v for k, v in patched["spec"].items() if k != "affinity"} == {
        k: v for k, v in original["spec"].items() if k != "affinity"
    }

    old_node, new_node = node_affinity_of(original), node_affinity_of(patched)
    # preferred: the user's terms first, unchanged; ours appended in choice order
    old_preferred = old_node.get(PREFERRED) or []
    new_preferred = new_node[PREFERRED]
    assert new_preferred[: len(old_preferred)] == old_preferred
    ours = new_preferred[len(old_preferred) :]
    assert [(t["weight"], t["preference"]["matchExpressions"]) for t in ours] == [
        (100, [region_requirement(("eu-north-1",))]),
        (1, [region_requirement(("eu-west-1",))]),
    ]
    assert count_terms(patched) == len(old_preferred) + 2

    old_required = old_node.get(REQUIRED)
    if mode == "preferred":
        assert new_node.get(REQUIRED) == old_required
    elif old_required is None:
        assert new_node[REQUIRED] == {"nodeSelectorTerms": [{"matchExpressions": [REGION_REQUIREMENT]}]}
    else:
        # ANDed into every existing term, never a new (OR) term
        old_terms, new_terms = old_required["nodeSelectorTerms"], new_node[REQUIRED]["nodeSelectorTerms"]
        assert len(new_terms) == len(old_terms)
        for old_term, new_term in zip(old_terms, new_terms, strict=True):
            assert {k: v for k, v in new_term.items() if k != "matchExpressions"} == {
                k: v for k, v in old_term.items() if k != "matchExpressions"
            }
            assert new_term["matchExpressions"] == [
                *(old_term.get("matchExpressions") or []),
                REGION_REQUIREMENT,
            ]

    # annotations: the user's stay as they were; ours are added where missing, never overwritten
    old_annotations = original["metadata"].get("annotations") or {}
    new_annotations = patched["metadata"]["annotations"]
    for key, value in old_annotations.items():
        assert new_annotations[key] == value
    for key, value in WANTED.items():
        assert new_annotations[key] == old_annotations.get(key, value)
    assert set(new_annotations) == set(old_annotations) | set(WANTED)
    assert {k: v for k, v in patched["metadata"].items() if k != "annotations"} == {
        k: v for k, v in original["metadata"].items() if k != "annotations"
    }


def test_affinity_absent_is_added_whole() -> None:
    ops = affinity_patch(pod(), REQUIRED_CHOICE)
    assert ops == [
        {
            "op": "add",
            "path": "/spec/affinity",
            "value": {
                "nodeAffinity": {
                    PREFERRED: [
                        {
                            "weight": 100,
                            "preference": {"matchExpressions": [region_requirement(("eu-north-1",))]},
                        },
                        {
                            "weight": 1,
                            "preference": {"matchExpressions": [region_requirement(("eu-west-1",))]},
                        },
                    ],
                    REQUIRED: {"nodeSelectorTerms": [{"matchExpressions": [REGION_REQUIREMENT]}]},
                }
            },
        }
    ]


def test_existing_preferred_terms_are_appended_to() -> None:
    ops = affinity_patch(pod(affinity={"nodeAffinity": {PREFERRED: USER_PREFERRED}}), PREFERRED_CHOICE)
    assert [op["path"] for op in ops] == [f"/spec/affinity/nodeAffinity/{PREFERRED}/-"] * 2


def test_annotations_absent_are_added_as_one_object() -> None:
    assert annotation_patch(pod(), {"a/b": "1"}) == [
        {"op": "add", "path": "/metadata/annotations", "value": {"a/b": "1"}}
    ]


def test_annotation_keys_are_escaped_per_rfc_6901() -> None:
    ops = annotation_patch(pod(annotations={}), {"a/b~c": "1"})
    assert ops == [{"op": "add", "path": "/metadata/annotations/a~1b~0c", "value": "1"}]
    assert escape("~/") == "~0~1"
    assert escape("~1") == "~01"


def test_no_annotation_ops_when_all_are_there() -> None:
    assert annotation_patch(pod(annotations=dict(WANTED)), WANTED) == []


@pytest.mark.parametrize(
    ("document", "choice"),
    [
        pytest.param({"metadata": {}}, PREFERRED_CHOICE, id="no spec"),
        pytest.param({"spec": ["x"]}, PREFERRED_CHOICE, id="spec a list"),
        pytest.param(pod(affinity=["nodeAffinity"]), PREFERRED_CHOICE, id="affinity a list"),
        pytest.param(pod(affinity={"nodeAffinity": "x"}), PREFERRED_CHOICE, id="nodeAffinity a string"),
        pytest.param(
            pod(affinity={"nodeAffinity": {PREFERRED: {}}}), PREFERRED_CHOICE, id="preferred a dict"
        ),
        pytest.param(
            pod(affinity={"nodeAffinity": {REQUIRED: {"nodeSelectorTerms": []}}}),
            REQUIRED_CHOICE,
            id="required with no terms",
        ),
        pytest.param(
            pod(affinity={"nodeAffinity": {REQUIRED: {}}}), REQUIRED_CHOICE, id="required without terms key"
        ),
        pytest.param(
            pod(affinity={"nodeAffinity": {REQUIRED: ["x"]}}), REQUIRED_CHOICE, id="required a list"
        ),
        pytest.param(
            pod(affinity={"nodeAffinity": {REQUIRED: {"nodeSelectorTerms": ["x"]}}}),
            REQUIRED_CHOICE,
            id="term a string",
        ),
        pytest.param(
            pod(affinity={"nodeAffinity": {REQUIRED: {"nodeSelectorTerms": [{"matchExpressions": {}}]}}}),
            REQUIRED_CHOICE,
            id="matchExpressions a dict",
        ),
    ],
)
def test_shapes_with_no_safe_place_are_unpatchable(document: dict[str, Any], choice: PlacementChoice) -> None:
    with pytest.raises(Unpatchable):
        affinity_patch(document, choice)


def test_required_terms_are_left_alone_in_preferred_mode_even_if_odd() -> None:
    document = pod(affinity={"nodeAffinity": {REQUIRED: {"nodeSelectorTerms": []}}})
    ops = affinity_patch(document, PREFERRED_CHOICE)
    assert all(REQUIRED not in op["path"] for op in ops)


@pytest.mark.parametrize(
    "document",
    [
        pytest.param({"spec": {}}, id="no metadata"),
        pytest.param({"metadata": "x", "spec": {}}, id="metadata a string"),
        pytest.param(pod(annotations=["a"]), id="annotations a list"),
    ],
)
def test_metadata_with_no_safe_place_is_unpatchable(document: dict[str, Any]) -> None:
    with pytest.raises(Unpatchable):
        annotation_patch(document, WANTED)


# --- idempotence through the whole decision --------------------------------------------------------


SAME_PRICE = {"vcpuHour": 0.04, "gibHour": 0.005, "spotVcpuHour": 0.015, "spotGibHour": 0.002}


def make_config(mode: str) -> EcoPulseConfiguration:
    doc = {
        "apiVersion": "ecopulse.io/v1alpha1",
        "kind": "EcoPulseConfiguration",
        "regions": [{"name": "us-east-1"}, {"name": "eu-west-1"}, {"name": "eu-north-1"}],
        "baselineRegion": "us-east-1",
        "placement": {"mode": mode},
        # one price everywhere, so carbon alone decides (see core.economics for prices vs carbon)
        "prices": dict.fromkeys(("us-east-1", "eu-west-1", "eu-north-1"), SAME_PRICE),
    }
    return parse_config_text(yaml.safe_dump(doc))


CONFIGS = {mode: make_config(mode) for mode in CHOICES}
SIGNALS = SignalSnapshot(
    taken_at=T0,
    provider="test",
    carbon={
        name: CarbonSignal(
            region=name, zone="Z", carbon_g_per_kwh=value, observed_at=T0, fetched_at=T0, source="test"
        )
        for name, value in {"us-east-1": 450.0, "eu-west-1": 300.0, "eu-north-1": 30.0}.items()
    },
)


def review(document: dict[str, Any]) -> AdmissionRequest:
    body = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "0d1b5a3c",
            "operation": "CREATE",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "default",
            "object": document,
        },
    }
    return parse_review(json.dumps(body).encode())


@pytest.mark.parametrize("mode", sorted(CHOICES))
@pytest.mark.parametrize(
    "shape", sorted(name for name in SHAPES if DECISION_ANNOTATION not in str(SHAPES[name]["metadata"]))
)
def test_decide_is_idempotent_on_its_own_output(shape: str, mode: str) -> None:
    config = CONFIGS[mode]
    first = decide(review(SHAPES[shape]), signals=SIGNALS, config=config)
    assert first.outcome is Outcome.MUTATED, first
    assert first.reason is Reason.PLACED
    assert first.region == "eu-north-1"
    patched = apply(SHAPES[shape], first.patch)
    assert patched["metadata"]["annotations"][PREFERRED_REGION_ANNOTATION] == "eu-north-1"
    assert patched["metadata"]["annotations"][DECISION_ANNOTATION] == first.decision
    assert first.decision.startswith(mode)

    second = decide(review(patched), signals=SIGNALS, config=config)
    assert second.outcome is Outcome.SKIPPED
    assert second.reason is Reason.ALREADY_PLACED
    assert second.patch == []


def test_a_pod_that_already_steers_the_region_is_left_alone() -> None:
    steered = pod(
        affinity={
            "nodeAffinity": {
                PREFERRED: [
                    {"weight": 1, "preference": {"matchExpressions": [expression(REGION_LABEL, "us-east-1")]}}
                ]
            }
        }
    )
    outcome = decide(review(steered), signals=SIGNALS, config=CONFIGS["preferred"])
    assert outcome.reason is Reason.USER_CONSTRAINED
    assert outcome.patch == []


# --- random pod shapes -------------------------------------------------------------------------------

junk = (
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.text(max_size=4)
    | st.lists(st.integers(0, 3), max_size=2)
    | st.dictionaries(st.text(max_size=3), st.integers(0, 3), max_size=2)
)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the right shape, sometimes a value of the wrong type (null included)."""
    return st.integers(0, 5).flatmap(lambda n: junk if n == 0 else strategy)


keys = st.text(alphabet="ab/~.-0", max_size=8)
match_expression = st.fixed_dictionaries(
    {
        "key": st.sampled_from(["disk", "kubernetes.io/arch", "x"]),
        "operator": st.just("In"),
        "values": st.lists(st.text(max_size=3), max_size=2),
    }
)
term = st.fixed_dictionaries(
    {},
    optional={
        "matchExpressions": maybe(st.lists(maybe(match_expression), max_size=3)),
        "matchFields": maybe(st.lists(match_expression, max_size=2)),
    },
)
required = st.fixed_dictionaries({}, optional={"nodeSelectorTerms": maybe(st.lists(maybe(term), max_size=3))})
preferred_term = st.fixed_dictionaries({"weight": st.integers(1, 100), "preference": maybe(term)})
node_affinity = st.fixed_dictionaries(
    {},
    optional={REQUIRED: maybe(required), PREFERRED: maybe(st.lists(maybe(preferred_term), max_size=3))},
)
affinity = st.fixed_dictionaries(
    {},
    optional={
        "nodeAffinity": maybe(node_affinity),
        "podAntiAffinity": maybe(st.dictionaries(keys, st.integers(), max_size=2)),
    },
)
spec = st.fixed_dictionaries(
    {"containers": st.just([{"name": "app"}])},
    optional={"affinity": maybe(affinity), "nodeSelector": maybe(st.dictionaries(keys, keys, max_size=2))},
)
metadata = st.fixed_dictionaries(
    {}, optional={"annotations": maybe(st.dictionaries(keys, st.text(max_size=3), max_size=4)), "name": keys}
)
pods = st.fixed_dictionaries({}, optional={"metadata": maybe(metadata), "spec": maybe(spec)})
choices = st.sampled_from([PREFERRED_CHOICE, REQUIRED_CHOICE])
wanted_annotations = st.dictionaries(keys, st.text(max_size=3), min_size=1, max_size=3)


def unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def resolve(document: Any, path: str) -> Any:
    """The value at a JSON pointer, or _ABSENT if some step is missing."""
    node = document
    for token in (unescape(t) for t in path.split("/")[1:]):
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return _ABSENT
    return node


def check_ops(document: dict[str, Any], ops: list[PatchOperation]) -> None:
    before = copy.deepcopy(document)
    assert all(op["op"] == "add" for op in ops)
    for op in ops:
        if not op["path"].endswith("/-"):
            # an add never replaces a member that is there (a null one may be filled in)
            assert resolve(document, op["path"]) in (_ABSENT, None), op
    apply(document, ops)
    assert document == before


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(pods, choices)
def test_random_pods_get_an_affinity_patch_that_applies_or_unpatchable(
    document: dict[str, Any], choice: PlacementChoice
) -> None:
    try:
        ops = affinity_patch(document, choice)
    except Unpatchable:
        return
    check_ops(document, ops)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(pods, wanted_annotations)
def test_random_pods_get_an_annotation_patch_that_applies_or_unpatchable(
    document: dict[str, Any], wanted: dict[str, str]
) -> None:
    try:
        ops = annotation_patch(document, wanted)
    except Unpatchable:
        return
    check_ops(document, ops)
    patched = apply(document, ops)
    existing = document["metadata"].get("annotations") or {}
    for key, value in wanted.items():
        assert patched["metadata"]["annotations"][key] == existing.get(key, value)
