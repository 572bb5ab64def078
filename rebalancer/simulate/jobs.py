"""The deferral replay: Jobs with a deadline, run by five policies over the same trace.

Each template of ``jobs:`` arrives every ``everyHours`` from ``firstAtHour`` (UTC, on the replay's
first day); a run must finish within ``finishWithinHours`` of its arrival, and runs whose deadline
falls after the replay's end are not generated. The policies:

- ``carbon-blind``: the home region, at arrival;
- ``best-region-now``: at arrival, in the region best now (what Eco-Pulse's placement does today:
  ``core.deferral``'s region for starting now, with the same forecast as ecopulse);
- ``threshold-wait``: what existing tools do: in the home region, start at the first hour whose
  intensity is below the mean of the 24 hours before it, or at the latest start;
- ``ecopulse``: the real planner (``core.deferral.plan_starts``), asked every hour about every held
  run with only what the chosen forecast knows at that hour and the forecast's error measured so far
  (``core.forecast.ForecastErrors``), as the release loop asks it;
- ``oracle``: perfect knowledge: the region and start hour of least cost over the run (the
  planner's own objective, ``core.economics.region_cost`` at the intensities that came) with the
  run finishing by its deadline.

Capacity counts as it does for pods: a run needs its CPU and memory free in its region for every
hour it runs, out of the region's capacity less what the workloads use where they start; a run
whose region is full waits there (its pods pending) until there is room. Runs are accounted at the
intensities that came: emissions and cost (compute and egress) from ``core.economics.region_cost``
over the run at its mean actual intensity.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from core.config import EcoPulseConfiguration
from core.deferral import (
    DEFAULT_CONFIDENCE_Z,
    DeferralRequest,
    HourlyForecast,
    StartReason,
    deferral_request,
    latest_start,
    plan_start,
    plan_starts,
)
from core.economics import RegionCost, region_cost
from core.forecast import ForecastErrors
from core.history import hour_index
from core.model import PlacementHints, PodDemand
from core.trace import Trace
from rebalancer.simulate.forecast import Forecaster
from rebalancer.simulate.jobspec import JobTemplate
from rebalancer.simulate.workload import SimulatedWorkload

CARBON_BLIND = "carbon-blind"
BEST_REGION_NOW = "best-region-now"
THRESHOLD_WAIT = "threshold-wait"
ECOPULSE = "ecopulse"
ORACLE = "oracle"
JOB_POLICIES = (CARBON_BLIND, BEST_REGION_NOW, THRESHOLD_WAIT, ECOPULSE, ORACLE)
TRAILING_HOURS = 24
HOUR = timedelta(hours=1)
_EPS = 1e-9


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    job: int
    arrival: int  # trace hour
    deadline: datetime
    request: DeferralRequest


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOutcome:
    job: str
    region: str
    arrival: int
    start: float  # trace hours: a whole hour, or a release-by within one
    emissions_grams: float
    cost_usd: float  # compute and egress
    delay_hours: float
    missed: bool
    member: str = ""  # the member cluster it ran in (a fleet's replay, simulate.fleet_jobs)


@dataclass(slots=True)
class JobTotals:
    emissions_grams: float = 0.0
    cost_usd: float = 0.0
    runs: int = 0
    deadline_misses: int = 0
    delay_hours: float = 0.0

    def add(self, outcome: RunOutcome) -> None:
        self.emissions_grams += outcome.emissions_grams
        self.cost_usd += outcome.cost_usd
        self.runs += 1
        self.deadline_misses += int(outcome.missed)
        self.delay_hours += outcome.delay_hours

    @property
    def mean_delay_hours(self) -> float:
        return self.delay_hours / self.runs if self.runs else 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class JobsResult:
    jobs: tuple[JobTemplate, ...]
    time_only: frozenset[str]  # jobs with one region to run in: only time to shift
    outcomes: Mapping[str, tuple[RunOutcome, ...]]  # per policy
    reasons: Mapping[str, int]  # ecopulse's releases by reason
    forecast: Mapping[str, object] = field(default_factory=dict)

    def totals(self, policy: str, *, jobs: frozenset[str] | None = None) -> JobTotals:
        totals = JobTotals()
        for outcome in self.outcomes[policy]:
            if jobs is None or outcome.job in jobs:
                totals.add(outcome)
        return totals


class Room:
    """Free CPU and memory per region and hour, as one policy's runs take it."""

    def __init__(self, cpu: list[list[float]], memory: list[list[float]]) -> None:
        self.cpu = [list(row) for row in cpu]
        self.memory = [list(row) for row in memory]

    def fits(self, region: int, start: int, span: int, cpu: float, memory: float) -> bool:
        hours = len(self.cpu[region])
        return all(
            self.cpu[region][h] >= cpu - _EPS and self.memory[region][h] >= memory - _EPS
            for h in range(start, min(hours, start + span))
        )

    def take(self, region: int, start: int, span: int, cpu: float, memory: float) -> None:
        for h in range(start, min(len(self.cpu[region]), start + span)):
            self.cpu[region][h] -= cpu
            self.memory[region][h] -= memory


