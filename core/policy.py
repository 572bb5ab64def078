"""EcoPulsePolicy and ClusterEcoPulsePolicy: parsed once from the wire, resolved for a pod. Pure.

The webhook, the extender, the rebalancer and fleet mode all call :func:`resolve` with the same
:class:`PolicySet`, so all four agree on which policy applies to a pod and what it asks.

Precedence, field by field (a layer that leaves a field unset lets the next one decide):

    pod annotation  >  namespace annotation  >  the most specific EcoPulsePolicy selecting the pod
        >  the ClusterEcoPulsePolicy (most specific) selecting it  >  the configuration file

"Most specific" is the policy whose selector has the most terms (matchLabels entries plus
matchExpressions). Two policies of one layer that select the same pod with the same number of
terms conflict: the oldest (creationTimestamp, then name) applies, and both are reported in
:attr:`Resolution.conflicts` so the status writer gives them a ``Conflict`` condition.

A policy the API server accepted but that cannot be honoured (a region the configuration does
not know) is ``Invalid``: it is left out of the set entirely, so it never blocks or steers a pod.

A policy's placement fields are kept in the annotations' own language (``ecopulse.io/...``
strings, rendered once at parse time), so precedence is a dict merge and one reader
(``core.podspec.placement_hints``) turns the result into hints for every path.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType

from core.config import EcoPulseConfiguration, PlacementMode
from core.deferral_hints import MAX_DEFERRAL_HOURS, go_duration_seconds
from core.model import (
    ALLOWED_REGIONS_ANNOTATION,
    DATA_REGION_ANNOTATION,
    EGRESS_ANNOTATION,
    EXPECTED_RUNTIME_ANNOTATION,
    FINISH_WITHIN_ANNOTATION,
    MAX_LATENCY_ANNOTATION,
    OPT_OUT_ANNOTATION,
)
from core.yaml_input import not_a_string

GROUP_VERSION = "ecopulse.io/v1alpha1"
NAMESPACED_KIND = "EcoPulsePolicy"
CLUSTER_KIND = "ClusterEcoPulsePolicy"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class PolicyError(ValueError):
    """The object is not a policy we can read; the message names the field."""


class PolicyMode(StrEnum):
    PREFERRED = "preferred"
    REQUIRED = "required"
    OFF = "off"


class Rebalance(StrEnum):
    ALLOW = "allow"
    NEVER = "never"


class Operator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


@dataclass(frozen=True, slots=True, kw_only=True)
class Requirement:
    key: str
    operator: Operator
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        if self.operator is Operator.IN:
            return value is not None and value in self.values
        if self.operator is Operator.NOT_IN:
            return value is None or value not in self.values
        if self.operator is Operator.EXISTS:
            return value is not None
        return value is None


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelSelector:
    """metav1.LabelSelector; the empty selector selects everything."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[Requirement, ...] = ()

    @property
    def terms(self) -> int:
        return len(self.match_labels) + len(self.match_expressions)

    def matches(self, labels: Mapping[str, str]) -> bool:
        for key, value in self.match_labels:
            if labels.get(key) != value:
                return False
        return all(requirement.matches(labels) for requirement in self.match_expressions)


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicySpec:
    """What a policy asks; None leaves the field to the next layer down."""

    mode: PolicyMode | None = None
    allowed_regions: frozenset[str] | None = None
    max_latency_ms: float | None = None
    data_region: str | None = None
    egress_gb_per_hour: float | None = None
    expected_runtime_hours: float | None = None
    min_net_benefit_usd: float | None = None
    rebalance: Rebalance | None = None
    max_unavailable: int | str | None = None  # an integer, or a percentage such as "25%"
    # spec.deferral (docs/deferral.md): the selected Jobs' default finish-within (a Go duration,
    # kept as written) and run length; deferral.expectedRuntimeHours wins over the top-level one.
    finish_within: str | None = None
    # Lets the rebalancer evict run-to-completion pods (Jobs) it selects, their lost progress priced.
    evict_run_to_completion: bool | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    kind: str  # NAMESPACED_KIND or CLUSTER_KIND
    name: str
    namespace: str = ""  # "" for a ClusterEcoPulsePolicy
    uid: str = ""
    generation: int = 0
    created_at: datetime = _EPOCH
    selector: LabelSelector = field(default_factory=LabelSelector)
    spec: PolicySpec = field(default_factory=PolicySpec)
    # Derived once: the placement fields as ecopulse.io/ annotation values.
    annotations: Mapping[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "annotations", MappingProxyType(_as_annotations(self.spec)))

    @property
    def ref(self) -> str:
        """How logs, pod annotations and status name it: Kind/name or Kind/namespace/name."""
        if self.namespace:
            return f"{self.kind}/{self.namespace}/{self.name}"
        return f"{self.kind}/{self.name}"

    @property
    def key(self) -> str:
        """The reflector's key for the object (namespace/name, or name)."""
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    @property
    def order(self) -> tuple[datetime, str, str]:
        """Oldest first; ties broken by name so every replica agrees."""
        return (self.created_at, self.namespace, self.name)


