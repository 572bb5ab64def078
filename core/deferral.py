"""Pure. When and where a deferrable Job should start: the one planner the webhook (hold or not),
the release loop (when and where to release) and ``simulate`` ask.

A Job with a deadline and an expected runtime may start at any hour from now to its latest start,
``deadline - runtime - safety margin`` (``ecopulse.io/release-by``), in any region its hints allow
(``core.placement.permitted_regions``). Its cost over the run is ``core.economics.region_cost`` at
the forecast's mean intensity over the run: compute, carbon value, egress and latency, exactly as
moves are priced. The planner compares the (region, start) of least cost with starting now in the
region that is best now (what placement alone does):

- starts are hour boundaries (the current hour, then each next one); a start is a candidate only
  when it is no later than the latest start and the whole run lies within what the forecast knows
  for that region (plan only over what is known);
- a wait is taken only when it beats starting now by at least ``min_benefit_usd`` and its saving
  survives the forecast's recent error: the saving is counted less how much the forecasts of the
  last hours overstated that same saving (the run now in the region best now against the run at
  that start in that region), on average, plus ``confidence_z`` standard errors of that average.
  The errors are measured against what came (``HourlyForecast.past_errors``, kept by
  ``core.forecast.ForecastErrors``), as the robust rule measures a move's gap
  (docs/robust-moves.md). A wait that does not survive, or whose error is not known yet (fewer
  than ``MIN_ERROR_SAMPLES`` past forecasts), releases now: unknown means do nothing;
- ties go to the earlier start, then to the region name, so the answer does not depend on the
  order of the inputs; the plan is never worse than now by its own forecast.

The forecast tables (window means per region and runtime, and the best start up to each hour) are
built once per pass and shared by every Job planned in it (``plan_starts``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import MappingProxyType

from core.config import EcoPulseConfiguration
from core.economics import GRAMS_PER_TONNE, NetBenefit, RegionCost, net_benefit, region_cost
from core.model import PlacementHints, PodDemand
from core.placement import permitted_regions
from core.power import pod_energy_kwh

HOUR = timedelta(hours=1)
SECONDS_PER_HOUR = 3600.0
# A wait's saving is counted less the forecast's recent overstatement of that saving, plus this
# many standard errors of it: two, a one-sided bound of about 98 % were it normal, as the robust
# rule's gapErrorMargin for a move. Only the forecast's bias is taken off, not its spread: a hold
# is re-planned every cycle with a newer forecast, so an unbiased error is corrected as the hour
# nears, where a move is done once.
DEFAULT_CONFIDENCE_Z = 2.0
# Fewer past forecasts than this covering a saving's hours and its error is unknown.
MIN_ERROR_SAMPLES = 24
DEFAULT_SAFETY_MARGIN_SECONDS = 1800.0
_EPS = 1e-12


class StartReason(StrEnum):
    """Why a Job starts when it does. The planner returns the first six; the release loop adds its own."""

    WAIT = "greener-hour-ahead"  # hold: a later start pays, robustly
    GREEN_HOUR = "green-hour"  # now is the best start the forecast knows
    RELEASE_BY = "release-by"  # the latest start has come (or comes within this hour)
    NO_FORECAST = "no-forecast"  # no allowed region has a forecast covering now and the run
    NOT_WORTH_WAITING = "not-worth-waiting"  # a later start is better, by less than the minimum
    NOT_ROBUST = "not-robust-to-forecast-error"  # its saving does not survive the forecast's error
    # Never returned by plan_start: the release loop's and the janitor's own reasons.
    CONTROLLER_START = "controller-start"
    JANITOR = "janitor"


@dataclass(frozen=True, slots=True, kw_only=True)
class HourlyForecast:
    """What is expected of one region's grid, hour by hour.

    ``carbon_g_per_kwh[k]`` is the mean over ``[start + k h, start + (k + 1) h)``;
    ``error_g_per_kwh[k]`` the recent RMS error at lead k (``()``: unknown), what the apps export;
    ``past_errors`` the errors (forecast minus what came, by lead from 0) of the same source's
    forecasts for this region made at each of the last hours (by ``core.history.hour_index`` of
    their start), every lead observed: what a wait's saving is judged by. ``made_at`` is the newest
    observation it was built from: its age is what the apps export.
    """

    region: str
    start: datetime
    carbon_g_per_kwh: tuple[float, ...]
    error_g_per_kwh: tuple[float, ...] = ()
    past_errors: Mapping[int, tuple[float, ...]] = field(default_factory=lambda: MappingProxyType({}))
    made_at: datetime
    source: str = ""

    @property
    def end(self) -> datetime:
        return self.start + HOUR * len(self.carbon_g_per_kwh)

    def age_seconds(self, now: datetime) -> float:
        return max(0.0, (now - self.made_at).total_seconds())

    def horizon_hours(self, now: datetime) -> float:
        """How far ahead of ``now`` the forecast reaches."""
        return max(0.0, (self.end - now).total_seconds() / SECONDS_PER_HOUR)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeferralRequest:
    """A Job that may wait: what it asks for, where it may run, and by when it must have finished."""

    runtime_hours: float
    not_before: datetime  # when it arrived: it never starts earlier
    deadline: datetime
    safety_margin_seconds: float = DEFAULT_SAFETY_MARGIN_SECONDS
    demand: PodDemand  # one pod's
    pods: int = 1  # pods running at once (the Job's parallelism)
    hints: PlacementHints = field(default_factory=PlacementHints)
    home_region: str
    # Regions its hints allow (core.placement.permitted_regions); the order does not matter.
    allowed_regions: tuple[str, ...]


def deferral_request(
    *,
    runtime_hours: float,
    not_before: datetime,
    deadline: datetime,
    demand: PodDemand,
    hints: PlacementHints,
    home_region: str,
    config: EcoPulseConfiguration,
    pods: int = 1,
    safety_margin_seconds: float = DEFAULT_SAFETY_MARGIN_SECONDS,
) -> DeferralRequest:
    """A request whose allowed regions are those placement's own filter lets the pod go to."""
    return DeferralRequest(
        runtime_hours=runtime_hours,
        not_before=not_before,
        deadline=deadline,
        safety_margin_seconds=safety_margin_seconds,
        demand=demand,
        pods=pods,
        hints=hints,
        home_region=home_region,
        allowed_regions=permitted_regions(hints, config),
    )


