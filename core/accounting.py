"""Carbon and cost accounting: what running pods used, emitted and cost over an interval. Pure.

Methodology (the README's "How savings are counted" says the same, for auditors):

- Energy: the power model of ``core.power`` on each pod's requests (Cloud Carbon Footprint
  coefficients, PUE included), times the interval.
- Emissions: location-based, at the average grid intensity of the pod's region as the signal
  provider reports it at the end of the interval (lifecycle or direct, whatever the provider
  gives; the bundled offline table is lifecycle). Market-based figures (certificates, PPAs)
  are never used: they would credit a move with purchases it did not cause.
- Baseline: the same pod, same requests and capacity type, in the configured baseline region,
  at that region's intensity and list prices at the same instant.
- Avoided = baseline emissions - emissions; saved = baseline cost - cost. Both are signed:
  a region dirtier or dearer than the baseline yields a negative figure, kept as it is.
- Cost is compute at the prices in force (the price signal's quotes, else the configuration's
  table; on-demand or spot, from the node's capacity type). Egress and latency are decision
  terms, not metered here.

A pod whose region or whose baseline has no usable signal is not accounted for that interval;
its pod-seconds are reported as skipped with the reason, never guessed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from core.config import EcoPulseConfiguration
from core.model import CapacityType, CarbonSignal, PodDemand, SignalSnapshot
from core.power import emissions_grams, pod_energy_kwh

SECONDS_PER_HOUR = 3600.0


class Skipped(StrEnum):
    UNKNOWN_REGION = "unknown-region"  # node has no region label, or a region not in the config
    REGION_SIGNAL_UNKNOWN = "region-signal-unknown"
    BASELINE_SIGNAL_UNKNOWN = "baseline-signal-unknown"
    NO_PRICE = "no-price"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunningPod:
    """One pod to account: where it runs and what it asks for."""

    namespace: str
    region: str | None
    capacity_type: CapacityType
    demand: PodDemand
    # The policies that govern it (core.policy refs): each is credited with what the pod avoided.
    policies: tuple[str, ...] = ()


@dataclass(slots=True)
class Accrual:
    """Sums for one (namespace, region) over one interval."""

    pods: int = 0
    pod_seconds: float = 0.0
    energy_kwh: float = 0.0
    emissions_grams: float = 0.0
    baseline_emissions_grams: float = 0.0
    cost_usd: float = 0.0
    baseline_cost_usd: float = 0.0

    def add(self, other: Accrual) -> None:
        self.pods += other.pods
        self.pod_seconds += other.pod_seconds
        self.energy_kwh += other.energy_kwh
        self.emissions_grams += other.emissions_grams
        self.baseline_emissions_grams += other.baseline_emissions_grams
        self.cost_usd += other.cost_usd
        self.baseline_cost_usd += other.baseline_cost_usd

    @property
    def avoided_grams(self) -> float:
        return self.baseline_emissions_grams - self.emissions_grams

    @property
    def saved_usd(self) -> float:
        return self.baseline_cost_usd - self.cost_usd


@dataclass(frozen=True, slots=True, kw_only=True)
class IntensityUsed:
    """The signal value an accrual used, so every figure can be traced to its source."""

    carbon_g_per_kwh: float
    observed_at: datetime
    source: str

    @classmethod
    def of(cls, signal: CarbonSignal) -> IntensityUsed:
        return cls(
            carbon_g_per_kwh=signal.carbon_g_per_kwh, observed_at=signal.observed_at, source=signal.source
        )


@dataclass(slots=True)
class Ledger:
    """One interval's accounting: per (namespace, region), plus what could not be accounted."""

    elapsed_seconds: float
    baseline_region: str
    accruals: dict[tuple[str, str], Accrual] = field(default_factory=dict)
    # The same figures per policy ref, for the policies' status (a pod may count for two).
    by_policy: dict[str, Accrual] = field(default_factory=dict)
    skipped_pod_seconds: dict[Skipped, float] = field(default_factory=dict)
    intensities: dict[str, IntensityUsed] = field(default_factory=dict)
    # Regions strictly cleaner than the baseline in this interval (the "green" share).
    cleaner_than_baseline: frozenset[str] = frozenset()

    def skip(self, reason: Skipped, seconds: float) -> None:
        self.skipped_pod_seconds[reason] = self.skipped_pod_seconds.get(reason, 0.0) + seconds

    def total(self) -> Accrual:
        total = Accrual()
        for accrual in self.accruals.values():
            total.add(accrual)
        return total


