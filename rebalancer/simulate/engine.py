"""The replay: one trace, one simulated cluster, four policies side by side.

- ``carbon-blind``: every pod stays in its workload's startRegion;
- ``static-best`` (hindsight): one placement for the whole trace, greedily filling each workload into
  the eligible regions that cost it least at the MEAN intensity over the trace, within capacity;
- ``hourly-oracle`` (hindsight): every hour, the same greedy fill at that hour's intensities;
  moves are free;
- ``carbon-oracle`` (hindsight): every hour, the greedy fill by that hour's intensity alone, blind
  to prices and egress: the most carbon any placement within capacity and latency could avoid;
- ``ecopulse``: what the cluster would do live. Each hour (every ``rebalancer.intervalSeconds`` of
  simulated time within it) the real ``rebalancer.planner.plan`` sees a SignalSnapshot with that
  hour's values (and, when the configured provider forecasts, ``carbon.forecast_hours`` of the
  trace's next hours as the forecast: a perfect one) and slim records of the simulated cluster (one
  node per region, the region's capacity as allocatable); the real ``rebalancer.evictor.Evictor``
  evicts through a simulated Eviction API that honours each workload's maxUnavailable like a
  PodDisruptionBudget (per hour); the simulated ReplicaSet recreates the pod, with its age reset (so
  minPodAgeSeconds is the cooldown), where the scheduler would put it: the first region with room
  among those the webhook (``core.placement.choose_regions`` over ``rank_regions``) puts in its
  node affinity.

One measuring stick: what a pod costs in a region for an hour is ``core.economics.region_cost`` (the
function the planner prices moves with), so the greedy policies rank regions by the same total
(compute + priced carbon + egress + latency penalty) the cluster decides by, and a move's realised
net benefit is ``core.economics.net_benefit`` over its horizon at the intensities that followed.

Accounting per policy and hour: energy, emissions at the region's actual intensity that hour,
compute cost from the configured prices, egress cost for pods running away from their data region
(else the baseline region), all from ``region_cost``; migrations counted as pods changing region.

Per-hour work is proportional to workloads, not pods: pods of a workload that share a region and a
start time (all pods past minPodAgeSeconds count as one group) are one group, and the planner sees
only as many replicas of a group as could be evicted from it in one cycle; the rest of the usage is
taken off the node's allocatable, which is what the planner computes free room from.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from core.config import EcoPulseConfiguration
from core.economics import RegionCost, horizon_hours, mean_intensity_g_per_kwh, net_benefit, region_cost
from core.history import IntensityHistory
from core.kube.caches import NodeRecord, PodRecord, intern_demand
from core.kube.events import EventRequest
from core.model import (
    ALLOWED_REGIONS_ANNOTATION,
    DATA_REGION_ANNOTATION,
    EGRESS_ANNOTATION,
    EXPECTED_RUNTIME_ANNOTATION,
    MAX_LATENCY_ANNOTATION,
    CapacityType,
    CarbonSignal,
    ForecastPoint,
    PlacementHints,
    PodDemand,
    PriceQuote,
    PriceRates,
    SignalSnapshot,
)
from core.placement import PlacementChoice, choose_regions, rank_regions
from core.podspec import placement_hints
from core.signals.prices.replay import PriceHistory
from core.trace import Trace
from rebalancer.evictor import Evictor
from rebalancer.kubeapi import EvictionOutcome, EvictionRequest, EvictionResult
from rebalancer.planner import plan
from rebalancer.simulate.forecast import ForecastModel, replay_forecaster
from rebalancer.simulate.workload import SimulatedWorkload, Workload

CARBON_BLIND = "carbon-blind"
STATIC_BEST = "static-best"
HOURLY_ORACLE = "hourly-oracle"
ECOPULSE = "ecopulse"
CARBON_ORACLE = "carbon-oracle"
POLICIES = (CARBON_BLIND, STATIC_BEST, HOURLY_ORACLE, ECOPULSE)
# Every policy replayed and reported: the carbon oracle bounds the carbon any placement could avoid.
REPORTED = (CARBON_BLIND, STATIC_BEST, HOURLY_ORACLE, CARBON_ORACLE, ECOPULSE)
# Pods already running when the trace starts are old enough to move.
_ANCIENT = timedelta(days=3650)
_EPS = 1e-9


@dataclass(frozen=True, slots=True, kw_only=True)
class MoveRecord:
    time: datetime
    hour: int
    workload: str
    source: str
    target: str
    predicted_net_benefit_usd: float
    realised_net_benefit_usd: float


@dataclass(slots=True)
class PolicyResult:
    name: str
    emissions_grams: float = 0.0
    energy_kwh: float = 0.0
    compute_usd: float = 0.0
    spot_compute_usd: float = 0.0  # the part paid by spot workloads
    egress_usd: float = 0.0
    migrations: int = 0
    pod_hours: float = 0.0
    # per hour: pods per region (config order), cumulative emissions
    pods_per_region: list[tuple[int, ...]] = field(default_factory=list)
    cumulative_grams: list[float] = field(default_factory=list)
    moves: list[MoveRecord] = field(default_factory=list)

    @property
    def migrations_per_pod_day(self) -> float:
        return self.migrations / (self.pod_hours / 24.0) if self.pod_hours > 0 else 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulationResult:
    regions: tuple[str, ...]
    zones: tuple[str, ...]
    times: tuple[datetime, ...]
    intensity: tuple[tuple[float, ...], ...]  # per region, per hour
    policies: Mapping[str, PolicyResult]
    forecast_hours: int = 0  # what ecopulse saw ahead each hour
    forecast: Mapping[str, object] = field(default_factory=dict)  # the model, as report.json states it
    # The trace's hours before the window that ecopulse ran the cluster through, unaccounted.
    warm_up_hours: int = 0
    warm_up_start: datetime | None = None
    warm_up_moves: int = 0
    # Window hours before the steady state: what is left, after the warm-up, of the hours the
    # disruption limits need to move every pod once (0 when the warm-up covered them).
    settle_hours: int = 0

    def reduction_percent(self, name: str) -> float:
        blind = self.policies[CARBON_BLIND].emissions_grams
        if blind <= 0:
            return 0.0
        return 100.0 * (1.0 - self.policies[name].emissions_grams / blind)

    def steady_emissions_grams(self, name: str) -> float:
        """Emissions over the hours from ``settle_hours`` on (the whole window if it is shorter)."""
        cumulative = self.policies[name].cumulative_grams
        if not cumulative:
            return 0.0
        settle = self.settle_hours if self.settle_hours < len(cumulative) else 0
        return cumulative[-1] - (cumulative[settle - 1] if settle > 0 else 0.0)

    def steady_reduction_percent(self, name: str) -> float:
        """The reduction once the start-up transition is over: what a deployment sees week after week."""
        blind = self.steady_emissions_grams(CARBON_BLIND)
        if blind <= 0:
            return 0.0
        return 100.0 * (1.0 - self.steady_emissions_grams(name) / blind)

    def cost_reduction_percent(self, name: str, *, spot_only: bool = False) -> float:
        """Compute cost below carbon-blind's, in percent (of spot workloads only, if asked)."""
        blind = self.policies[CARBON_BLIND]
        before = blind.spot_compute_usd if spot_only else blind.compute_usd
        if before <= 0:
            return 0.0
        policy = self.policies[name]
        return 100.0 * (1.0 - (policy.spot_compute_usd if spot_only else policy.compute_usd) / before)