def latest_start(request: DeferralRequest) -> datetime:
    """The latest start that still finishes by the deadline, with the margin: ``ecopulse.io/release-by``."""
    return request.deadline - timedelta(hours=request.runtime_hours, seconds=request.safety_margin_seconds)


@dataclass(frozen=True, slots=True, kw_only=True)
class StartPlan:
    """Where and when to start, and what waiting is expected to gain over starting now.

    ``expected_net_benefit_usd`` and ``carbon_avoided_g`` compare the plan with starting now in
    ``now_region`` (0 when the plan is to start now). ``candidate_*`` describe the best later start
    the forecast knows, taken or not (for the log and the decision annotation).
    """

    region: str
    start: datetime
    release_now: bool
    reason: StartReason
    latest_start: datetime
    now_region: str
    expected_net_benefit_usd: float
    carbon_avoided_g: float
    hours: float
    now_carbon_g_per_kwh: float | None  # mean over the run, starting now in now_region
    chosen_carbon_g_per_kwh: float | None  # mean over the run as planned
    candidate_region: str | None = None
    candidate_start: datetime | None = None
    candidate_net_benefit_usd: float | None = None
    candidate_robust_net_benefit_usd: float | None = None

    def breakdown(self, request: DeferralRequest, config: EcoPulseConfiguration) -> NetBenefit | None:
        """The plan against starting now, term by term (``core.economics.net_benefit``), per pod."""
        if self.now_carbon_g_per_kwh is None or self.chosen_carbon_g_per_kwh is None:
            return None
        now_cost = _cost(request, self.now_region, self.now_carbon_g_per_kwh, config)
        chosen = _cost(request, self.region, self.chosen_carbon_g_per_kwh, config)
        return net_benefit(now_cost, chosen, migration_usd=0.0)


def _cost(
    request: DeferralRequest, region: str, carbon_g_per_kwh: float, config: EcoPulseConfiguration
) -> RegionCost:
    return region_cost(
        region=region,
        demand=request.demand,
        hints=request.hints,
        carbon_g_per_kwh=carbon_g_per_kwh,
        hours=request.runtime_hours,
        config=config,
    )


def hour_floor(at: datetime) -> datetime:
    at = at.astimezone(UTC)
    return at.replace(minute=0, second=0, microsecond=0)