def _number(value: float) -> str:
    return repr(float(value))


def _as_annotations(spec: PolicySpec) -> dict[str, str]:
    annotations: dict[str, str] = {}
    if spec.allowed_regions is not None:
        annotations[ALLOWED_REGIONS_ANNOTATION] = ",".join(sorted(spec.allowed_regions))
    if spec.max_latency_ms is not None:
        annotations[MAX_LATENCY_ANNOTATION] = _number(spec.max_latency_ms)
    if spec.data_region is not None:
        annotations[DATA_REGION_ANNOTATION] = spec.data_region
    if spec.egress_gb_per_hour is not None:
        annotations[EGRESS_ANNOTATION] = _number(spec.egress_gb_per_hour)
    if spec.expected_runtime_hours is not None:
        annotations[EXPECTED_RUNTIME_ANNOTATION] = _number(spec.expected_runtime_hours)
    if spec.finish_within is not None:
        annotations[FINISH_WITHIN_ANNOTATION] = spec.finish_within
    return annotations


# ---------------------------------------------------------------------------------------------
# Parsing: the API server validated the object against the CRD schema already; this reader is
# still strict (fleet mode and tests hand it records from elsewhere) and names what it refuses.


def _mapping(value: object, where: str) -> Mapping[str, object]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PolicyError(f"{where}: must be an object")
    return value