class JobReplay:
    def __init__(
        self,
        *,
        config: EcoPulseConfiguration,
        trace: Trace,
        workload: SimulatedWorkload,
        forecaster: Forecaster,
        min_benefit_usd: float = 0.0,
        confidence_z: float | None = None,
        warm_up: Trace | None = None,
    ) -> None:
        self.config = config
        self.trace = trace
        self.hours = trace.hours
        self.regions = config.region_names
        self.index = {name: i for i, name in enumerate(self.regions)}
        self.zones = tuple(region.zone for region in config.regions)
        self.intensity = tuple(trace.zones[zone] for zone in self.zones)
        # The warm-up hours (--warm-up-hours), if any, come before the window: the forecast and its
        # error record have seen them when the window starts, as a running deployment's have.
        self.warmed = warm_up.hours if warm_up is not None else 0
        self._times = (*(warm_up.times if warm_up is not None else ()), *trace.times)
        self._full = tuple(
            (*(warm_up.zones[zone] if warm_up is not None else ()), *trace.zones[zone]) for zone in self.zones
        )
        self.forecaster = (
            Forecaster.build(
                forecaster.model,
                hours=forecaster.hours,
                seed=forecaster.seed,
                series=dict(zip(self.zones, self._full, strict=True)),
            )
            if self.warmed
            else forecaster
        )
        self.min_benefit_usd = min_benefit_usd
        self.confidence_z = confidence_z
        self.jobs = workload.jobs
        self._prefix = [_prefix(series) for series in self.intensity]
        cap_cpu = [workload.capacity[r].cpu if r in workload.capacity else 0.0 for r in self.regions]
        cap_mem = [workload.capacity[r].memory_gib if r in workload.capacity else 0.0 for r in self.regions]
        free_cpu = [[cap_cpu[r]] * self.hours for r in range(len(self.regions))]
        free_mem = [[cap_mem[r]] * self.hours for r in range(len(self.regions))]
        for w in workload.workloads:  # the workloads where they start (carbon-blind's placement)
            r = self.index[w.start_region]
            active = self.hours if w.runtime_hours is None else min(self.hours, math.ceil(w.runtime_hours))
            for h in range(active):
                free_cpu[r][h] -= w.cpu * w.replicas
                free_mem[r][h] -= w.memory_gib * w.replicas
        self._free = (free_cpu, free_mem)
        self.runs = self._runs()

    # -- setup ----------------------------------------------------------------------------------

    def _runs(self) -> list[Run]:
        start = self.trace.times[0]
        day = start.replace(hour=0, minute=0, second=0, microsecond=0)
        end = start + HOUR * self.hours
        runs: list[Run] = []
        for j, job in enumerate(self.jobs):
            hints = PlacementHints(
                max_latency_ms=job.max_latency_ms,
                data_region=job.data_region,
                egress_gb_per_hour=job.egress_gb_per_hour,
                allowed_regions=frozenset(job.allowed_regions) if job.allowed_regions is not None else None,
                expected_runtime_hours=job.runtime_hours,
            )
            demand = PodDemand(cpu_cores=job.cpu, memory_gib=job.memory_gib, capacity_type=job.capacity_type)
            n = 0
            while True:
                arrival = day + timedelta(hours=job.first_at_hour + n * job.every_hours)
                n += 1
                deadline = arrival + timedelta(hours=job.finish_within_hours)
                if deadline > end:
                    break
                if arrival < start:
                    continue
                request = deferral_request(
                    runtime_hours=job.runtime_hours,
                    not_before=arrival,
                    deadline=deadline,
                    demand=demand,
                    hints=hints,
                    home_region=job.home_region,
                    config=self.config,
                )
                if job.home_region not in request.allowed_regions:  # its home is where it may always run
                    request = with_regions(request, (*request.allowed_regions, job.home_region))
                arrival_hour = int((arrival - start) / HOUR)
                runs.append(Run(job=j, arrival=arrival_hour, deadline=deadline, request=request))
        runs.sort(key=lambda run: (run.arrival, run.job))
        return runs

    @property
    def time_only(self) -> frozenset[str]:
        return time_only_jobs(self.jobs, self.runs)

    # -- accounting -----------------------------------------------------------------------------

    def mean_intensity(self, region: int, start: float, hours: float) -> float:
        """The actual mean intensity over ``[start, start + hours)`` (the last value held past the end)."""
        whole = math.floor(start)
        if start - whole > _EPS:  # a start within an hour: the rest of that hour, then from the next
            head = math.ceil(start) - start
            if hours <= head:
                return self.intensity[region][min(len(self.intensity[region]) - 1, whole)]
            rest = self.mean_intensity(region, whole + 1, hours - head)
            return (
                head * self.intensity[region][min(len(self.intensity[region]) - 1, whole)]
                + rest * (hours - head)
            ) / hours
        return self._mean_from_hour(region, whole, hours)

    def _mean_from_hour(self, region: int, start: int, hours: float) -> float:
        series, prefix = self.intensity[region], self._prefix[region]
        last = len(series) - 1
        whole = math.floor(hours)
        part = hours - whole
        total = 0.0
        end = min(start + whole, len(series))
        if start < end:
            total += prefix[end] - prefix[start]
        total += series[last] * max(0, start + whole - end)
        if part > _EPS:
            total += part * series[min(last, start + whole)]
        return total / hours if hours > 0 else series[min(last, start)]

    def run_cost(self, run: Run, region: int, start: float, hours: float) -> RegionCost:
        """What ``hours`` of the run from ``start`` in ``region`` cost, at the intensities that came."""
        return region_cost(
            region=self.regions[region],
            demand=run.request.demand,
            hints=run.request.hints,
            carbon_g_per_kwh=self.mean_intensity(region, start, hours),
            hours=hours,
            config=self.config,
        )

    def outcome(self, run: Run, region: int, start: float) -> RunOutcome:
        request = run.request
        cost = self.run_cost(run, region, start, request.runtime_hours)
        finish = self.trace.times[0] + HOUR * start + timedelta(hours=request.runtime_hours)
        return RunOutcome(
            job=self.jobs[run.job].name,
            region=self.regions[region],
            arrival=run.arrival,
            start=start,
            emissions_grams=cost.emissions_grams,
            cost_usd=cost.compute_usd + cost.egress_usd,
            delay_hours=float(start - run.arrival),
            missed=finish > run.deadline + timedelta(seconds=1),
        )

    def _place(self, room: Room, run: Run, region: int, start: float) -> RunOutcome:
        """Start in ``region`` at ``start``, or at the first hour after it with room (pods pending).
        A start within an hour holds room from that hour to the hour its run ends in."""
        job = self.jobs[run.job]
        hour = math.floor(start)
        span = max(1, math.ceil(start + run.request.runtime_hours - _EPS) - hour)
        at: float = start
        while hour < self.hours - 1 and not room.fits(region, hour, span, job.cpu, job.memory_gib):
            hour += 1
            at = hour
        room.take(region, hour, span, job.cpu, job.memory_gib)
        return self.outcome(run, region, at)

    def _room(self) -> Room:
        return Room(*self._free)

    def latest_hour(self, run: Run) -> int:
        latest = latest_start(run.request)
        return max(run.arrival, math.floor((latest - self.trace.times[0]) / HOUR))

    def _fitting(self, room: Room, run: Run, hour: int) -> tuple[str, ...]:
        """The run's regions with room from ``hour`` for its whole run (all of them if none has)."""
        job = self.jobs[run.job]
        span = max(1, math.ceil(run.request.runtime_hours))
        fitting = tuple(
            r
            for r in run.request.allowed_regions
            if room.fits(self.index[r], hour, span, job.cpu, job.memory_gib)
        )
        return fitting or run.request.allowed_regions

    # -- the forecast ecopulse sees -------------------------------------------------------------

    def forecasts_at(self, hour: int, errors: ForecastErrors) -> list[HourlyForecast]:
        """Each region's forecast made at window hour ``hour`` (negative: in the warm-up): that
        hour's value, then the model's next hours, with the error the model's forecasts have shown
        so far; the errors learn that hour's value."""
        index = hour + self.warmed
        now = self._times[index]
        out: list[HourlyForecast] = []
        for name, zone, series in zip(self.regions, self.zones, self._full, strict=True):
            errors.observe(name, hour_index(now), series[index])
            made = HourlyForecast(
                region=name,
                start=now,
                carbon_g_per_kwh=(series[index], *self.forecaster.ahead(zone, index)),
                made_at=now,
                source=str(self.forecaster.model),
            )
            errors.record(made)
            out.append(errors.attach(made))
        return out

    # -- the policies ---------------------------------------------------------------------------

    def run(self, progress: Callable[[int], None] | None = None) -> JobsResult:
        outcomes: dict[str, list[RunOutcome]] = {name: [] for name in JOB_POLICIES}
        rooms = {name: self._room() for name in JOB_POLICIES}
        errors = ForecastErrors()
        for hour in range(-self.warmed, 0):
            self.forecasts_at(hour, errors)
        by_arrival: dict[int, list[Run]] = {}
        for run in self.runs:
            by_arrival.setdefault(run.arrival, []).append(run)
        held: list[Run] = []
        reasons: dict[str, int] = {}
        confidence_z = DEFAULT_CONFIDENCE_Z if self.confidence_z is None else self.confidence_z
        for hour in range(self.hours):
            arriving = by_arrival.get(hour, [])
            # Every hour, as the live loop does: the errors need every hour's forecast and value.
            forecasts = self.forecasts_at(hour, errors)
            now = self.trace.times[hour]
            for run in arriving:
                home = self.index[run.request.home_region]
                outcomes[CARBON_BLIND].append(self._place(rooms[CARBON_BLIND], run, home, hour))
                room = rooms[BEST_REGION_NOW]
                now_plan = plan_start(
                    with_regions(run.request, self._fitting(room, run, hour)),
                    forecasts=forecasts,
                    now=now,
                    config=self.config,
                )
                outcomes[BEST_REGION_NOW].append(
                    self._place(room, run, self.index[now_plan.now_region], hour)
                )
                outcomes[THRESHOLD_WAIT].append(self._threshold(rooms[THRESHOLD_WAIT], run))
                outcomes[ORACLE].append(self._oracle(rooms[ORACLE], run))
                held.append(run)
            if held:
                room = rooms[ECOPULSE]
                plans = plan_starts(
                    [with_regions(run.request, self._fitting(room, run, hour)) for run in held],
                    forecasts=forecasts,
                    now=now,
                    config=self.config,
                    min_benefit_usd=self.min_benefit_usd,
                    confidence_z=confidence_z,
                )
                still: list[Run] = []
                for run, plan in zip(held, plans, strict=True):
                    at: float = hour
                    if not plan.release_now:
                        if plan.start >= now + HOUR:
                            still.append(run)
                            continue
                        # Planned within this hour (its release-by): the live loop, asking every
                        # cycle, releases it then; this replay asks hourly, so releases it at it.
                        at = hour + (plan.start - now) / HOUR
                    reason = plan.reason if plan.release_now else StartReason.RELEASE_BY
                    reasons[str(reason)] = reasons.get(str(reason), 0) + 1
                    outcomes[ECOPULSE].append(self._place(room, run, self.index[plan.region], at))
                held = still
            if progress is not None:
                progress(1)
        for run in held:  # the replay ended first: cannot happen, every deadline is within it
            outcomes[ECOPULSE].append(
                self._place(rooms[ECOPULSE], run, self.index[run.request.home_region], run.arrival)
            )
        return JobsResult(
            jobs=self.jobs,
            time_only=self.time_only,
            outcomes={name: tuple(found) for name, found in outcomes.items()},
            reasons=dict(sorted(reasons.items())),
            forecast=self.forecaster.describe(),
        )

    def _threshold(self, room: Room, run: Run) -> RunOutcome:
        home = self.index[run.request.home_region]
        return self._place(room, run, home, self.threshold_hour(run))

    def threshold_hour(self, run: Run) -> int:
        """The first hour below the trailing 24-hour mean, in the home region, or the latest start."""
        home = self.index[run.request.home_region]
        series, prefix = self.intensity[home], self._prefix[home]
        latest = self.latest_hour(run)
        for hour in range(run.arrival, latest + 1):
            if hour < TRAILING_HOURS:
                return hour
            trailing = (prefix[hour] - prefix[hour - TRAILING_HOURS]) / TRAILING_HOURS
            if series[hour] < trailing:
                return hour
        return latest

    def _oracle(self, room: Room, run: Run) -> RunOutcome:
        """The region and start of least cost over the run, at the intensities that came, finishing
        by the deadline, among those with room."""
        request = run.request
        job = self.jobs[run.job]
        span = max(1, math.ceil(request.runtime_hours))
        last = self.last_start_hour(run)
        best: tuple[float, int, str] | None = None
        for name in sorted(set(request.allowed_regions)):
            r = self.index[name]
            base, usd_per_g = self.objective_terms(run, name)
            for start in range(run.arrival, last + 1):
                if not room.fits(r, start, span, job.cpu, job.memory_gib):
                    continue
                cost = base + usd_per_g * self.mean_intensity(r, start, request.runtime_hours)
                if best is None or (cost, start, name) < best:
                    best = (cost, start, name)
        if best is None:  # nowhere has room in time: wait at home like the others
            return self._place(room, run, self.index[request.home_region], run.arrival)
        return self._place(room, run, self.index[best[2]], best[1])

    def last_start_hour(self, run: Run) -> int:
        """The last hour a run may start and still finish by its deadline (no safety margin)."""
        request = run.request
        last = math.floor((request.deadline - self.trace.times[0]) / HOUR - request.runtime_hours + _EPS)
        return max(run.arrival, last)

    def objective_terms(self, run: Run, region: str) -> tuple[float, float]:
        """The planner's objective for the run in ``region``, as ``base + usd_per_g x mean intensity``:
        (compute, egress and latency in USD; the carbon value of a g/kWh over the run)."""
        request = run.request
        fixed = region_cost(
            region=region,
            demand=request.demand,
            hints=request.hints,
            carbon_g_per_kwh=0.0,
            hours=request.runtime_hours,
            config=self.config,
        )
        usd_per_g = (
            fixed.energy_kwh / 1_000_000.0 * self.config.economics.effective_carbon_price_usd_per_tonne
        )
        return fixed.compute_usd + fixed.egress_usd + fixed.latency_penalty_usd, usd_per_g


def time_only_jobs(jobs: tuple[JobTemplate, ...], runs: list[Run]) -> frozenset[str]:
    """The jobs with one region to run in: only time to shift."""
    return frozenset(jobs[run.job].name for run in runs if len(set(run.request.allowed_regions)) == 1)


def with_regions(request: DeferralRequest, regions: tuple[str, ...]) -> DeferralRequest:
    return request if regions == request.allowed_regions else replace(request, allowed_regions=regions)


def _prefix(series: tuple[float, ...]) -> list[float]:
    out = [0.0]
    for value in series:
        out.append(out[-1] + value)
    return out