@dataclass(slots=True)
class _Windows:
    """One region's forecast for one runtime: the mean and error over the run for each start k."""

    means: list[float]  # k = 0 .. len - 1 (k = 0: now); only starts whose run the forecast covers
    best_upto: list[int]  # best_upto[k]: the k' in 1..k of least mean (earliest on ties); [0] = 0
    now_mean: float  # over what is known of the run from now (equals means[0] when covered)


class ForecastTable:
    """The forecasts of one planning pass, aligned on the hour ``now`` falls in; the window means
    per (region, runtime) are built the first time a Job asks and shared by every other, as are the
    errors of a saving."""

    def __init__(self, forecasts: Iterable[HourlyForecast], *, now: datetime) -> None:
        self.now = now
        self.origin = hour_floor(now)
        self._values: dict[str, tuple[float, ...]] = {}
        self._offset: dict[str, int] = {}  # the table's slot 0 is the forecast's slot offset
        self._past: dict[str, Mapping[int, tuple[float, ...]]] = {}
        for forecast in forecasts:
            offset = math.floor((self.origin - forecast.start).total_seconds() / SECONDS_PER_HOUR)
            if offset < 0 or offset >= len(forecast.carbon_g_per_kwh):
                continue  # does not cover now: unknown
            self._values[forecast.region] = forecast.carbon_g_per_kwh[offset:]
            self._offset[forecast.region] = offset
            self._past[forecast.region] = forecast.past_errors
        self.known = frozenset(self._values)
        self._windows: dict[tuple[str, float], _Windows] = {}
        self._fixed: dict[tuple[PodDemand, PlacementHints, float, str], float] = {}
        self._prefixes: dict[str, dict[int, tuple[list[float], tuple[float, ...]]]] = {}
        self._margins: dict[tuple[str, str, int, float], tuple[float, float] | None] = {}

    def windows(self, region: str, runtime_hours: float) -> _Windows | None:
        key = (region, runtime_hours)
        found = self._windows.get(key)
        if found is None and region in self._values:
            found = _build_windows(self._values[region], runtime_hours)
            self._windows[key] = found
        return found

    def fixed_usd(self, request: DeferralRequest, region: str, config: EcoPulseConfiguration) -> float:
        """Compute, egress and latency over the run for one pod: everything but the carbon value."""
        key = (request.demand, request.hints, request.runtime_hours, region)
        found = self._fixed.get(key)
        if found is None:
            cost = _cost(request, region, 0.0, config)
            found = cost.compute_usd + cost.egress_usd + cost.latency_penalty_usd
            self._fixed[key] = found
        return found

    def saving_margin(
        self, now_region: str, region: str, k: int, runtime_hours: float
    ) -> tuple[float, float] | None:
        """How much, in g/kWh, the forecast saving of starting at slot ``k`` in ``region`` instead of
        now in ``now_region`` has lately been overstated, at the confidence asked: over the past
        forecasts of both, the mean of (predicted saving - saving that came) plus ``z`` standard
        errors of that mean (returned as (mean, standard error)); None with too few forecasts."""
        key = (now_region, region, k, runtime_hours)
        if key in self._margins:
            return self._margins[key]
        now_past, past = self._past_prefixes(now_region), self._past_prefixes(region)
        now_at, at = self._offset[now_region], self._offset[region] + k
        total = squares = 0.0
        samples = 0
        for origin, (prefix, errors) in past.items():
            mine = now_past.get(origin)
            if mine is None:
                continue
            later = _window_mean(prefix, errors, at, runtime_hours)
            now = _window_mean(mine[0], mine[1], now_at, runtime_hours)
            if later is None or now is None:
                continue
            # predicted minus came, of (now - later): the error now minus the error later
            overstated = now - later
            total += overstated
            squares += overstated * overstated
            samples += 1
        found: tuple[float, float] | None = None
        if samples >= MIN_ERROR_SAMPLES:
            mean = total / samples
            spread = math.sqrt(max(0.0, squares / samples - mean * mean))
            found = (mean, spread / math.sqrt(samples))
        self._margins[key] = found
        return found

    def _past_prefixes(self, region: str) -> dict[int, tuple[list[float], tuple[float, ...]]]:
        found = self._prefixes.get(region)
        if found is None:
            found = self._prefixes[region] = {
                origin: (_prefix(errors), errors) for origin, errors in self._past.get(region, {}).items()
            }
        return found


