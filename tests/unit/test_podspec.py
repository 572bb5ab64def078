"""core.podspec: a pod's demand as the scheduler counts it, its spot-ness, region constraints and hints."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.managed import says_opt_out
from core.model import (
    ALLOWED_REGIONS_ANNOTATION,
    CAPACITY_TYPE_LABEL,
    DATA_REGION_ANNOTATION,
    DECISION_ANNOTATION,
    EGRESS_ANNOTATION,
    EXPECTED_RUNTIME_ANNOTATION,
    MAX_LATENCY_ANNOTATION,
    PREFERRED_REGION_ANNOTATION,
    REGION_LABEL,
    CapacityType,
    PlacementHints,
)
from core.podspec import (
    DEFAULT_CPU_CORES,
    DEFAULT_MEMORY_GIB,
    DEPRECATED_REGION_LABEL,
    controller_owner,
    owner_kinds,
    placement_hints,
    pod_demand,
    read_annotations,
    region_constraints,
)
from core.quantity import QuantityOutOfRange

KNOWN = frozenset({"us-east-1", "eu-west-1", "eu-north-1"})
REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
PREFERRED = "preferredDuringSchedulingIgnoredDuringExecution"


def container(
    cpu: object = None, memory: object = None, *, limits: dict[str, object] | None = None
) -> dict[str, Any]:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    resources: dict[str, Any] = {}
    if requests:
        resources["requests"] = requests
    if limits is not None:
        resources["limits"] = limits
    return {"name": "c", "image": "busybox", "resources": resources}


def pod(
    containers: list[Any] | None = None,
    *,
    init: list[dict[str, Any]] | None = None,
    annotations: dict[str, Any] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {"containers": containers if containers is not None else [container("1", "1Gi")]}
    if init is not None:
        body["initContainers"] = init
    body.update(spec)
    metadata: dict[str, Any] = {"name": "p"}
    if annotations is not None:
        metadata["annotations"] = annotations
    return {"metadata": metadata, "spec": body}


# --- demand ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "cpu", "memory"),
    [
        pytest.param(pod([container("500m", "512Mi")]), 0.5, 0.5, id="one container"),
        pytest.param(pod([container("500m", "512Mi"), container("1500m", "1Gi")]), 2.0, 1.5, id="sum"),
        pytest.param(
            pod([container("1", "1Gi")], init=[container("3", "512Mi"), container("2", "4Gi")]),
            3.0,
            4.0,
            id="largest init wins per resource",
        ),
        pytest.param(
            pod([container("1", "1Gi"), container("1", "1Gi")], init=[container("1500m", "1Gi")]),
            2.0,
            2.0,
            id="sum of containers beats a smaller init",
        ),
        pytest.param(
            pod([container("1", "1Gi")], overhead={"cpu": "250m", "memory": "256Mi"}),
            1.25,
            1.25,
            id="overhead added",
        ),
        pytest.param(
            pod(
                [container("1", "1Gi")], init=[container("4", "4Gi")], overhead={"cpu": "1", "memory": "1Gi"}
            ),
            5.0,
            5.0,
            id="overhead on top of the init max",
        ),
        pytest.param(pod([container()]), DEFAULT_CPU_CORES, DEFAULT_MEMORY_GIB, id="no requests: defaults"),
        pytest.param(
            pod([container("2")]), 2.0, DEFAULT_MEMORY_GIB, id="memory missing: default memory only"
        ),
        pytest.param(
            pod([container(limits={"cpu": "3", "memory": "2Gi"})]),
            3.0,
            2.0,
            id="limits stand in for requests",
        ),
        pytest.param(
            pod([container("1", limits={"cpu": "3", "memory": "2Gi"})]), 1.0, 2.0, id="request beats limit"
        ),
        pytest.param(pod([container("lots", "x")]), DEFAULT_CPU_CORES, DEFAULT_MEMORY_GIB, id="bad quantity"),
        pytest.param(pod([]), 0.0, 0.0, id="no containers"),
        pytest.param({"spec": {"containers": "nope"}}, 0.0, 0.0, id="containers not a list"),
        pytest.param({}, 0.0, 0.0, id="no spec"),
        pytest.param(
            pod(["junk", container("1", "1Gi")]), 1.1, 1.0 + DEFAULT_MEMORY_GIB, id="junk container"
        ),
        pytest.param(pod([container("1", "1Gi")], overhead={"cpu": "bad"}), 1.0, 1.0, id="bad overhead"),
    ],
)
def test_pod_demand(document: dict[str, Any], cpu: float, memory: float) -> None:
    demand = pod_demand(document)
    assert demand.cpu_cores == pytest.approx(cpu)
    assert demand.memory_gib == pytest.approx(memory)


def test_the_defaults_are_kube_schedulers_100m_and_200_mib() -> None:
    assert DEFAULT_CPU_CORES == 0.1
    assert DEFAULT_MEMORY_GIB * 2**30 == 200 * 1024 * 1024


def test_native_sidecar_init_containers_count_with_the_app_containers() -> None:
    sidecar = {**container("500m", "512Mi"), "restartPolicy": "Always"}
    demand = pod_demand(pod([container("1", "1Gi")], init=[sidecar]))
    assert demand.cpu_cores == pytest.approx(1.5)
    assert demand.memory_gib == pytest.approx(1.5)


def test_a_huge_integer_request_never_raises() -> None:
    demand = pod_demand(pod([container(10**400, "1Gi")]))
    assert demand.cpu_cores == DEFAULT_CPU_CORES


@pytest.mark.parametrize(
    "document",
    [
        pod([container("1e308", "1Gi")]),
        pod([container("1", "1e308")]),
        pod([container(10**400, "1Gi")]),
        pod([container("900000", "1Gi"), container("900000", "1Gi")]),  # each in range, not the sum
    ],
)
def test_strict_demand_refuses_requests_placement_cannot_compute_with(document: dict[str, Any]) -> None:
    with pytest.raises(QuantityOutOfRange):
        pod_demand(document, strict=True)
    lenient = pod_demand(document)  # the caches and the rebalancer: never raises, stays finite
    assert lenient.cpu_cores < 2e6 and lenient.memory_gib < 2e6


def test_strict_demand_still_defaults_unreadable_requests() -> None:
    assert pod_demand(pod([container("abc", "-1")]), strict=True) == pod_demand(pod([container("abc", "-1")]))


@pytest.mark.parametrize(
    ("selector", "capacity"),
    [
        ({}, CapacityType.ON_DEMAND),
        ({CAPACITY_TYPE_LABEL: "spot"}, CapacityType.SPOT),
        ({CAPACITY_TYPE_LABEL: "on-demand"}, CapacityType.ON_DEMAND),
        ({"eks.amazonaws.com/capacityType": "SPOT"}, CapacityType.SPOT),
        ({"eks.amazonaws.com/capacityType": "spot"}, CapacityType.ON_DEMAND),
        ({"cloud.google.com/gke-spot": "true"}, CapacityType.SPOT),
        ({"cloud.google.com/gke-preemptible": "true"}, CapacityType.SPOT),
        ({"kubernetes.azure.com/scalesetpriority": "spot"}, CapacityType.SPOT),
        ({"disktype": "spot"}, CapacityType.ON_DEMAND),
        ({CAPACITY_TYPE_LABEL: ["spot"]}, CapacityType.ON_DEMAND),
    ],
)
def test_spot_is_read_from_the_node_selector(selector: dict[str, Any], capacity: CapacityType) -> None:
    assert pod_demand(pod(nodeSelector=selector)).capacity_type is capacity


# --- region constraints -----------------------------------------------------------------------------


def expression(key: Any) -> dict[str, Any]:
    return {"key": key, "operator": "In", "values": ["us-east-1"]}


def node_affinity(**members: Any) -> dict[str, Any]:
    return {"affinity": {"nodeAffinity": members}}


@pytest.mark.parametrize(
    ("spec", "found"),
    [
        pytest.param({}, [], id="nothing"),
        pytest.param(
            {"nodeSelector": {REGION_LABEL: "us-east-1"}}, [f"nodeSelector {REGION_LABEL}"], id="selector"
        ),
        pytest.param(
            {"nodeSelector": {DEPRECATED_REGION_LABEL: "us-east-1"}},
            [f"nodeSelector {DEPRECATED_REGION_LABEL}"],
            id="deprecated selector",
        ),
        pytest.param({"nodeSelector": {"disktype": "ssd"}}, [], id="other selector"),
        pytest.param(
            node_affinity(
                **{
                    REQUIRED: {
                        "nodeSelectorTerms": [
                            {"matchExpressions": [expression("a")]},
                            {"matchExpressions": [expression(REGION_LABEL)]},
                        ]
                    }
                }
            ),
            ["required node affinity on the region label"],
            id="required, second term",
        ),
        pytest.param(
            node_affinity(
                **{
                    REQUIRED: {
                        "nodeSelectorTerms": [{"matchExpressions": [expression(DEPRECATED_REGION_LABEL)]}]
                    }
                }
            ),
            ["required node affinity on the region label"],
            id="required, deprecated label",
        ),
        pytest.param(
            node_affinity(
                **{PREFERRED: [{"weight": 1, "preference": {"matchExpressions": [expression(REGION_LABEL)]}}]}
            ),
            ["preferred node affinity on the region label"],
            id="preferred",
        ),
        pytest.param(
            node_affinity(**{REQUIRED: {"nodeSelectorTerms": [{"matchFields": [expression(REGION_LABEL)]}]}}),
            [],
            id="matchFields is not a label",
        ),
        pytest.param(
            {
                "nodeSelector": {REGION_LABEL: "x"},
                **node_affinity(
                    **{
                        REQUIRED: {"nodeSelectorTerms": [{"matchExpressions": [expression(REGION_LABEL)]}]},
                        PREFERRED: [
                            {"weight": 1, "preference": {"matchExpressions": [expression(REGION_LABEL)]}}
                        ],
                    }
                ),
            },
            [
                f"nodeSelector {REGION_LABEL}",
                "required node affinity on the region label",
                "preferred node affinity on the region label",
            ],
            id="all three",
        ),
        pytest.param({"affinity": "x", "nodeSelector": ["y"]}, [], id="wrong types"),
        pytest.param(node_affinity(**{REQUIRED: {"nodeSelectorTerms": ["x", None, 3]}}), [], id="junk terms"),
    ],
)
def test_region_constraints(spec: dict[str, Any], found: list[str]) -> None:
    assert region_constraints(spec) == found


@pytest.mark.parametrize("key", [["x"], {"a": 1}], ids=["list", "object"])
def test_an_unhashable_expression_key_never_raises(key: object) -> None:
    spec = node_affinity(**{REQUIRED: {"nodeSelectorTerms": [{"matchExpressions": [expression(key)]}]}})
    assert region_constraints(spec) == []


# --- annotations, owners, opt-out ---------------------------------------------------------------------


def test_read_annotations_keeps_only_string_values() -> None:
    document = pod(annotations={"a": "1", "b": 2, "c": None, "d": ["x"]})
    assert read_annotations(document) == {"a": "1"}
    assert read_annotations({"metadata": "x"}) == {}
    assert read_annotations({}) == {}


@pytest.mark.parametrize(
    ("value", "opted_out"),
    [("true", True), (" TRUE ", True), ("True", True), ("false", False), ("yes", False)],
)
def test_opt_out(value: str, opted_out: bool) -> None:
    assert says_opt_out(value) is opted_out
    assert not says_opt_out(None)


def test_owners() -> None:
    document = {
        "metadata": {
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "controller": True},
                {"kind": "Thing", "name": "t"},
                "junk",
                {"kind": 3},
            ]
        }
    }
    assert owner_kinds(document) == ("ReplicaSet", "Thing")
    assert controller_owner(document) == ("apps/v1", "ReplicaSet", "web-1")
    assert controller_owner({"metadata": {"ownerReferences": [{"kind": "Job", "name": "j"}]}}) is None
    assert owner_kinds({}) == ()


# --- placement hints -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotations", "hints", "warned"),
    [
        pytest.param({}, PlacementHints(), [], id="none"),
        pytest.param(
            {MAX_LATENCY_ANNOTATION: "50"}, PlacementHints(max_latency_ms=50.0), [], id="max latency"
        ),
        pytest.param(
            {MAX_LATENCY_ANNOTATION: "fast"}, PlacementHints(), [MAX_LATENCY_ANNOTATION], id="latency text"
        ),
        pytest.param(
            {MAX_LATENCY_ANNOTATION: "-5"}, PlacementHints(), [MAX_LATENCY_ANNOTATION], id="latency < 0"
        ),
        pytest.param(
            {MAX_LATENCY_ANNOTATION: "nan"}, PlacementHints(), [MAX_LATENCY_ANNOTATION], id="latency nan"
        ),
        pytest.param(
            {MAX_LATENCY_ANNOTATION: "inf"}, PlacementHints(), [MAX_LATENCY_ANNOTATION], id="latency inf"
        ),
        pytest.param(
            {DATA_REGION_ANNOTATION: " eu-west-1 "},
            PlacementHints(data_region="eu-west-1"),
            [],
            id="data region",
        ),
        pytest.param(
            {DATA_REGION_ANNOTATION: "mars-1"},
            PlacementHints(),
            [DATA_REGION_ANNOTATION],
            id="data region unknown",
        ),
        pytest.param({EGRESS_ANNOTATION: "2.5"}, PlacementHints(egress_gb_per_hour=2.5), [], id="egress"),
        pytest.param({EGRESS_ANNOTATION: "1e9"}, PlacementHints(), [EGRESS_ANNOTATION], id="egress too big"),
        pytest.param({EGRESS_ANNOTATION: ""}, PlacementHints(), [EGRESS_ANNOTATION], id="egress empty"),
        pytest.param(
            {EXPECTED_RUNTIME_ANNOTATION: "2"}, PlacementHints(expected_runtime_hours=2.0), [], id="runtime"
        ),
        pytest.param({EXPECTED_RUNTIME_ANNOTATION: "0"}, PlacementHints(), [], id="runtime zero means unset"),
        pytest.param(
            {EXPECTED_RUNTIME_ANNOTATION: "9000"},
            PlacementHints(),
            [EXPECTED_RUNTIME_ANNOTATION],
            id="runtime > 1y",
        ),
        pytest.param(
            {ALLOWED_REGIONS_ANNOTATION: "us-east-1, eu-west-1,,"},
            PlacementHints(allowed_regions=frozenset({"us-east-1", "eu-west-1"})),
            [],
            id="allowed regions",
        ),
        pytest.param(
            {ALLOWED_REGIONS_ANNOTATION: "us-east-1,mars-1"},
            PlacementHints(allowed_regions=frozenset({"us-east-1"})),
            [ALLOWED_REGIONS_ANNOTATION],
            id="allowed regions, one unknown",
        ),
        pytest.param(
            {MAX_LATENCY_ANNOTATION: "x", EGRESS_ANNOTATION: "-1", "unrelated/annotation": "whatever"},
            PlacementHints(),
            [MAX_LATENCY_ANNOTATION, EGRESS_ANNOTATION],
            id="several bad",
        ),
        # Issue 19: a misspelt key must not drop a constraint without a word.
        pytest.param(
            {"ecopulse.io/allowed-region": "us-east-1"},
            PlacementHints(),
            ["ecopulse.io/allowed-region"],
            id="misspelt key",
        ),
        pytest.param(
            {"ecopulse.io/whatever": "x", PREFERRED_REGION_ANNOTATION: "us-east-1", DECISION_ANNOTATION: "y"},
            PlacementHints(),
            ["ecopulse.io/whatever"],
            id="unknown key; our own output keys are known",
        ),
    ],
)
def test_placement_hints(annotations: dict[str, str], hints: PlacementHints, warned: list[str]) -> None:
    result = placement_hints(annotations, known_regions=KNOWN)
    assert result.hints == hints
    assert [warning.split(":")[0] for warning in result.warnings] == warned


@given(
    st.dictionaries(
        st.sampled_from(
            [
                MAX_LATENCY_ANNOTATION,
                DATA_REGION_ANNOTATION,
                EGRESS_ANNOTATION,
                EXPECTED_RUNTIME_ANNOTATION,
                ALLOWED_REGIONS_ANNOTATION,
            ]
        ),
        st.text(),
    )
)
def test_placement_hints_never_raise_and_stay_in_range(annotations: dict[str, str]) -> None:
    hints = placement_hints(annotations, known_regions=KNOWN).hints
    assert hints.max_latency_ms is None or hints.max_latency_ms >= 0
    assert hints.egress_gb_per_hour >= 0
    assert hints.expected_runtime_hours is None or hints.expected_runtime_hours > 0
    assert hints.data_region is None or hints.data_region in KNOWN
    assert hints.allowed_regions is None or hints.allowed_regions <= KNOWN


def test_an_unknown_key_names_the_closest_known_one() -> None:
    result = placement_hints({"ecopulse.io/allowed-region": "us-east-1"}, known_regions=KNOWN)
    assert result.warnings == (
        "ecopulse.io/allowed-region: unknown annotation, ignored (did you mean ecopulse.io/allowed-regions?)",
    )


def test_unknown_keys_warn_at_most_three_times() -> None:
    result = placement_hints({f"ecopulse.io/k{i}": "x" for i in range(50)}, known_regions=KNOWN)
    assert len(result.warnings) == 3