def _string(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise PolicyError(f"{where}: {not_a_string(value)}")
    return value


def _optional_number(
    spec: Mapping[str, object], name: str, *, minimum: float, positive: bool
) -> float | None:
    value = spec.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PolicyError(f"spec.{name}: must be a number")
    if value < minimum or (positive and value <= 0):
        raise PolicyError(f"spec.{name}: out of range")
    return float(value)


def _selector(raw: object) -> LabelSelector:
    selector = _mapping(raw, "spec.selector")
    labels = _mapping(selector.get("matchLabels"), "spec.selector.matchLabels")
    match_labels = []
    for key, value in labels.items():
        if not isinstance(value, str):
            raise PolicyError(f"spec.selector.matchLabels.{key}: must be a string")
        match_labels.append((str(key), value))
    expressions = selector.get("matchExpressions") or []
    if not isinstance(expressions, list):
        raise PolicyError("spec.selector.matchExpressions: must be a list")
    requirements = []
    for index, item in enumerate(expressions):
        where = f"spec.selector.matchExpressions[{index}]"
        entry = _mapping(item, where)
        try:
            operator = Operator(str(entry.get("operator")))
        except ValueError:
            raise PolicyError(f"{where}.operator: must be In, NotIn, Exists or DoesNotExist") from None
        values = entry.get("values") or []
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise PolicyError(f"{where}.values: must be a list of strings")
        if (operator in (Operator.IN, Operator.NOT_IN)) != bool(values):
            raise PolicyError(f"{where}.values: must be non-empty for In and NotIn only")
        requirements.append(
            Requirement(
                key=_string(entry.get("key"), f"{where}.key"), operator=operator, values=frozenset(values)
            )
        )
    return LabelSelector(match_labels=tuple(sorted(match_labels)), match_expressions=tuple(requirements))


def _max_unavailable(value: object) -> int | str | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    if (
        isinstance(value, str)
        and value.endswith("%")
        and value[:-1].isdigit()
        and 1 <= int(value[:-1]) <= 100
    ):
        return value
    raise PolicyError("spec.maxUnavailable: must be an integer >= 1 or a percentage from 1% to 100%")


def _created(value: object) -> datetime:
    if not isinstance(value, str):
        return _EPOCH
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return _EPOCH
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def parse_spec(raw: object) -> tuple[LabelSelector, PolicySpec]:
    spec = _mapping(raw, "spec")
    mode = spec.get("mode")
    rebalance = spec.get("rebalance")
    regions = spec.get("allowedRegions")
    try:
        parsed_mode = PolicyMode(str(mode)) if mode is not None else None
    except ValueError:
        raise PolicyError("spec.mode: must be preferred, required or off") from None
    try:
        parsed_rebalance = Rebalance(str(rebalance)) if rebalance is not None else None
    except ValueError:
        raise PolicyError("spec.rebalance: must be allow or never") from None
    allowed: frozenset[str] | None = None
    if regions is not None:
        if not isinstance(regions, list) or not regions:
            raise PolicyError("spec.allowedRegions: must be a non-empty list of region names")
        allowed = frozenset(_string(r, f"spec.allowedRegions[{i}]") for i, r in enumerate(regions))
    data_region = spec.get("dataRegion")
    finish_within, deferral_runtime = _deferral(spec.get("deferral"))
    runtime = _optional_number(spec, "expectedRuntimeHours", minimum=0.0, positive=True)
    evict_run_to_completion = spec.get("evictRunToCompletion")
    if evict_run_to_completion is not None and not isinstance(evict_run_to_completion, bool):
        raise PolicyError("spec.evictRunToCompletion: must be true or false")
    return _selector(spec.get("selector")), PolicySpec(
        mode=parsed_mode,
        allowed_regions=allowed,
        max_latency_ms=_optional_number(spec, "maxLatencyMs", minimum=0.0, positive=True),
        data_region=_string(data_region, "spec.dataRegion") if data_region is not None else None,
        egress_gb_per_hour=_optional_number(spec, "egressGbPerHour", minimum=0.0, positive=False),
        expected_runtime_hours=deferral_runtime if deferral_runtime is not None else runtime,
        min_net_benefit_usd=_optional_number(spec, "minNetBenefitUsd", minimum=-math.inf, positive=False),
        rebalance=parsed_rebalance,
        max_unavailable=_max_unavailable(spec.get("maxUnavailable")),
        finish_within=finish_within,
        evict_run_to_completion=evict_run_to_completion,
    )


def _deferral(raw: object) -> tuple[str | None, float | None]:
    """spec.deferral: {finishWithin, expectedRuntimeHours}, both optional."""
    deferral = _mapping(raw, "spec.deferral")
    unknown = sorted(set(deferral) - {"finishWithin", "expectedRuntimeHours"})
    if unknown:
        raise PolicyError(f"spec.deferral.{unknown[0]}: unknown field")
    within = deferral.get("finishWithin")
    if within is not None:
        text = _string(within, "spec.deferral.finishWithin")
        try:
            seconds = go_duration_seconds(text)
        except ValueError as error:
            raise PolicyError(f"spec.deferral.finishWithin: {error}") from None
        if not 0 < seconds <= MAX_DEFERRAL_HOURS * 3600:
            raise PolicyError(f"spec.deferral.finishWithin: must be > 0 and at most {MAX_DEFERRAL_HOURS:g}h")
        within = text
    try:
        runtime = _optional_number(deferral, "expectedRuntimeHours", minimum=0.0, positive=True)
    except PolicyError as error:
        raise PolicyError(str(error).replace("spec.", "spec.deferral.", 1)) from None
    if runtime is not None and runtime > MAX_DEFERRAL_HOURS:
        raise PolicyError("spec.deferral.expectedRuntimeHours: out of range")
    return within, runtime


def parse_policy(obj: Mapping[str, object]) -> Policy:
    """An EcoPulsePolicy or ClusterEcoPulsePolicy as the API server sends it, or PolicyError."""
    kind = obj.get("kind")
    if kind not in (NAMESPACED_KIND, CLUSTER_KIND):
        raise PolicyError(f"kind: must be {NAMESPACED_KIND} or {CLUSTER_KIND}")
    metadata = _mapping(obj.get("metadata"), "metadata")
    namespace = metadata.get("namespace") or ""
    if kind == NAMESPACED_KIND and not namespace:
        raise PolicyError("metadata.namespace: an EcoPulsePolicy lives in a namespace")
    generation = metadata.get("generation")
    selector, spec = parse_spec(obj.get("spec"))
    return Policy(
        kind=str(kind),
        name=_string(metadata.get("name"), "metadata.name"),
        namespace=str(namespace) if kind == NAMESPACED_KIND else "",
        uid=str(metadata.get("uid") or ""),
        generation=generation if isinstance(generation, int) else 0,
        created_at=_created(metadata.get("creationTimestamp")),
        selector=selector,
        spec=spec,
    )


# ---------------------------------------------------------------------------------------------
# Validation against the configuration, and the set the hot paths read.


def problems(policy: Policy, *, known_regions: frozenset[str]) -> tuple[str, ...]:
    """Why a schema-valid policy cannot be honoured here (each names the field), or ()."""
    found: list[str] = []
    known = ", ".join(sorted(known_regions))
    unknown = sorted((policy.spec.allowed_regions or frozenset()) - known_regions)
    if unknown:
        found.append(f"spec.allowedRegions: unknown regions {unknown[:5]} (configured: {known})")
    if policy.spec.data_region is not None and policy.spec.data_region not in known_regions:
        found.append(f"spec.dataRegion: unknown region {policy.spec.data_region!r} (configured: {known})")
    return tuple(found)


@dataclass(frozen=True, slots=True)
class _Index:
    """One layer's policies (a namespace's, or the cluster's) for lookup by a pod's labels.

    A policy with matchLabels can only match a pod carrying its first (key, value) pair, so it is
    filed under that pair; a pod's few labels then name the few policies worth testing, and a
    namespace with a thousand policies costs a review a handful of dict lookups, not a thousand
    selector tests. Policies without matchLabels are always tested.
    """

    by_label: Mapping[tuple[str, str], tuple[Policy, ...]]
    always: tuple[Policy, ...]
    rank: Mapping[int, int]  # id(policy) -> its place in the layer, oldest first

    @classmethod
    def of(cls, policies: tuple[Policy, ...]) -> _Index:
        by_label: dict[tuple[str, str], list[Policy]] = {}
        always: list[Policy] = []
        for policy in policies:
            if policy.selector.match_labels:
                by_label.setdefault(policy.selector.match_labels[0], []).append(policy)
            else:
                always.append(policy)
        return cls(
            by_label={pair: tuple(items) for pair, items in by_label.items()},
            always=tuple(always),
            rank={id(policy): index for index, policy in enumerate(policies)},
        )

    def candidates(self, labels: Mapping[str, str]) -> tuple[Policy, ...]:
        found = list(self.always)
        if self.by_label:
            for pair in labels.items():
                found.extend(self.by_label.get(pair, ()))
        if len(found) > 1:
            found.sort(key=lambda policy: self.rank[id(policy)])
        return tuple(found)


_NO_INDEX = _Index(by_label={}, always=(), rank={})


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicySet:
    """The valid policies, grouped for lookup: built once per change, read by every request."""

    namespaced: Mapping[str, tuple[Policy, ...]] = field(default_factory=dict)  # by namespace, oldest first
    cluster: tuple[Policy, ...] = ()  # oldest first
    invalid: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # ref -> problems
    all: tuple[Policy, ...] = ()  # every policy given, valid or not, oldest first
    _namespace_index: Mapping[str, _Index] = field(init=False, repr=False, compare=False)
    _cluster_index: _Index = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "_namespace_index", {ns: _Index.of(items) for ns, items in self.namespaced.items()}
        )
        object.__setattr__(self, "_cluster_index", _Index.of(self.cluster))

    def __len__(self) -> int:
        return len(self.all)

    @property
    def selects_nothing(self) -> bool:
        """No valid policy: every pod resolves to NO_POLICY (and its labels need not be read)."""
        return not self.cluster and not self.namespaced

    def candidates(
        self, namespace: str, labels: Mapping[str, str]
    ) -> tuple[tuple[Policy, ...], tuple[Policy, ...]]:
        """(namespaced, cluster) policies that may select a pod with these labels, oldest first."""
        index = self._namespace_index.get(namespace, _NO_INDEX)
        return index.candidates(labels), self._cluster_index.candidates(labels)