def _prefix(values: Sequence[float]) -> list[float]:
    out = [0.0]
    for value in values:
        out.append(out[-1] + value)
    return out


def _window_mean(prefix: Sequence[float], values: Sequence[float], start: int, hours: float) -> float | None:
    """The mean of ``values`` over ``[start, start + hours)`` (slots of an hour), None past their end."""
    whole = math.floor(hours)
    part = hours - whole
    if hours <= _EPS:
        return values[start] if start < len(values) else None
    if start + whole + (1 if part > _EPS else 0) > len(values):
        return None
    total = prefix[start + whole] - prefix[start]
    if part > _EPS:
        total += part * values[start + whole]
    return total / hours


def _build_windows(values: Sequence[float], runtime_hours: float) -> _Windows:
    prefix = _prefix(values)
    means: list[float] = []
    for k in range(len(values)):
        mean = _window_mean(prefix, values, k, runtime_hours)
        if mean is None:
            break
        means.append(mean)
    best_upto = [0] * len(means)
    for k in range(1, len(means)):
        previous = best_upto[k - 1]
        best_upto[k] = k if previous == 0 or means[k] < means[previous] else previous
    # The forecast ends before the run would: what is known of it.
    known_mean = sum(values) / len(values) if values else math.nan
    now_mean = means[0] if means else known_mean
    return _Windows(means=means, best_upto=best_upto, now_mean=now_mean)


def plan_start(
    request: DeferralRequest,
    *,
    forecasts: ForecastTable | Iterable[HourlyForecast],
    now: datetime,
    config: EcoPulseConfiguration,
    min_benefit_usd: float = 0.0,
    confidence_z: float = DEFAULT_CONFIDENCE_Z,
) -> StartPlan:
    """Where and when ``request`` should start (see the module docstring for the rule)."""
    table = forecasts if isinstance(forecasts, ForecastTable) else ForecastTable(forecasts, now=now)
    return _plan(request, table, config=config, min_benefit_usd=min_benefit_usd, confidence_z=confidence_z)


def plan_starts(
    requests: Sequence[DeferralRequest],
    *,
    forecasts: Iterable[HourlyForecast],
    now: datetime,
    config: EcoPulseConfiguration,
    min_benefit_usd: float = 0.0,
    confidence_z: float = DEFAULT_CONFIDENCE_Z,
) -> list[StartPlan]:
    """One planning pass: every request against the same forecasts, the tables built once."""
    table = ForecastTable(forecasts, now=now)
    return [
        _plan(request, table, config=config, min_benefit_usd=min_benefit_usd, confidence_z=confidence_z)
        for request in requests
    ]