@dataclass(frozen=True, slots=True)
class _Shape:
    """A workload as the accounting and the greedy policies need it (per pod, per hour)."""

    workload: Workload
    demand: PodDemand
    hints: PlacementHints
    annotations: Mapping[str, str]
    energy_kwh: float
    # per region: one pod's hour there at zero intensity (compute, egress, latency penalty)
    base_cost: tuple[RegionCost, ...]
    eligible: tuple[int, ...]  # region indexes it may run in
    start: int
    active_hours: int  # hours from the trace start it runs


Counts = list[list[int]]  # [workload][region]


class Simulator:
    def __init__(
        self,
        *,
        config: EcoPulseConfiguration,
        trace: Trace,
        workload: SimulatedWorkload,
        forecast: ForecastModel | None = None,
        forecast_hours: int | None = None,
        seed: int = 0,
        warm_up: Trace | None = None,
        prices: PriceHistory | None = None,
    ) -> None:
        # The simulation acts: a dry-run config would only ever report.
        self.config = replace(config, rebalancer=replace(config.rebalancer, dry_run=False))
        self.prices = prices  # hourly prices (simulate --prices); None: the configuration's table
        self.trace = trace
        self.regions = config.region_names
        self.index = {name: i for i, name in enumerate(self.regions)}
        self.zones = tuple(region.zone for region in config.regions)
        missing = [zone for zone in self.zones if zone not in trace.zones]
        if missing:
            raise ValueError(f"the trace has no values for zone(s) {', '.join(sorted(set(missing)))}")
        self.intensity = tuple(trace.zones[zone] for zone in self.zones)
        self.hours = trace.hours
        # The hours before the window: ecopulse runs the cluster through them, unaccounted, so the
        # window begins as a running deployment would (its history full, its pods where it put them).
        self.warm_up: Trace | None = None
        if warm_up is not None and warm_up.hours:
            missing = [zone for zone in self.zones if zone not in warm_up.zones]
            if missing:
                raise ValueError(f"the warm-up hours have no values for zone(s) {', '.join(sorted(missing))}")
            self.warm_up = Trace(
                times=warm_up.times, zones={zone: warm_up.zones[zone] for zone in self.zones}
            )
        self.forecaster = replay_forecaster(
            forecast,
            hours=forecast_hours,
            configured_hours=self.config.carbon.forecast_hours,
            seed=seed,
            series=dict(zip(self.zones, self.intensity, strict=True)),
        )
        self.forecast_hours = self.forecaster.hours
        self.cap_cpu = [workload.capacity[r].cpu if r in workload.capacity else 0.0 for r in self.regions]
        self.cap_mem = [
            workload.capacity[r].memory_gib if r in workload.capacity else 0.0 for r in self.regions
        ]
        self.shapes = [self._shape(w) for w in workload.workloads]
        self.capacity_types = sorted({shape.demand.capacity_type for shape in self.shapes})

    # -- setup ------------------------------------------------------------------------------

    def _shape(self, w: Workload) -> _Shape:
        config = self.config
        annotations: dict[str, str] = {}
        if w.max_latency_ms is not None:
            annotations[MAX_LATENCY_ANNOTATION] = repr(w.max_latency_ms)
        if w.data_region is not None:
            annotations[DATA_REGION_ANNOTATION] = w.data_region
        if w.egress_gb_per_hour > 0:
            annotations[EGRESS_ANNOTATION] = repr(w.egress_gb_per_hour)
        if w.runtime_hours is not None:
            annotations[EXPECTED_RUNTIME_ANNOTATION] = repr(w.runtime_hours)
        if w.allowed_regions is not None:
            annotations[ALLOWED_REGIONS_ANNOTATION] = ",".join(w.allowed_regions)
        hints = placement_hints(annotations, known_regions=frozenset(self.regions)).hints
        demand = intern_demand(
            PodDemand(cpu_cores=w.cpu, memory_gib=w.memory_gib, capacity_type=w.capacity_type)
        )
        # Where it may run: the regions core.placement ranks eligible (allowed regions, latency to its
        # data), the same rule the webhook and planner apply to ecopulse, and that can hold one pod.
        # Its start region always: every policy may leave a pod where it is.
        ranking = rank_regions(demand=demand, hints=hints, signals=self._flat_signals(), config=config)
        allowed = {a.region for a in ranking.eligible}
        eligible: list[int] = []
        for i, region in enumerate(self.regions):
            room = self.cap_cpu[i] >= w.cpu - _EPS and self.cap_mem[i] >= w.memory_gib - _EPS
            if (room and region in allowed) or region == w.start_region:
                eligible.append(i)
        base_cost = tuple(
            region_cost(region=r, demand=demand, hints=hints, carbon_g_per_kwh=0.0, hours=1.0, config=config)
            for r in self.regions
        )
        return _Shape(
            workload=w,
            demand=demand,
            hints=hints,
            annotations=annotations,
            energy_kwh=base_cost[0].energy_kwh,
            base_cost=base_cost,
            eligible=tuple(eligible),
            start=self.index[w.start_region],
            active_hours=self.hours
            if w.runtime_hours is None
            else min(self.hours, math.ceil(w.runtime_hours)),
        )

    def _flat_signals(self) -> SignalSnapshot:
        """Every region known at one intensity: what eligibility is decided on (it ignores values)."""
        now = self.trace.times[0]
        carbon = {
            name: CarbonSignal(
                region=name, zone=zone, carbon_g_per_kwh=0.0, observed_at=now, fetched_at=now, source="trace"
            )
            for name, zone in zip(self.regions, self.zones, strict=True)
        }
        return SignalSnapshot(taken_at=now, provider="trace", carbon=carbon)

    def settle_hours(self) -> int:
        """Hours the disruption limits need to move every pod once: the start-up transition.

        Per hour a workload loses at most its maxUnavailable (the simulated PDB) and
        maxEvictionsPerWorkload each cycle; a start region's node at most maxEvictionsPerNode a cycle;
        the cluster at most maxEvictionsPerCycle. The longest of these paces bounds the transition.
        """
        settings = self.config.rebalancer
        cycles = max(1, math.ceil(3600.0 / max(1.0, settings.interval_seconds)))

        def hours(pods: int, per_hour: float) -> int:
            return math.ceil(pods / per_hour) if per_hour > 0 else 0

        per_workload = max(1, settings.max_evictions_per_workload) * cycles
        longest = [
            hours(s.workload.replicas, min(s.workload.max_unavailable, per_workload)) for s in self.shapes
        ]
        by_start: dict[int, int] = {}
        for shape in self.shapes:
            by_start[shape.start] = by_start.get(shape.start, 0) + shape.workload.replicas
        longest += [hours(n, settings.max_evictions_per_node * cycles) for n in by_start.values()]
        longest.append(hours(sum(by_start.values()), settings.max_evictions_per_cycle * cycles))
        warmed = self.warm_up.hours if self.warm_up is not None else 0
        return min(self.hours, max(0, max(longest, default=0) - warmed))

    # -- accounting -------------------------------------------------------------------------

    def _account(self, result: PolicyResult, hour: int, counts: Counts, previous: Counts | None) -> None:
        per_region = [0] * len(self.regions)
        grams = 0.0
        for shape, row in zip(self.shapes, counts, strict=True):
            for r, n in enumerate(row):
                if not n:
                    continue
                per_region[r] += n
                result.energy_kwh += n * shape.energy_kwh
                grams += n * shape.energy_kwh * self.intensity[r][hour]
                compute_usd = self._compute_usd(shape, r, hour)
                result.compute_usd += n * compute_usd
                if shape.demand.capacity_type is CapacityType.SPOT:
                    result.spot_compute_usd += n * compute_usd
                result.egress_usd += n * shape.base_cost[r].egress_usd
                result.pod_hours += n
        if previous is not None:
            for w, row in enumerate(counts):
                if sum(row) == 0:
                    continue  # finished: not a move
                result.migrations += sum(max(0, n - previous[w][r]) for r, n in enumerate(row))
        result.emissions_grams += grams
        result.pods_per_region.append(tuple(per_region))
        result.cumulative_grams.append(result.emissions_grams)

    def _start_counts(self, hour: int) -> Counts:
        counts = [[0] * len(self.regions) for _ in self.shapes]
        for w, shape in enumerate(self.shapes):
            if hour < shape.active_hours:
                counts[w][shape.start] = shape.workload.replicas
        return counts

    def _greedy(self, intensities: list[float], hour: int, *, by_cost: bool = True) -> Counts:
        """Fill each workload's cheapest regions first at these intensities, biggest energy per pod
        first, within capacity. Cheapest by ``region_cost``'s total (what the planner ranks by), or
        with ``by_cost=False`` simply the lowest intensity."""
        free_cpu = list(self.cap_cpu)
        free_mem = list(self.cap_mem)
        counts = [[0] * len(self.regions) for _ in self.shapes]
        order = sorted(
            (w for w, s in enumerate(self.shapes) if hour < s.active_hours),
            key=lambda w: (-self.shapes[w].energy_kwh, len(self.shapes[w].eligible), w),
        )
        for w in order:
            shape = self.shapes[w]
            remaining = shape.workload.replicas
            costs = {
                r: self.hour_cost(w, r, intensities[r], hour=hour).total_usd if by_cost else intensities[r]
                for r in shape.eligible
            }
            for r in sorted(shape.eligible, key=lambda r: (costs[r], r)):
                fit = remaining
                if shape.workload.cpu > 0:
                    fit = min(fit, int((free_cpu[r] + _EPS) // shape.workload.cpu))
                if shape.workload.memory_gib > 0:
                    fit = min(fit, int((free_mem[r] + _EPS) // shape.workload.memory_gib))
                if fit <= 0:
                    continue
                counts[w][r] += fit
                free_cpu[r] -= fit * shape.workload.cpu
                free_mem[r] -= fit * shape.workload.memory_gib
                remaining -= fit
                if not remaining:
                    break
            # Nothing fits (only when the start placement itself is what fills the cluster): stay.
            counts[w][shape.start] += remaining
        return counts

    # -- the replay ---------------------------------------------------------------------------

    def run(self, progress: Callable[[int], None] | None = None) -> SimulationResult:
        results = {name: PolicyResult(name=name) for name in REPORTED}
        means = [sum(series) / len(series) for series in self.intensity]
        static = self._greedy(means, 0)
        live = _Ecopulse(self)
        warm_up_moves = 0
        previous: dict[str, Counts | None] = dict.fromkeys(REPORTED)
        if self.warm_up is not None:
            # Every policy enters the window already running: moves into its first placement are
            # not counted, but ecopulse's moves within the first hour are.
            warm_up_moves = live.warm(self.warm_up)
            previous[ECOPULSE] = live.placement(0)
        for hour in range(self.hours):
            start = self._start_counts(hour)
            placements: dict[str, Counts] = {
                CARBON_BLIND: start,
                STATIC_BEST: [
                    row if hour < s.active_hours else [0] * len(row)
                    for s, row in zip(self.shapes, static, strict=True)
                ],
                HOURLY_ORACLE: self._greedy([series[hour] for series in self.intensity], hour),
                CARBON_ORACLE: self._greedy([series[hour] for series in self.intensity], hour, by_cost=False),
                ECOPULSE: live.step(hour),
            }
            for name in REPORTED:
                before = previous[name]
                if before is None and hour == 0 and self.warm_up is None:
                    before = start  # a fresh install: every policy moves from the start placement
                self._account(results[name], hour, placements[name], before)
                previous[name] = placements[name]
            if progress is not None:
                progress(1)
        results[ECOPULSE].moves = live.moves()
        return SimulationResult(
            regions=self.regions,
            zones=self.zones,
            times=self.trace.times,
            intensity=self.intensity,
            policies=results,
            forecast_hours=self.forecast_hours,
            forecast=self.forecaster.describe(),
            warm_up_hours=self.warm_up.hours if self.warm_up is not None else 0,
            warm_up_start=self.warm_up.times[0] if self.warm_up is not None else None,
            warm_up_moves=warm_up_moves,
            settle_hours=self.settle_hours(),
        )

    def signals_at(self, hour: int) -> SignalSnapshot:
        """The signals at ``hour``: that hour's values and the forecast model's next hours."""
        now = self.trace.times[hour]
        carbon = {
            name: CarbonSignal(
                region=name,
                zone=zone,
                carbon_g_per_kwh=series[hour],
                observed_at=now,
                fetched_at=now,
                source="trace",
                forecast=tuple(
                    ForecastPoint(at=self.trace.times[hour + 1 + k], carbon_g_per_kwh=value)
                    for k, value in enumerate(self.forecaster.ahead(zone, hour))
                ),
            )
            for name, zone, series in zip(self.regions, self.zones, self.intensity, strict=True)
        }
        return SignalSnapshot(taken_at=now, provider="trace", carbon=carbon, prices=self.quotes_at(now))

    def quotes_at(self, when: datetime) -> dict[str, PriceQuote]:
        """The replayed prices at ``when`` as the price signal's quotes (none without --prices)."""
        if self.prices is None:
            return {}
        return {
            name: PriceQuote(rates=r, source="replay", spot_source="replay", fetched_at=when)
            for name, r in self.prices.rates_at(when, self.config.prices).items()
        }

    def rates_at(self, hour: int) -> dict[str, PriceRates] | None:
        """The replayed prices in force at ``hour`` (None without --prices: the configuration's)."""
        if self.prices is None:
            return None
        return self.prices.rates_at(self.trace.times[hour], self.config.prices)

    def _compute_usd(self, shape: _Shape, region: int, hour: int) -> float:
        """One pod's compute cost for one hour in ``region``, at that hour's prices."""
        rates = self.rates_at(hour)
        if rates is None:
            return shape.base_cost[region].compute_usd
        demand = shape.demand
        return rates[self.regions[region]].per_hour_usd(
            cpu_cores=demand.cpu_cores, memory_gib=demand.memory_gib, capacity_type=demand.capacity_type
        )

    def hourly_horizon(self, w: int) -> float:
        """The horizon a move of workload ``w`` is priced over: ``core.economics.horizon_hours``."""
        return horizon_hours(self.shapes[w].hints, self.config)

    def hour_cost(
        self, w: int, region: int, carbon_g_per_kwh: float, hours: float = 1.0, *, hour: int | None = None
    ) -> RegionCost:
        """What one pod of workload ``w`` costs in ``region`` over ``hours`` at this mean intensity
        (at the prices of ``hour`` when --prices replays them)."""
        shape = self.shapes[w]
        rates = self.rates_at(hour) if hour is not None else None
        return region_cost(
            region=self.regions[region],
            demand=shape.demand,
            hints=shape.hints,
            carbon_g_per_kwh=carbon_g_per_kwh,
            hours=hours,
            config=self.config,
            prices=rates[self.regions[region]] if rates is not None else None,
        )

    def hindsight_signal(self, region: int, hour: int, hours: float) -> CarbonSignal:
        """The signal a perfect forecast would have given at ``hour``: the trace's next ``hours``."""
        series = self.intensity[region]
        ahead = range(hour + 1, min(self.hours, hour + math.ceil(hours)))
        now = self.trace.times[hour]
        return CarbonSignal(
            region=self.regions[region],
            zone=self.zones[region],
            carbon_g_per_kwh=series[hour],
            observed_at=now,
            fetched_at=now,
            source="trace",
            forecast=tuple(ForecastPoint(at=self.trace.times[h], carbon_g_per_kwh=series[h]) for h in ahead),
        )

    def realised_net_benefit_usd(
        self, *, w: int, source: int, target: int, hour: int, migration_usd: float
    ) -> float:
        """The move's net benefit in hindsight: ``core.economics.net_benefit`` over its horizon (cut at
        the end of the trace) at the intensities that followed, minus the migration cost it paid."""
        hours = min(self.hourly_horizon(w), float(self.hours - hour))
        start = self.trace.times[hour]
        source_cost, target_cost = (
            self.hour_cost(
                w,
                r,
                mean_intensity_g_per_kwh(self.hindsight_signal(r, hour, hours), start=start, hours=hours),
                hours,
            )
            for r in (source, target)
        )
        return net_benefit(source_cost, target_cost, migration_usd=migration_usd).net_usd


def _node_name(region: str, capacity_type: CapacityType) -> str:
    # Spot pods run on spot nodes, priced at spot rates by the planner; on-demand keeps the old name.
    return f"node-{region}" if capacity_type is CapacityType.ON_DEMAND else f"node-{region}-{capacity_type}"


@dataclass(slots=True)
class _PendingMove:
    time: datetime
    hour: int
    workload: int
    source: int
    target: int
    predicted: float
    migration_usd: float


class _SimulatedEvictionApi:
    """The Eviction API and the ReplicaSets of the simulated cluster, in one."""

    def __init__(self, live: _Ecopulse) -> None:
        self._live = live
        self.moving_this_hour: dict[int, int] = {}
        self.last_target: int | None = None

    def evict(self, request: EvictionRequest) -> EvictionResult:
        name, dry_run = request.name, request.dry_run
        self.last_target = None
        found = self._live.listed.get(name)
        if found is None:
            return EvictionResult(outcome=EvictionOutcome.GONE, status=404, message="not found")
        w, region, started = found
        shape = self._live.sim.shapes[w]
        if self.moving_this_hour.get(w, 0) >= shape.workload.max_unavailable:
            return EvictionResult(
                outcome=EvictionOutcome.BLOCKED, status=429, message="would violate the disruption budget"
            )
        if dry_run:
            return EvictionResult(outcome=EvictionOutcome.DRY_RUN, status=201, message="")
        self.moving_this_hour[w] = self.moving_this_hour.get(w, 0) + 1
        self.last_target = self._live.evict_and_recreate(w, region, started)
        return EvictionResult(outcome=EvictionOutcome.EVICTED, status=201, message="")

    def post_event(self, request: EventRequest) -> bool:
        del request  # nobody reads the simulated cluster's Events
        return True


class _Ecopulse:
    """The simulated cluster driven by the real planner and evictor."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        settings = sim.config.rebalancer
        self.interval = max(1.0, settings.interval_seconds)
        self.cycles_per_hour = max(1, math.ceil(3600.0 / self.interval))
        self.min_age = timedelta(seconds=settings.min_pod_age_seconds)
        first = sim.warm_up.times[0] if sim.warm_up is not None else sim.trace.times[0]
        origin = first - _ANCIENT
        # [workload][region] -> {started_at: count}
        self.groups: list[list[dict[datetime, int]]] = [[{} for _ in sim.regions] for _ in sim.shapes]
        for w, shape in enumerate(sim.shapes):
            self.groups[w][shape.start][origin] = shape.workload.replicas
        self.listed: dict[str, tuple[int, int, datetime]] = {}
        self._records: dict[tuple[int, int, datetime, int], PodRecord] = {}
        self._pending: list[_PendingMove] = []
        self._api = _SimulatedEvictionApi(self)
        self._signals: SignalSnapshot | None = None
        self._webhook_choice: dict[int, tuple[int, ...]] = {}
        # The grid's recent hours, fed one snapshot an hour as the live cycle feeds it every cycle.
        self.history = IntensityHistory(window_hours=settings.history_window_hours)
        self._now = first
        self._hour = 0
        self._warming = False

    def _record(self, w: int, region: int, started: datetime, i: int) -> PodRecord:
        key = (w, region, started, i)
        record = self._records.get(key)
        if record is None:
            shape = self.sim.shapes[w]
            name = f"{shape.workload.name}-{self.sim.regions[region]}-{int(started.timestamp())}-{i}"
            record = self._records[key] = PodRecord(
                namespace=shape.workload.namespace,
                name=name,
                uid=name,
                node_name=_node_name(self.sim.regions[region], shape.demand.capacity_type),
                phase="Running",
                ready=True,
                deleting=False,
                started_at=started,
                owner_kind="ReplicaSet",
                owner_name=shape.workload.name,
                demand=shape.demand,
                hint_annotations=shape.annotations,
                mirror=False,
                static=False,
                priority=0,
                local_storage=False,
                pvc=False,
            )
        return record

    def evict_and_recreate(self, w: int, region: int, started: datetime) -> int:
        bucket = self.groups[w][region]
        bucket[started] -= 1
        if bucket[started] <= 0:
            del bucket[started]
        target = self._schedule(w, freed=region)
        new = self.groups[w][target]
        new[self._now] = new.get(self._now, 0) + 1
        return target

    def _schedule(self, w: int, *, freed: int) -> int:
        """Where the replacement lands: the webhook's affinity, then the scheduler's first region with room.

        The webhook's choice is ``core.placement.choose_regions`` over ``rank_regions``, as in the
        cluster; the scheduler takes its landing regions in order and the first that holds the pod.
        Without any (no affinity, or all full: the planner never proposes that) the pod takes the
        room its predecessor freed.
        """
        landing = self._webhook_choice.get(w)
        if landing is None:
            assert self._signals is not None
            sim = self.sim
            shape = sim.shapes[w]
            ranking = rank_regions(
                demand=shape.demand, hints=shape.hints, signals=self._signals, config=sim.config
            )
            choice = choose_regions(ranking, sim.config)
            names = choice.landing_regions if isinstance(choice, PlacementChoice) else ()
            landing = self._webhook_choice[w] = tuple(sim.index[name] for name in names)
        if not landing:
            return freed
        sim = self.sim
        workload = sim.shapes[w].workload
        for r in landing:
            used_cpu = used_mem = 0.0
            for other, groups in zip(sim.shapes, self.groups, strict=True):
                count = sum(groups[r].values())
                used_cpu += count * other.workload.cpu
                used_mem += count * other.workload.memory_gib
            if (
                used_cpu + workload.cpu <= sim.cap_cpu[r] + _EPS
                and used_mem + workload.memory_gib <= sim.cap_mem[r] + _EPS
            ):
                return r
        return freed

    def _cycle(self, now: datetime) -> tuple[int, datetime | None]:
        """One rebalancer cycle at ``now``: evictions made, and when the next young group matures."""
        sim = self.sim
        config = sim.config
        per_workload = max(1, config.rebalancer.max_evictions_per_workload)
        used_cpu = [0.0] * len(sim.regions)
        used_mem = [0.0] * len(sim.regions)
        # listed pods per (region, capacity type): each region has one node per capacity type in use
        listed_cpu: dict[tuple[int, CapacityType], float] = {}
        listed_mem: dict[tuple[int, CapacityType], float] = {}
        pods: list[PodRecord] = []
        self.listed = {}
        next_mature: datetime | None = None
        for w, shape in enumerate(sim.shapes):
            active = self._hour < shape.active_hours
            waiting = self._warming and shape.workload.runtime_hours is not None
            for r, bucket in enumerate(self.groups[w]):
                if not bucket:
                    continue
                if not active:
                    bucket.clear()
                    continue
                if waiting:  # starts with the window: its room only
                    used_cpu[r] += sum(bucket.values()) * shape.workload.cpu
                    used_mem[r] += sum(bucket.values()) * shape.workload.memory_gib
                    continue
                # Every pod past the minimum age is alike to the planner: one group.
                mature = [t for t in bucket if now - t >= self.min_age]
                if len(mature) > 1:
                    oldest = min(mature)
                    bucket[oldest] = sum(bucket.pop(t) for t in mature if t != oldest) + bucket[oldest]
                for started, count in bucket.items():
                    used_cpu[r] += count * shape.workload.cpu
                    used_mem[r] += count * shape.workload.memory_gib
                    if now - started < self.min_age:
                        matures = started + self.min_age
                        next_mature = matures if next_mature is None else min(next_mature, matures)
                        continue  # too young to move: only its room counts
                    for i in range(min(count, per_workload)):
                        record = self._record(w, r, started, i)
                        pods.append(record)
                        self.listed[record.name] = (w, r, started)
                        on = (r, shape.demand.capacity_type)
                        listed_cpu[on] = listed_cpu.get(on, 0.0) + shape.workload.cpu
                        listed_mem[on] = listed_mem.get(on, 0.0) + shape.workload.memory_gib
        if not pods:
            return 0, next_mature
        # A node's allocatable leaves out the region's other usage: its free room is the region's.
        nodes = {
            _node_name(name, kind): NodeRecord(
                name=_node_name(name, kind),
                region=name,
                capacity_type=kind,
                allocatable_cpu_cores=sim.cap_cpu[r] - used_cpu[r] + listed_cpu.get((r, kind), 0.0),
                allocatable_memory_gib=sim.cap_mem[r] - used_mem[r] + listed_mem.get((r, kind), 0.0),
                schedulable=True,
            )
            for r, name in enumerate(sim.regions)
            for kind in sim.capacity_types
        }
        assert self._signals is not None
        result = plan(
            pods=pods,
            nodes=nodes,
            namespaces={},
            signals=self._signals,
            config=config,
            now=now,
            history=self.history,
        )
        evictor = Evictor(api=self._api, settings=config.rebalancer)
        evicted = 0
        for candidate in result.candidates:
            attempt = evictor.evict(candidate)
            if attempt.result != EvictionOutcome.EVICTED or self._api.last_target is None:
                continue
            evicted += 1
            w, source, _ = self.listed[candidate.pod.name]
            self._pending.append(
                _PendingMove(
                    time=now,
                    hour=self._hour,
                    workload=w,
                    source=source,
                    target=self._api.last_target,
                    predicted=candidate.benefit.net_usd,
                    migration_usd=candidate.benefit.migration_cost_usd,
                )
            )
        return evicted, next_mature

    def warm(self, warm_up: Trace) -> int:
        """Run the cluster through the hours before the window; return the moves made (not counted).

        The warm-up sees each hour's values (no forecast). Workloads with a runtime start with the
        window: they hold their start region's room but are not moved before it.
        """
        self._warming = True
        for hour, at in enumerate(warm_up.times):
            carbon = {
                name: CarbonSignal(
                    region=name,
                    zone=zone,
                    carbon_g_per_kwh=warm_up.zones[zone][hour],
                    observed_at=at,
                    fetched_at=at,
                    source="trace",
                )
                for name, zone in zip(self.sim.regions, self.sim.zones, strict=True)
            }
            signals = SignalSnapshot(
                taken_at=at, provider="trace", carbon=carbon, prices=self.sim.quotes_at(at)
            )
            self._run_hour(0, signals, at)
        self._warming = False
        moves = len(self._pending)
        self._pending.clear()
        return moves

    def step(self, hour: int) -> Counts:
        """Run the hour's rebalancer cycles; return the placement the hour is accounted at."""
        self._run_hour(hour, self.sim.signals_at(hour), self.sim.trace.times[hour])
        return self.placement(hour)

    def placement(self, hour: int) -> Counts:
        """Pods per workload and region, as the hour is accounted."""
        counts = [[0] * len(self.sim.regions) for _ in self.sim.shapes]
        for w, shape in enumerate(self.sim.shapes):
            if hour >= shape.active_hours:
                continue
            for r, bucket in enumerate(self.groups[w]):
                counts[w][r] = sum(bucket.values())
        return counts

    def _run_hour(self, hour: int, signals: SignalSnapshot, start: datetime) -> None:
        self._hour = hour
        self._signals = signals
        self.history.record(self._signals)
        self._webhook_choice = {}
        self._api.moving_this_hour = {}
        cycle = 0
        while cycle < self.cycles_per_hour:
            self._now = start + timedelta(seconds=cycle * self.interval)
            evicted, next_mature = self._cycle(self._now)
            if evicted:
                cycle += 1
                continue
            # Nothing moved: the next cycle sees the same cluster unless a young group matures.
            if next_mature is None:
                break
            cycle = max(cycle + 1, math.ceil((next_mature - start).total_seconds() / self.interval))

    def moves(self) -> list[MoveRecord]:
        sim = self.sim
        records: list[MoveRecord] = []
        for move in self._pending:
            realised = sim.realised_net_benefit_usd(
                w=move.workload,
                source=move.source,
                target=move.target,
                hour=move.hour,
                migration_usd=move.migration_usd,
            )
            records.append(
                MoveRecord(
                    time=move.time,
                    hour=move.hour,
                    workload=sim.shapes[move.workload].workload.key,
                    source=sim.regions[move.source],
                    target=sim.regions[move.target],
                    predicted_net_benefit_usd=move.predicted,
                    realised_net_benefit_usd=realised,
                )
            )
        return records