EMPTY_POLICY_SET = PolicySet()


def build_policy_set(policies: Iterable[Policy], *, known_regions: frozenset[str]) -> PolicySet:
    ordered = sorted(policies, key=lambda p: p.order)
    namespaced: dict[str, list[Policy]] = {}
    cluster: list[Policy] = []
    invalid: dict[str, tuple[str, ...]] = {}
    for policy in ordered:
        found = problems(policy, known_regions=known_regions)
        if found:
            invalid[policy.ref] = found
        elif policy.namespace:
            namespaced.setdefault(policy.namespace, []).append(policy)
        else:
            cluster.append(policy)
    return PolicySet(
        namespaced={ns: tuple(items) for ns, items in namespaced.items()},
        cluster=tuple(cluster),
        invalid=invalid,
        all=tuple(ordered),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Resolution:
    """Which policies apply to one pod, and what they ask (annotations still to be laid on top).

    What it asks is worked out once, here: the planner reads it for every pod of every cycle.
    """

    namespaced: Policy | None = None
    cluster: Policy | None = None
    # Policies of one layer tied for the pod (the winner first): each gets a Conflict condition.
    conflicts: tuple[Policy, ...] = ()
    applied: tuple[Policy, ...] = field(init=False)
    # What decision lines and the ecopulse.io/policy annotation say ("" when none applied).
    refs: str = field(init=False)
    mode: PolicyMode | None = field(init=False)
    rebalance: Rebalance | None = field(init=False)
    min_net_benefit_usd: float | None = field(init=False)
    max_unavailable: int | str | None = field(init=False)
    evict_run_to_completion: bool = field(init=False)  # only when a policy says so explicitly

    def __post_init__(self) -> None:
        applied = tuple(p for p in (self.namespaced, self.cluster) if p is not None)

        def first(name: str) -> object:
            for policy in applied:
                value = getattr(policy.spec, name)
                if value is not None:
                    return value
            return None

        mode, rebalance = first("mode"), first("rebalance")
        floor, limit = first("min_net_benefit_usd"), first("max_unavailable")
        derived = {
            "applied": applied,
            "refs": ",".join(p.ref for p in applied),
            "mode": mode if isinstance(mode, PolicyMode) else None,
            "rebalance": rebalance if isinstance(rebalance, Rebalance) else None,
            "min_net_benefit_usd": floor if isinstance(floor, float) else None,
            "max_unavailable": limit if isinstance(limit, int | str) else None,
            "evict_run_to_completion": first("evict_run_to_completion") is True,
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    def annotations(self, own: Mapping[str, str]) -> Mapping[str, str]:
        """``own`` (the pod's over its namespace's) over the namespaced policy over the cluster one."""
        if self.namespaced is None and self.cluster is None:
            return own
        merged: dict[str, str] = {}
        if self.cluster is not None:
            merged.update(self.cluster.annotations)
        if self.namespaced is not None:
            merged.update(self.namespaced.annotations)
        merged.update(own)
        return merged

    def opts_out(self, own: Mapping[str, str]) -> bool:
        """mode: off, unless the pod's own ecopulse.io/opt-out says "false" (the annotation wins)."""
        if self.mode is not PolicyMode.OFF:
            return False
        return own.get(OPT_OUT_ANNOTATION, "").strip().lower() != "false"


NO_POLICY = Resolution()


def _pick(
    candidates: tuple[Policy, ...], labels: Mapping[str, str]
) -> tuple[Policy | None, tuple[Policy, ...]]:
    """The most specific matching policy (oldest among equals), and the ties if there are any."""
    best: Policy | None = None
    ties: list[Policy] = []
    for policy in candidates:  # oldest first
        if not policy.selector.matches(labels):
            continue
        if best is None or policy.selector.terms > best.selector.terms:
            best, ties = policy, [policy]
        elif policy.selector.terms == best.selector.terms:
            ties.append(policy)
    return best, (tuple(ties) if len(ties) > 1 else ())


def resolve(policies: PolicySet, *, namespace: str, pod_labels: Mapping[str, str]) -> Resolution:
    """The policies that apply to a pod in ``namespace`` with ``pod_labels``. Pure, no I/O."""
    if policies.selects_nothing:
        return NO_POLICY
    in_namespace, in_cluster = policies.candidates(namespace, pod_labels)
    namespaced, namespaced_ties = _pick(in_namespace, pod_labels)
    cluster, cluster_ties = _pick(in_cluster, pod_labels)
    if namespaced is None and cluster is None:
        return NO_POLICY
    return Resolution(namespaced=namespaced, cluster=cluster, conflicts=namespaced_ties + cluster_ties)


# ---------------------------------------------------------------------------------------------
# The configuration a pod's placement is decided with: the file's, with the policy's mode and
# floor where it sets them. Derived configurations are shared, so memos keyed on a
# configuration's identity keep working across the pods of one policy.

_derived: dict[tuple[int, PlacementMode, float], tuple[EcoPulseConfiguration, EcoPulseConfiguration]] = {}


def placement_config(config: EcoPulseConfiguration, resolution: Resolution) -> EcoPulseConfiguration:
    mode = resolution.mode
    floor = resolution.min_net_benefit_usd
    if (mode is None or mode is PolicyMode.OFF) and floor is None:
        return config
    placement = config.placement
    wanted_mode = placement.mode if mode is None or mode is PolicyMode.OFF else PlacementMode(str(mode))
    wanted_floor = placement.min_net_benefit_usd if floor is None else floor
    if wanted_mode is placement.mode and wanted_floor == placement.min_net_benefit_usd:
        return config
    key = (id(config), wanted_mode, wanted_floor)
    cached = _derived.get(key)
    if cached is not None and cached[0] is config:
        return cached[1]
    if len(_derived) > 256:  # old configurations' entries: bounded, rebuilt on demand
        _derived.clear()
    derived = replace(
        config, placement=replace(placement, mode=wanted_mode, min_net_benefit_usd=wanted_floor)
    )
    _derived[key] = (config, derived)
    return derived


# ---------------------------------------------------------------------------------------------
# Status: what the rebalancer's status writer reads back (cumulative totals, transition times).


@dataclass(frozen=True, slots=True, kw_only=True)
class Condition:
    type: str
    status: str  # "True", "False" or "Unknown"
    reason: str
    message: str = ""
    last_transition_time: str = ""
    observed_generation: int = 0

    def to_wire(self) -> dict[str, object]:
        return {
            "type": self.type,
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
            "lastTransitionTime": self.last_transition_time,
            "observedGeneration": self.observed_generation,
        }


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _float(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return 0.0
    return float(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyStatus:
    observed_generation: int = 0
    conditions: tuple[Condition, ...] = ()
    pods_matched: int = 0
    pods_placed_last_hour: int = 0
    pods_moved_last_hour: int = 0
    carbon_avoided_grams: float = 0.0
    cost_saved_usd: float = 0.0

    def condition(self, kind: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == kind), None)

    @classmethod
    def from_wire(cls, raw: object) -> PolicyStatus:
        status = raw if isinstance(raw, Mapping) else {}
        conditions = []
        for item in status.get("conditions") or ():
            if isinstance(item, Mapping) and isinstance(item.get("type"), str):
                conditions.append(
                    Condition(
                        type=str(item["type"]),
                        status=str(item.get("status", "Unknown")),
                        reason=str(item.get("reason", "")),
                        message=str(item.get("message", "")),
                        last_transition_time=str(item.get("lastTransitionTime", "")),
                        observed_generation=_int(item.get("observedGeneration")),
                    )
                )
        return cls(
            observed_generation=_int(status.get("observedGeneration")),
            conditions=tuple(conditions),
            pods_matched=_int(status.get("podsMatched")),
            pods_placed_last_hour=_int(status.get("podsPlacedLastHour")),
            pods_moved_last_hour=_int(status.get("podsMovedLastHour")),
            carbon_avoided_grams=_float(status.get("carbonAvoidedGrams")),
            cost_saved_usd=_float(status.get("costSavedUsd")),
        )

    def to_wire(self) -> dict[str, object]:
        return {
            "observedGeneration": self.observed_generation,
            "conditions": [c.to_wire() for c in self.conditions],
            "podsMatched": self.pods_matched,
            "podsPlacedLastHour": self.pods_placed_last_hour,
            "podsMovedLastHour": self.pods_moved_last_hour,
            # Fine enough that one small interval's increment is never rounded away.
            "carbonAvoidedGrams": round(self.carbon_avoided_grams, 6),
            "costSavedUsd": round(self.cost_saved_usd, 9),
        }