def accrue(
    pods: Iterable[RunningPod],
    *,
    signals: SignalSnapshot,
    config: EcoPulseConfiguration,
    elapsed_seconds: float,
) -> Ledger:
    """Integrate energy, emissions and cost of ``pods`` over ``elapsed_seconds``, against the baseline."""
    baseline = config.baseline_region
    seconds = max(0.0, elapsed_seconds)
    hours = seconds / SECONDS_PER_HOUR
    ledger = Ledger(elapsed_seconds=seconds, baseline_region=baseline)
    configured = {region.name for region in config.regions}
    baseline_signal = signals.known(baseline)
    # The price signal's quotes where the snapshot has them (core.signals.prices), else the table.
    baseline_prices = signals.price_rates(baseline) or config.prices.get(baseline)
    if baseline_signal is not None:
        ledger.intensities[baseline] = IntensityUsed.of(baseline_signal)
    cleaner: set[str] = set()
    for pod in pods:
        if pod.region is None or pod.region not in configured:
            ledger.skip(Skipped.UNKNOWN_REGION, seconds)
            continue
        signal = signals.known(pod.region)
        if signal is None:
            ledger.skip(Skipped.REGION_SIGNAL_UNKNOWN, seconds)
            continue
        if baseline_signal is None:
            ledger.skip(Skipped.BASELINE_SIGNAL_UNKNOWN, seconds)
            continue
        prices = signals.price_rates(pod.region) or config.prices.get(pod.region)
        if prices is None or baseline_prices is None:
            ledger.skip(Skipped.NO_PRICE, seconds)
            continue
        if pod.region not in ledger.intensities:
            ledger.intensities[pod.region] = IntensityUsed.of(signal)
            if signal.carbon_g_per_kwh < baseline_signal.carbon_g_per_kwh:
                cleaner.add(pod.region)
        energy = pod_energy_kwh(pod.demand, config.power, hours=hours)
        cpu, memory, capacity = pod.demand.cpu_cores, pod.demand.memory_gib, pod.capacity_type
        accrual = ledger.accruals.setdefault((pod.namespace, pod.region), Accrual())
        this = Accrual(
            pods=1,
            pod_seconds=seconds,
            energy_kwh=energy,
            emissions_grams=emissions_grams(energy, signal.carbon_g_per_kwh),
            baseline_emissions_grams=emissions_grams(energy, baseline_signal.carbon_g_per_kwh),
            cost_usd=prices.per_hour_usd(cpu_cores=cpu, memory_gib=memory, capacity_type=capacity) * hours,
            baseline_cost_usd=baseline_prices.per_hour_usd(
                cpu_cores=cpu, memory_gib=memory, capacity_type=capacity
            )
            * hours,
        )
        accrual.add(this)
        for ref in pod.policies:
            ledger.by_policy.setdefault(ref, Accrual()).add(this)
    ledger.cleaner_than_baseline = frozenset(cleaner)
    return ledger


def by_namespace(ledger: Ledger) -> Mapping[str, Accrual]:
    """The ledger summed over regions, for the decision log."""
    totals: dict[str, Accrual] = {}
    for (namespace, _region), accrual in ledger.accruals.items():
        totals.setdefault(namespace, Accrual()).add(accrual)
    return totals


class Interval:
    """The accounting interval of a leader's ticks, on a monotonic clock (injected: no clock here).

    The first tick after start, or after ``reset`` (another replica accounted meanwhile, and that
    time must never count twice), opens the interval: it accrues 0 seconds.
    """

    __slots__ = ("_last_tick", "_monotonic")

    def __init__(self, monotonic: Callable[[], float]) -> None:
        self._monotonic = monotonic
        self._last_tick: float | None = None

    def reset(self) -> None:
        self._last_tick = None

    def accrue(
        self, pods: Iterable[RunningPod], *, signals: SignalSnapshot, config: EcoPulseConfiguration
    ) -> Ledger:
        """``pods`` over the seconds since the last tick (``accrue``); this tick starts the next interval."""
        now = self._monotonic()
        elapsed = 0.0 if self._last_tick is None else now - self._last_tick
        self._last_tick = now
        return accrue(pods, signals=signals, config=config, elapsed_seconds=elapsed)
