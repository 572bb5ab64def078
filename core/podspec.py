"""Read what placement needs from a Pod as JSON (camelCase, as the API server sends it). Pure.

The webhook, the extender and the rebalancer all see pods as JSON, so one reader serves all
three and they agree on a pod's demand and hints. Hostile or odd values never raise here:
a bad annotation is ignored with a warning, a missing request counts as the scheduler's
default.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from core.model import (
    ALLOWED_REGIONS_ANNOTATION,
    ANNOTATION_PREFIX,
    CAPACITY_TYPE_LABEL,
    DATA_REGION_ANNOTATION,
    EGRESS_ANNOTATION,
    EXPECTED_RUNTIME_ANNOTATION,
    KNOWN_ANNOTATIONS,
    MAX_LATENCY_ANNOTATION,
    REGION_LABEL,
    CapacityType,
    PlacementHints,
    PodDemand,
)
from core.quantity import (
    MAX_CPU_CORES,
    MAX_MEMORY_GIB,
    QuantityError,
    QuantityOutOfRange,
    cpu_cores,
    memory_gib,
)

# kube-scheduler scores a container with no requests as if it asked for 100m CPU and 200 MB
# (NonZeroRequests); we do the same so such pods still have a footprint to place.
DEFAULT_CPU_CORES = 0.1
DEFAULT_MEMORY_GIB = 200 * 1024 * 1024 / 2**30

DEPRECATED_REGION_LABEL = "failure-domain.beta.kubernetes.io/region"
REGION_KEYS = frozenset({REGION_LABEL, DEPRECATED_REGION_LABEL})
SPOT_SELECTORS: Mapping[str, frozenset[str]] = {
    CAPACITY_TYPE_LABEL: frozenset({"spot"}),
    "eks.amazonaws.com/capacityType": frozenset({"SPOT"}),
    "cloud.google.com/gke-spot": frozenset({"true"}),
    "cloud.google.com/gke-preemptible": frozenset({"true"}),
    "kubernetes.azure.com/scalesetpriority": frozenset({"spot"}),
}
MAX_HORIZON_HOURS = 24 * 365
MAX_EGRESS_GB_PER_HOUR = 1_000_000.0


_EMPTY: Mapping[str, object] = {}


def as_mapping(value: object) -> Mapping[str, object]:
    # Exact type first: JSON gives dicts, and an ABC isinstance check costs ten times more on
    # the admission hot path.
    if type(value) is dict:
        return value
    return value if isinstance(value, Mapping) else _EMPTY


def as_list(value: object) -> Sequence[object]:
    return value if type(value) is list else ()


def string_map(value: object) -> dict[str, str]:
    return {k: v for k, v in as_mapping(value).items() if isinstance(k, str) and isinstance(v, str)}


@dataclass(frozen=True, slots=True, kw_only=True)
class PodHintsResult:
    hints: PlacementHints
    warnings: tuple[str, ...]


def read_annotations(pod: Mapping[str, object]) -> dict[str, str]:
    return string_map(as_mapping(pod.get("metadata")).get("annotations"))


def owner_kinds(pod: Mapping[str, object]) -> tuple[str, ...]:
    refs = as_list(as_mapping(pod.get("metadata")).get("ownerReferences"))
    return tuple(kind for ref in refs if isinstance(kind := as_mapping(ref).get("kind"), str))


class OwnerReference(NamedTuple):
    api_version: str  # "" if the reference has none (the API server always sets one)
    kind: str
    name: str


def controller_owner(pod: Mapping[str, object]) -> OwnerReference | None:
    """The owner reference marked controller, if any."""
    for ref in as_list(as_mapping(pod.get("metadata")).get("ownerReferences")):
        fields = as_mapping(ref)
        kind, name = fields.get("kind"), fields.get("name")
        if fields.get("controller") is True and isinstance(kind, str) and isinstance(name, str):
            api_version = fields.get("apiVersion")
            return OwnerReference(api_version if isinstance(api_version, str) else "", kind, name)
    return None


def _container_requests(container: object, *, strict: bool) -> tuple[float, float]:
    resources = as_mapping(as_mapping(container).get("resources"))
    requests = as_mapping(resources.get("requests"))
    limits = as_mapping(resources.get("limits"))

    def read(name: str) -> float | None:
        # The API server defaults a missing request to the limit, so do we.
        raw = requests.get(name, limits.get(name))
        if raw is None:
            return None
        try:
            return cpu_cores(raw) if name == "cpu" else memory_gib(raw)
        except QuantityOutOfRange:
            if strict:
                raise
            return None
        except QuantityError:
            return None

    cpu = read("cpu")
    memory = read("memory")
    return (DEFAULT_CPU_CORES if cpu is None else cpu, DEFAULT_MEMORY_GIB if memory is None else memory)


def pod_demand(pod: Mapping[str, object], *, strict: bool = False) -> PodDemand:
    """Effective requests as the scheduler counts them (see resource.PodRequests in kubernetes).

    An unreadable request counts as the default. So does one too large to compute with, unless
    ``strict``: then it raises QuantityOutOfRange (admission refuses to place such a pod rather
    than place it as if it were small).

    Regular containers and native sidecars (init containers with restartPolicy Always) run
    together; each classic init container runs alone, next to the sidecars started before it.
    The pod needs the larger of the two peaks, plus its overhead.
    """
    spec = as_mapping(pod.get("spec"))
    cpu = memory = 0.0
    for container in as_list(spec.get("containers")):
        container_cpu, container_memory = _container_requests(container, strict=strict)
        cpu += container_cpu
        memory += container_memory
    sidecar_cpu = sidecar_memory = init_peak_cpu = init_peak_memory = 0.0
    for container in as_list(spec.get("initContainers")):
        container_cpu, container_memory = _container_requests(container, strict=strict)
        if as_mapping(container).get("restartPolicy") == "Always":
            sidecar_cpu += container_cpu
            sidecar_memory += container_memory
            init_peak_cpu = max(init_peak_cpu, sidecar_cpu)
            init_peak_memory = max(init_peak_memory, sidecar_memory)
        else:
            init_peak_cpu = max(init_peak_cpu, sidecar_cpu + container_cpu)
            init_peak_memory = max(init_peak_memory, sidecar_memory + container_memory)
    cpu = max(cpu + sidecar_cpu, init_peak_cpu)
    memory = max(memory + sidecar_memory, init_peak_memory)
    overhead = as_mapping(spec.get("overhead"))
    try:
        cpu += cpu_cores(overhead["cpu"]) if "cpu" in overhead else 0.0
        memory += memory_gib(overhead["memory"]) if "memory" in overhead else 0.0
    except QuantityOutOfRange:
        if strict:
            raise
    except QuantityError:
        pass
    if strict and (cpu > MAX_CPU_CORES or memory > MAX_MEMORY_GIB):
        # Each request in range, their sum not: still more than placement can reason about.
        raise QuantityOutOfRange("the pod's requests add up to more than placement computes with")
    capacity, constrained = _capacity_type(spec)
    return PodDemand(
        cpu_cores=cpu, memory_gib=memory, capacity_type=capacity, capacity_constrained=constrained
    )


def _capacity_type(spec: Mapping[str, object]) -> tuple[CapacityType, bool]:
    """The capacity type the pod's nodeSelector asks for, and whether it asks at all."""
    selector = string_map(spec.get("nodeSelector"))
    for key, spot_values in SPOT_SELECTORS.items():
        if selector.get(key) in spot_values:
            return CapacityType.SPOT, True
    return CapacityType.ON_DEMAND, any(key in selector for key in SPOT_SELECTORS)