def _plan(
    request: DeferralRequest,
    table: ForecastTable,
    *,
    config: EcoPulseConfiguration,
    min_benefit_usd: float,
    confidence_z: float,
) -> StartPlan:
    now = table.now
    latest = latest_start(request)
    runtime = request.runtime_hours
    regions = sorted(
        region for region in set(request.allowed_regions) if region in config.prices and region in table.known
    )
    pods = max(1, request.pods)
    energy_kwh = pod_energy_kwh(request.demand, config.power, hours=runtime) * pods
    usd_per_g = energy_kwh / GRAMS_PER_TONNE * config.economics.effective_carbon_price_usd_per_tonne

    def nothing_known(reason: StartReason) -> StartPlan:
        return StartPlan(
            region=request.home_region,
            start=now,
            release_now=True,
            reason=reason,
            latest_start=latest,
            now_region=request.home_region,
            expected_net_benefit_usd=0.0,
            carbon_avoided_g=0.0,
            hours=runtime,
            now_carbon_g_per_kwh=None,
            chosen_carbon_g_per_kwh=None,
        )

    # Starting now: the best region now, over what is known of the run.
    now_best: tuple[float, str, float] | None = None  # (cost, region, mean)
    covered: list[tuple[str, _Windows, float]] = []  # (region, windows, fixed USD for all pods)
    for region in regions:
        windows = table.windows(region, runtime)
        if windows is None or math.isnan(windows.now_mean):
            continue
        fixed = table.fixed_usd(request, region, config) * pods
        cost = fixed + usd_per_g * windows.now_mean
        if now_best is None or cost < now_best[0] - _EPS:
            now_best = (cost, region, windows.now_mean)
        if windows.means:
            covered.append((region, windows, fixed))
    if now_best is None:
        return nothing_known(StartReason.NO_FORECAST)
    now_cost, now_region, now_mean = now_best

    def start_now(reason: StartReason, candidate: _Candidate | None = None) -> StartPlan:
        return StartPlan(
            region=now_region,
            start=now,
            release_now=True,
            reason=reason,
            latest_start=latest,
            now_region=now_region,
            expected_net_benefit_usd=0.0,
            carbon_avoided_g=0.0,
            hours=runtime,
            now_carbon_g_per_kwh=now_mean,
            chosen_carbon_g_per_kwh=now_mean,
            candidate_region=candidate.region if candidate else None,
            candidate_start=candidate.start if candidate else None,
            candidate_net_benefit_usd=candidate.net_usd if candidate else None,
            candidate_robust_net_benefit_usd=candidate.robust_usd if candidate else None,
        )

    if latest <= now:
        return start_now(StartReason.RELEASE_BY)
    last_k = math.floor((latest - table.origin).total_seconds() / SECONDS_PER_HOUR)
    first_k = max(1, math.ceil((request.not_before - table.origin).total_seconds() / SECONDS_PER_HOUR))
    if last_k < first_k:
        return start_now(StartReason.RELEASE_BY)
    if not covered:
        return start_now(StartReason.NO_FORECAST)

    best: _Candidate | None = None
    for region, windows, fixed in covered:
        top = min(last_k, len(windows.means) - 1)
        if top < first_k:
            continue
        if first_k == 1:
            k = windows.best_upto[top]
        else:  # arrived in the future: rare, scan
            k = min(range(first_k, top + 1), key=lambda j: (windows.means[j], j))
        cost = fixed + usd_per_g * windows.means[k]
        if best is None or (cost, k, region) < (best.cost, best.k, best.region):
            best = _Candidate(region=region, k=k, cost=cost, mean=windows.means[k])
    if best is None:
        return start_now(StartReason.NO_FORECAST)
    best.start = table.origin + HOUR * best.k
    best.net_usd = now_cost - best.cost
    if best.net_usd <= _EPS:
        return start_now(StartReason.GREEN_HOUR, best)
    if best.net_usd < min_benefit_usd:
        return start_now(StartReason.NOT_WORTH_WAITING, best)
    margin = table.saving_margin(now_region, best.region, best.k, runtime) if confidence_z > 0 else (0.0, 0.0)
    if margin is not None:
        overstated_g_per_kwh = max(0.0, margin[0] + confidence_z * margin[1])
        best.robust_usd = best.net_usd - overstated_g_per_kwh * usd_per_g
    if confidence_z > 0 and (best.robust_usd is None or best.robust_usd <= 0):
        return start_now(StartReason.NOT_ROBUST, best)
    return StartPlan(
        region=best.region,
        start=best.start,
        release_now=False,
        reason=StartReason.WAIT,
        latest_start=latest,
        now_region=now_region,
        expected_net_benefit_usd=best.net_usd,
        carbon_avoided_g=energy_kwh * (now_mean - best.mean),
        hours=runtime,
        now_carbon_g_per_kwh=now_mean,
        chosen_carbon_g_per_kwh=best.mean,
        candidate_region=best.region,
        candidate_start=best.start,
        candidate_net_benefit_usd=best.net_usd,
        candidate_robust_net_benefit_usd=best.robust_usd,
    )


@dataclass(slots=True, kw_only=True)
class _Candidate:
    region: str
    k: int
    cost: float
    mean: float
    start: datetime | None = None
    net_usd: float = 0.0
    robust_usd: float | None = None


def release_reasons() -> Mapping[str, str]:
    """Each reason and what it means (docs and metric help)."""
    return {
        StartReason.WAIT: "held: a later start pays at least the minimum and survives the forecast's error",
        StartReason.GREEN_HOUR: "released: now is the best start the forecast knows",
        StartReason.RELEASE_BY: "released: the latest start that keeps the deadline has come",
        StartReason.NO_FORECAST: "released: no allowed region has a forecast covering now and the run",
        StartReason.NOT_WORTH_WAITING: "released: waiting saves less than the minimum",
        StartReason.NOT_ROBUST: "released: the saving does not survive the forecast's recent error",
        StartReason.CONTROLLER_START: "released: overdue when the controller started",
        StartReason.JANITOR: "released: overdue, by the janitor",
    }
