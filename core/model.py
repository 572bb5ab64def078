"""Domain values shared by every app: regions, signals, pod demand and hints.

Everything here is a frozen, slotted, keyword-only dataclass: built once at a boundary
(config file, provider response, admission review, watch event) and passed down unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple, Protocol

REGION_LABEL = "topology.kubernetes.io/region"
# Karpenter's label; the most common way clusters say whether a node is spot.
CAPACITY_TYPE_LABEL = "karpenter.sh/capacity-type"

ANNOTATION_PREFIX = "ecopulse.io/"
OPT_OUT_ANNOTATION = "ecopulse.io/opt-out"
OPT_OUT_LABEL = "ecopulse.io/opt-out"
MAX_LATENCY_ANNOTATION = "ecopulse.io/max-latency-ms"
DATA_REGION_ANNOTATION = "ecopulse.io/data-region"
EGRESS_ANNOTATION = "ecopulse.io/egress-gb-per-hour"
ALLOWED_REGIONS_ANNOTATION = "ecopulse.io/allowed-regions"
EXPECTED_RUNTIME_ANNOTATION = "ecopulse.io/expected-runtime-hours"
PREFERRED_REGION_ANNOTATION = "ecopulse.io/preferred-region"
DECISION_ANNOTATION = "ecopulse.io/decision"
# The EcoPulsePolicy (or ClusterEcoPulsePolicy) refs that applied when the webhook placed a pod.
POLICY_ANNOTATION = "ecopulse.io/policy"
# Deferrable Jobs (docs/deferral.md): when a Job must have finished, from creation or absolute;
# and the hold the webhook records (when it held the Job, the instant it must be released by).
FINISH_WITHIN_ANNOTATION = "ecopulse.io/finish-within"
DEADLINE_ANNOTATION = "ecopulse.io/deadline"
HELD_AT_ANNOTATION = "ecopulse.io/held-at"
RELEASE_BY_ANNOTATION = "ecopulse.io/release-by"
RELEASED_AT_ANNOTATION = "ecopulse.io/released-at"
DEFERRAL_ANNOTATIONS = frozenset(
    {
        FINISH_WITHIN_ANNOTATION,
        DEADLINE_ANNOTATION,
        HELD_AT_ANNOTATION,
        RELEASE_BY_ANNOTATION,
        RELEASED_AT_ANNOTATION,
    }
)
# The annotations that change a pod's placement (all a slim pod record keeps of them).
HINT_ANNOTATIONS = frozenset(
    {
        OPT_OUT_ANNOTATION,
        MAX_LATENCY_ANNOTATION,
        DATA_REGION_ANNOTATION,
        EGRESS_ANNOTATION,
        ALLOWED_REGIONS_ANNOTATION,
        EXPECTED_RUNTIME_ANNOTATION,
    }
)
# Every ecopulse.io/ key we read or write on pods and namespaces; any other is a user's typo.
KNOWN_ANNOTATIONS = (
    HINT_ANNOTATIONS
    | DEFERRAL_ANNOTATIONS
    | {PREFERRED_REGION_ANNOTATION, DECISION_ANNOTATION, POLICY_ANNOTATION}
)
# Never ours to place or move: the control plane's own namespaces.
SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})
# Pods at or above this priority are the cluster's own (system-cluster-critical, system-node-critical).
SYSTEM_CRITICAL_PRIORITY = 2_000_000_000
# The kubelet's marks on static pods: the mirror pod it creates at the API, and where a pod came from.
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
STATIC_SOURCE_ANNOTATION = "kubernetes.io/config.source"


class CapacityType(StrEnum):
    ON_DEMAND = "on-demand"
    SPOT = "spot"


@dataclass(frozen=True, slots=True, kw_only=True)
class NamespaceInfo:
    """A namespace as placement reads it: its opt-out label and its ecopulse.io/ annotations
    (defaults for its pods)."""

    opted_out: bool = False
    hint_annotations: Mapping[str, str] = field(default_factory=dict)


class SubjectView(Protocol):
    """What the never-managed rule reads of an object: a Subject, or a record that has the same
    attributes (PodRecord does, so the rebalancer asks the rule of its cache without a copy)."""

    @property
    def namespace(self) -> str: ...
    @property
    def labels(self) -> Mapping[str, str]: ...
    @property
    def annotations(self) -> Mapping[str, str]: ...
    @property
    def owner_kinds(self) -> tuple[str, ...]: ...
    @property
    def mirror(self) -> bool: ...
    @property
    def static(self) -> bool: ...


class Subject(NamedTuple):
    """An object as the never-managed rule (core.managed) reads it: a pod being admitted, scheduled
    or moved, or a workload in fleet mode. Each app builds one at its edge: on every admission, so
    an immutable tuple (built in C) rather than a frozen dataclass (a setattr per field)."""

    namespace: str
    labels: Mapping[str, str]  # the object's own; only ecopulse.io/opt-out is read
    annotations: Mapping[str, str]  # the object's own; the namespace's defaults are the rule's to apply
    owner_kinds: tuple[str, ...] = ()  # kinds of its owner references
    mirror: bool = False  # a static pod's mirror at the API
    static: bool = False  # a pod the kubelet runs from a file or URL


@dataclass(frozen=True, slots=True, kw_only=True)
class Region:
    """A value of the node label topology.kubernetes.io/region and the grid zone it draws from."""

    name: str
    zone: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ForecastPoint:
    at: datetime
    carbon_g_per_kwh: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CarbonObservation:
    """What a provider said about one region's grid, before caching."""

    carbon_g_per_kwh: float
    observed_at: datetime  # the instant the provider says the value describes
    forecast: tuple[ForecastPoint, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class CarbonSignal:
    """A cached observation: the value, when it was true, when we got it, and from whom."""

    region: str
    zone: str
    carbon_g_per_kwh: float
    observed_at: datetime
    fetched_at: datetime
    source: str
    forecast: tuple[ForecastPoint, ...] = ()

    def age_seconds(self, now: datetime) -> float:
        return max(0.0, (now - self.fetched_at).total_seconds())


@dataclass(frozen=True, slots=True, kw_only=True)
class SignalSnapshot:
    """The fresh signals at one instant. A region missing here is unknown: do nothing about it.

    ``prices`` are the price signal's quotes (core.signals.prices); a region without one is priced
    from the configuration's table (``EcoPulseConfiguration.prices``), as before prices were live.
    """

    taken_at: datetime
    provider: str
    carbon: dict[str, CarbonSignal] = field(default_factory=dict)
    prices: Mapping[str, PriceQuote] = field(default_factory=dict)

    def known(self, region: str) -> CarbonSignal | None:
        return self.carbon.get(region)

    def price_rates(self, region: str) -> PriceRates | None:
        quote = self.prices.get(region)
        return quote.rates if quote is not None else None

    def price_table(self) -> dict[str, PriceRates]:
        """The live rates of every region with a quote (the rest are priced from the configuration)."""
        return {region: quote.rates for region, quote in self.prices.items()}

    def price_sources(self) -> str:
        """The sources of every quote, e.g. ``azure`` or ``azure+static(fallback)``; "" without quotes."""
        return "+".join(sorted({quote.source for quote in self.prices.values()}))

    def max_price_age_seconds(self) -> float:
        """The oldest fetched quote's age; bundled and configured prices have none (0)."""
        ages = [quote.age_seconds(self.taken_at) for quote in self.prices.values()]
        return max((age for age in ages if age is not None), default=0.0)

    def prices_note(self) -> str:
        """How a decision names its prices: ``prices azure age<=120s`` (``config``: the configuration's
        table, when the snapshot carries no quotes)."""
        return f"prices {self.price_sources() or 'config'} age<={self.max_price_age_seconds():.0f}s"

    def max_age_seconds(self) -> float:
        if not self.carbon:
            return 0.0
        return max(signal.age_seconds(self.taken_at) for signal in self.carbon.values())


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceRates:
    """List prices of one region, USD per vCPU-hour and per GiB-hour of memory."""

    vcpu_hour_usd: float
    gib_hour_usd: float
    spot_vcpu_hour_usd: float
    spot_gib_hour_usd: float
    source: str = ""

    def per_hour_usd(self, *, cpu_cores: float, memory_gib: float, capacity_type: CapacityType) -> float:
        if capacity_type is CapacityType.SPOT:
            return cpu_cores * self.spot_vcpu_hour_usd + memory_gib * self.spot_gib_hour_usd
        return cpu_cores * self.vcpu_hour_usd + memory_gib * self.gib_hour_usd


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceQuote:
    """One region's prices as a decision uses them, with their provenance: who said so and when.

    ``source`` names the provider (``azure``), ``config`` for an operator's ``prices:`` entry, or
    ``static(fallback)`` when the live value was too old; ``spot_source`` differs when a provider
    had no spot price for the region. ``fetched_at`` is None for bundled and configured prices.
    """

    rates: PriceRates
    source: str
    spot_source: str
    fetched_at: datetime | None = None

    def age_seconds(self, now: datetime) -> float | None:
        if self.fetched_at is None:
            return None
        return max(0.0, (now - self.fetched_at).total_seconds())


@dataclass(frozen=True, slots=True, kw_only=True)
class PodDemand:
    """What a pod asks for (sum of container requests, with init containers as the scheduler counts them)."""

    cpu_cores: float
    memory_gib: float
    capacity_type: CapacityType = CapacityType.ON_DEMAND
    # True when the pod's nodeSelector names a capacity-type label: it runs on capacity_type only.
    # Otherwise it lands on whatever its region offers (core.placement.landing_capacity).
    capacity_constrained: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class PlacementHints:
    """Refinements a pod (or its namespace) gives through ecopulse.io/ annotations."""

    max_latency_ms: float | None = None
    data_region: str | None = None
    egress_gb_per_hour: float = 0.0
    allowed_regions: frozenset[str] | None = None
    expected_runtime_hours: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyPlacement:
    """The ecopulse.io/policy annotation the webhook wrote on a pod, and when the pod was created:
    what a policy's status counts. One field on the few pods that have it, none on the others."""

    refs: str
    created_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class PodRecord:
    """A scheduled pod, reduced to what the rebalancer decides on (a few hundred bytes, not a V1Pod)."""

    namespace: str
    name: str
    uid: str
    node_name: str
    phase: str
    ready: bool
    deleting: bool
    started_at: datetime | None
    owner_kind: str | None  # the controller owner reference, if any
    owner_name: str | None
    demand: PodDemand
    hint_annotations: Mapping[str, str]  # only ecopulse.io/ keys
    mirror: bool
    static: bool
    priority: int
    local_storage: bool  # emptyDir or hostPath volumes
    pvc: bool
    labels: Mapping[str, str] = field(default_factory=dict)  # interned: the opt-out, policy selectors
    owner_api_version: str = ""  # the controller owner's, as its reference says ("" if none)
    placed: PolicyPlacement | None = None  # only on pods the webhook placed by a policy
    # A Job's pod, or any pod with restartPolicy Never or OnFailure: evicting it throws away its progress.
    run_to_completion: bool = False

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def workload(self) -> str | None:
        if self.owner_kind is None:
            return None
        return f"{self.namespace}/{self.owner_kind}/{self.owner_name}"

    # With namespace, labels, mirror and static these make a PodRecord a SubjectView: the rule
    # (core.managed) reads the cache's records as they are, with no copy per pod and cycle.
    @property
    def annotations(self) -> Mapping[str, str]:
        return self.hint_annotations

    @property
    def owner_kinds(self) -> tuple[str, ...]:
        return (self.owner_kind,) if self.owner_kind is not None else ()

    @property
    def subject(self) -> Subject:
        """The pod as a Subject value (the rule also reads the record itself)."""
        return Subject(
            namespace=self.namespace,
            labels=self.labels,
            annotations=self.hint_annotations,
            owner_kinds=self.owner_kinds,
            mirror=self.mirror,
            static=self.static,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeRecord:
    name: str
    region: str | None
    capacity_type: CapacityType
    allocatable_cpu_cores: float
    allocatable_memory_gib: float
    schedulable: bool  # not cordoned, Ready, no NoSchedule/NoExecute taint