def region_constraints(spec: Mapping[str, object]) -> list[str]:
    """Where the pod's own spec already pins or steers the region (nodeSelector or node affinity)."""
    found: list[str] = []
    selector = string_map(spec.get("nodeSelector"))
    found.extend(f"nodeSelector {key}" for key in sorted(REGION_KEYS & set(selector)))
    node_affinity = as_mapping(as_mapping(spec.get("affinity")).get("nodeAffinity"))
    required = as_mapping(node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution"))
    for term in as_list(required.get("nodeSelectorTerms")):
        if _term_mentions_region(term):
            found.append("required node affinity on the region label")
            break
    for preferred in as_list(node_affinity.get("preferredDuringSchedulingIgnoredDuringExecution")):
        if _term_mentions_region(as_mapping(preferred).get("preference")):
            found.append("preferred node affinity on the region label")
            break
    return found


def _term_mentions_region(term: object) -> bool:
    expressions = as_list(as_mapping(term).get("matchExpressions"))
    return any(isinstance(key := as_mapping(e).get("key"), str) and key in REGION_KEYS for e in expressions)


def _positive_number(raw: str, name: str, warnings: list[str], *, maximum: float) -> float | None:
    try:
        value = float(raw)
    except ValueError:
        warnings.append(f"{name}: not a number ({raw[:20]!r}), ignored")
        return None
    if not math.isfinite(value) or value < 0 or value > maximum:
        warnings.append(f"{name}: out of range ({raw[:20]!r}), ignored")
        return None
    return value


# A pod with many made-up keys gets a few warnings, not one per key (the API server shows each).
_MAX_UNKNOWN_KEY_WARNINGS = 3


def _unknown_keys(pod_annotations: Mapping[str, str]) -> list[str]:
    """A misspelt ecopulse.io/ key would drop a constraint without a word: name it and its likely fix."""
    warnings: list[str] = []
    for key in pod_annotations:
        if key.startswith(ANNOTATION_PREFIX) and key not in KNOWN_ANNOTATIONS:
            closest = difflib.get_close_matches(key, KNOWN_ANNOTATIONS, n=1, cutoff=0.8)
            hint = f" (did you mean {closest[0]}?)" if closest else ""
            warnings.append(f"{key[:80]}: unknown annotation, ignored{hint}")
            if len(warnings) == _MAX_UNKNOWN_KEY_WARNINGS:
                break
    return warnings


def placement_hints(pod_annotations: Mapping[str, str], *, known_regions: frozenset[str]) -> PodHintsResult:
    """Read the ecopulse.io/ annotations; each bad one is ignored and explained in a warning."""
    warnings: list[str] = []
    max_latency = data_region = runtime = allowed = None
    egress = 0.0
    if (raw := pod_annotations.get(MAX_LATENCY_ANNOTATION)) is not None:
        max_latency = _positive_number(raw, MAX_LATENCY_ANNOTATION, warnings, maximum=100_000.0)
    if (raw := pod_annotations.get(DATA_REGION_ANNOTATION)) is not None:
        if raw.strip() in known_regions:
            data_region = raw.strip()
        else:
            warnings.append(f"{DATA_REGION_ANNOTATION}: unknown region {raw[:40]!r}, ignored")
    if (raw := pod_annotations.get(EGRESS_ANNOTATION)) is not None:
        egress = _positive_number(raw, EGRESS_ANNOTATION, warnings, maximum=MAX_EGRESS_GB_PER_HOUR) or 0.0
    if (raw := pod_annotations.get(EXPECTED_RUNTIME_ANNOTATION)) is not None:
        value = _positive_number(raw, EXPECTED_RUNTIME_ANNOTATION, warnings, maximum=MAX_HORIZON_HOURS)
        runtime = value if value else None
    if (raw := pod_annotations.get(ALLOWED_REGIONS_ANNOTATION)) is not None:
        names = {part.strip() for part in raw.split(",") if part.strip()}
        unknown = names - known_regions
        if unknown:
            warnings.append(f"{ALLOWED_REGIONS_ANNOTATION}: unknown regions {sorted(unknown)[:3]} ignored")
        allowed = frozenset(names & known_regions)
    warnings += _unknown_keys(pod_annotations)
    hints = PlacementHints(
        max_latency_ms=max_latency,
        data_region=data_region,
        egress_gb_per_hour=egress,
        allowed_regions=allowed,
        expected_runtime_hours=runtime,
    )
    return PodHintsResult(hints=hints, warnings=tuple(warnings))
