"""Pure. When and where a deferrable Job should start: the one planner the webhook (hold or not),
the release loop (when and where to release) and ``simulate`` ask.

A Job with a deadline and an expected runtime may start at any hour from now to its latest start,
``deadline - runtime - safety margin`` (``ecopulse.io/release-by``), in any region its hints allow
(``core.placement.permitted_regions``). Its cost over the run is ``core.economics.region_cost`` at
the forecast's mean intensity over the run: compute, carbon value, egress and latency, exactly as
moves are priced. The planner compares the (region, start) of least cost with starting now in the
region that is best now (what placement alone does):

- starts are hour boundaries (the current hour, then each next one) and the latest start itself
  when it falls within an hour (the run that ends last); a start is a candidate only when it is
  no later than the latest start and the whole run lies within what the forecast knows for that
  region (plan only over what is known);
- the forecast is first corrected by what its source's record is sure of: at each lead, its
  recent mean error (``HourlyForecast.bias_g_per_kwh``) shrunk by the standard error of that
  mean over the forecasts it is worth (``effective_samples``: consecutive forecasts err alike),
  positive-part James-Stein; what is not taken off stays in the record;
- a wait is taken only when it beats starting now by at least ``min_benefit_usd`` and its saving
  survives the forecast's recent error: the saving is counted less how much the source's recent
  forecasts still overstated it (their mean error left after the correction over the run
  starting now in the region best now, less that over the run at the chosen start in the chosen
  region, lead by lead), plus ``confidence_z`` standard errors of that mean. By default
  ``confidence_z`` is 0: the expected saving, as the Jobs' savings add up and a hold is
  re-planned each cycle (docs/deferral-simulate.md). The errors are measured against what came
  (``core.forecast.ForecastErrors``), as the robust rule measures a move's gap
  (docs/robust-moves.md). A wait that does not survive releases now; one whose error is not known
  yet (fewer than ``MIN_ERROR_SAMPLES`` past forecasts) does too with ``confidence_z`` above 0
  (unknown means do nothing), and is taken on the forecast as given at 0 (the webhook's case: it
  keeps no record);
- ties go to the earlier start, then to the region name, so the answer does not depend on the
  order of the inputs; the plan is never worse than now by its own forecast.

The forecast tables (window means per region and runtime, the best start up to each hour, the
costs per Job template) are built once per pass and shared by every Job planned in it
(``plan_starts``): a pass over 10,000 held Jobs and 20 regions is bench/deferral.py.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from core.config import EcoPulseConfiguration
from core.economics import GRAMS_PER_TONNE, NetBenefit, RegionCost, net_benefit, region_cost
from core.model import PlacementHints, PodDemand, PriceRates
from core.placement import permitted_regions
from core.power import pod_energy_kwh

HOUR = timedelta(hours=1)
SECONDS_PER_HOUR = 3600.0
# A wait's saving is counted less the forecast's recent overstatement of that saving, plus this
# many standard errors of it. None by default: the decision of most expected saving is the one
# on the expected saving (the saving less the mean overstatement), and what is judged is the sum
# over many Jobs, where a margin for one Job's bad luck only gives up saving. Only the forecast's
# bias is taken off, not its spread: a hold is re-planned every cycle with a newer forecast, so
# an unbiased error is corrected as the hour nears, where a move is done once.
DEFAULT_CONFIDENCE_Z = 0.0
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

    ``carbon_g_per_kwh[k]`` is the mean over ``[start + k h, start + (k + 1) h)``. The source's
    recent record, by lead k (forecast minus what came, over its forecasts of the last hours;
    ``()``: unknown): ``error_g_per_kwh`` the RMS error (non-decreasing in k, what the apps export),
    ``bias_g_per_kwh`` the mean error and ``spread_g_per_kwh`` its standard deviation, from
    ``error_samples`` forecasts (what a wait's saving is judged by). ``made_at`` is the newest
    observation it was built from: its age is what the apps export.
    """

    region: str
    start: datetime
    carbon_g_per_kwh: tuple[float, ...]
    error_g_per_kwh: tuple[float, ...] = ()
    bias_g_per_kwh: tuple[float, ...] = ()
    spread_g_per_kwh: tuple[float, ...] = ()
    error_samples: int = 0
    # By lead, how many independent forecasts the mean error is worth (consecutive forecasts err
    # alike); () unknown: the forecast is taken as given, less nothing.
    effective_samples: tuple[float, ...] = ()
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
    """One region's forecast for one runtime: the mean over the run for each start k."""

    means: list[float]  # k = 0 .. len - 1 (k = 0: now); only starts whose run the forecast covers
    best_upto: list[int]  # best_upto[k]: the k' in 1..k of least mean (earliest on ties); [0] = 0
    now_mean: float  # over what is known of the run from now (equals means[0] when covered)
    prefix: list[float] = field(default_factory=list)  # of the forecast's hourly values, from slot 0
    values: Sequence[float] = ()
    record: _Record | None = None
    # The source's record over the same runs (None: unknown): mean error and its spread, and how
    # many forecasts they are from.
    bias: list[float] | None = None
    spread: list[float] | None = None
    samples: int = 0


@dataclass(slots=True)
class _Record:
    """One region's forecast errors, prefix-summed by lead from the table's slot 0."""

    bias_prefix: list[float]
    bias: tuple[float, ...]
    spread_prefix: list[float]
    spread: tuple[float, ...]
    samples: int


class ForecastTable:
    """The forecasts of one planning pass, aligned on the hour ``now`` falls in. What Jobs share is
    built the first time one asks: the window means per runtime, the costs per template."""

    def __init__(
        self,
        forecasts: Iterable[HourlyForecast],
        *,
        now: datetime,
        prices: Mapping[str, PriceRates] | None = None,
        extras: dict[tuple[PlacementHints, str], float] | None = None,
    ) -> None:
        """``extras``: egress and latency per hour by (hints, region), kept by a caller from pass to
        pass for one configuration (core.deferral_memo.PassMemo); they depend on nothing else."""
        self.now = now
        # The price signal's live rates by region (SignalSnapshot.price_table); a region without
        # one is priced from the configuration's table, as every other decision does.
        self._prices: Mapping[str, PriceRates] = prices or {}
        self.origin = hour_floor(now)
        self._values: dict[str, tuple[float, ...]] = {}
        self._given: dict[str, tuple[float, ...]] = {}  # as the source gave them
        self._records: dict[str, _Record | None] = {}
        for forecast in forecasts:
            offset = math.floor((self.origin - forecast.start).total_seconds() / SECONDS_PER_HOUR)
            length = len(forecast.carbon_g_per_kwh)
            if offset < 0 or offset >= length:
                continue  # does not cover now: unknown
            record = _record(forecast, offset)
            values = forecast.carbon_g_per_kwh[offset:]
            self._given[forecast.region] = values
            if record is not None and len(forecast.effective_samples) == len(forecast.carbon_g_per_kwh):
                values, record = _corrected(values, record, forecast.effective_samples[offset:])
            self._values[forecast.region] = values
            self._records[forecast.region] = record
        self.known = frozenset(self._values)
        self._windows: dict[float, dict[str, _Windows]] = {}
        self._fixed: dict[tuple[PodDemand, PlacementHints, float], dict[str, float]] = {}
        self._extras: dict[tuple[PlacementHints, str], float] = extras if extras is not None else {}

    def windows(self, runtime_hours: float) -> dict[str, _Windows]:
        """Every known region's window means for this runtime."""
        found = self._windows.get(runtime_hours)
        if found is None:
            found = self._windows[runtime_hours] = {
                region: _build_windows(values, runtime_hours, self._records[region])
                for region, values in self._values.items()
            }
        return found

    def fixed_usd(self, request: DeferralRequest, config: EcoPulseConfiguration) -> dict[str, float]:
        """Per region the request allows, one pod's compute, egress and latency over the run: all
        but the carbon value, as ``core.economics.region_cost`` counts them. Shared by the Jobs of
        one template; a region without prices or a forecast is absent."""
        key = (request.demand, request.hints, request.runtime_hours)
        found = self._fixed.get(key)
        if found is None:
            found = self._fixed[key] = {}
        for region in request.allowed_regions:
            if region in found or region not in self.known:
                continue
            prices = self._prices.get(region) or config.prices.get(region)
            if prices is None:
                continue
            compute = prices.per_hour_usd(
                cpu_cores=request.demand.cpu_cores,
                memory_gib=request.demand.memory_gib,
                capacity_type=request.demand.capacity_type,
            )
            found[region] = (compute + self._extra(request.hints, region, config)) * request.runtime_hours
        return found

    def _extra(self, hints: PlacementHints, region: str, config: EcoPulseConfiguration) -> float:
        """Egress and latency penalty for an hour there: they depend on the hints, not the demand."""
        key = (hints, region)
        found = self._extras.get(key)
        if found is None:
            cost = region_cost(
                region=region,
                demand=_NOTHING,
                hints=hints,
                carbon_g_per_kwh=0.0,
                hours=1.0,
                config=config,
            )
            found = self._extras[key] = cost.egress_usd + cost.latency_penalty_usd
        return found


_NOTHING = PodDemand(cpu_cores=0.0, memory_gib=0.0)


def _record(forecast: HourlyForecast, offset: int) -> _Record | None:
    length = len(forecast.carbon_g_per_kwh)
    if (
        forecast.error_samples < MIN_ERROR_SAMPLES
        or len(forecast.bias_g_per_kwh) != length
        or len(forecast.spread_g_per_kwh) != length
    ):
        return None
    bias, spread = forecast.bias_g_per_kwh[offset:], forecast.spread_g_per_kwh[offset:]
    return _Record(
        bias_prefix=_prefix(bias),
        bias=bias,
        spread_prefix=_prefix(spread),
        spread=spread,
        samples=forecast.error_samples,
    )


def _corrected(
    values: tuple[float, ...], record: _Record, effective: Sequence[float]
) -> tuple[tuple[float, ...], _Record]:
    """The forecast less the part of its recent mean error the record is sure of, and the record
    of what is left. At each lead the mean error b is shrunk by its standard error se (positive-part
    James-Stein, b (1 - se^2 / b^2), se^2 = spread^2 / the forecasts it is worth): a mean error
    well beyond its standard error is taken off the forecast whole, one within it barely; what is
    not taken off stays the record's, for a wait's saving to survive."""
    out: list[float] = []
    left: list[float] = []
    for value, bias, spread, n in zip(values, record.bias, record.spread, effective, strict=True):
        sure = 0.0
        if bias * bias > 0.0:
            sure = bias * max(0.0, 1.0 - spread * spread / max(n, 1.0) / (bias * bias))
        out.append(max(0.0, value - sure))
        left.append(bias - sure)
    rest = tuple(left)
    return tuple(out), _Record(
        bias_prefix=_prefix(rest),
        bias=rest,
        spread_prefix=record.spread_prefix,
        spread=record.spread,
        samples=record.samples,
    )


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


def _integral(prefix: Sequence[float], values: Sequence[float], at: float) -> float:
    """The integral of the hourly step function ``values`` over ``[0, at)`` (``at`` within them)."""
    whole = math.floor(at)
    total = prefix[whole]
    if at - whole > _EPS:
        total += (at - whole) * values[whole]
    return total


def _mean_from(prefix: Sequence[float], values: Sequence[float], start: float, hours: float) -> float | None:
    """The mean of ``values`` over ``[start, start + hours)`` for a start within an hour (the
    latest start), None past their end."""
    if start + hours > len(values) + _EPS or hours <= _EPS:
        return None
    end = min(float(len(values)), start + hours)
    return (_integral(prefix, values, end) - _integral(prefix, values, start)) / hours


def _build_windows(values: Sequence[float], runtime_hours: float, record: _Record | None) -> _Windows:
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
    windows = _Windows(
        means=means, best_upto=best_upto, now_mean=now_mean, prefix=prefix, values=values, record=record
    )
    if record is not None:
        bias = [_window_mean(record.bias_prefix, record.bias, k, runtime_hours) for k in range(len(means))]
        spread = [
            _window_mean(record.spread_prefix, record.spread, k, runtime_hours) for k in range(len(means))
        ]
        windows.bias = [b for b in bias if b is not None]
        windows.spread = [d for d in spread if d is not None]
        windows.samples = record.samples
    return windows


def _overstatement(now: _Windows, later: _Windows, k: int) -> tuple[float, float] | None:
    """How much the source's recent forecasts overstated the saving of the run at slot ``k`` of
    ``later`` instead of now in ``now``, in g/kWh: (mean, standard error of the mean), or None
    without a record. The standard error is bounded by the two runs' spreads added (their errors
    are not paired forecast by forecast here), so it is never under-counted."""
    if now.bias is None or now.spread is None or later.bias is None or later.spread is None:
        return None
    if not now.bias or k >= len(later.bias):
        return None
    samples = min(now.samples, later.samples)
    return now.bias[0] - later.bias[k], (now.spread[0] + later.spread[k]) / math.sqrt(samples)


def _tail_overstatement(
    now: _Windows, later: _Windows, at: float, hours: float
) -> tuple[float, float] | None:
    """``_overstatement`` for the run starting at the latest start, ``at`` hours from slot 0."""
    if now.bias is None or now.spread is None or not now.bias or later.record is None:
        return None
    record = later.record
    bias = _mean_from(record.bias_prefix, record.bias, at, hours)
    spread = _mean_from(record.spread_prefix, record.spread, at, hours)
    if bias is None or spread is None or now.spread is None:
        return None
    samples = min(now.samples, later.samples)
    return now.bias[0] - bias, (now.spread[0] + spread) / math.sqrt(samples)


def plan_start(
    request: DeferralRequest,
    *,
    forecasts: ForecastTable | Iterable[HourlyForecast],
    now: datetime,
    config: EcoPulseConfiguration,
    min_benefit_usd: float = 0.0,
    confidence_z: float = DEFAULT_CONFIDENCE_Z,
    prices: Mapping[str, PriceRates] | None = None,
) -> StartPlan:
    """Where and when ``request`` should start (see the module docstring for the rule). ``prices``:
    the live rates by region (ignored when ``forecasts`` is a table: it carries its own)."""
    table = (
        forecasts
        if isinstance(forecasts, ForecastTable)
        else ForecastTable(forecasts, now=now, prices=prices)
    )
    return _plan(request, table, config=config, min_benefit_usd=min_benefit_usd, confidence_z=confidence_z)


def plan_starts(
    requests: Sequence[DeferralRequest],
    *,
    forecasts: Iterable[HourlyForecast],
    now: datetime,
    config: EcoPulseConfiguration,
    min_benefit_usd: float = 0.0,
    confidence_z: float = DEFAULT_CONFIDENCE_Z,
    prices: Mapping[str, PriceRates] | None = None,
) -> list[StartPlan]:
    """One planning pass: every request against the same forecasts, the tables built once."""
    table = ForecastTable(forecasts, now=now, prices=prices)
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
    pods = max(1, request.pods)
    energy_kwh = pod_energy_kwh(request.demand, config.power, hours=runtime) * pods
    usd_per_g = energy_kwh / GRAMS_PER_TONNE * config.economics.effective_carbon_price_usd_per_tonne
    windows_by_region = table.windows(runtime)
    fixed_by_region = table.fixed_usd(request, config)
    # The last start slot (-1: none, the latest start has come).
    latest_at = (latest - table.origin).total_seconds() / SECONDS_PER_HOUR  # hours from slot 0
    last_k = math.floor(latest_at) if latest > now else -1
    first_k = 1
    if request.not_before > table.origin + HOUR:
        first_k = math.ceil((request.not_before - table.origin).total_seconds() / SECONDS_PER_HOUR)
    # The latest start itself, when it falls within an hour: the run that ends last, a half hour
    # (the safety margin's) after the last whole-hour start. Only if it is later than now and than
    # the arrival; its mean is over the hours it overlaps, pro rata.
    tail_at: float | None = None
    tail_whole = tail_whole_end = 0
    tail_part = tail_part_end = tail_end = 0.0
    if latest > now and latest >= request.not_before and latest_at - last_k > _EPS and runtime > _EPS:
        tail_at = latest_at
        tail_end = latest_at + runtime
        tail_whole, tail_whole_end = math.floor(latest_at), math.floor(tail_end)
        tail_part, tail_part_end = latest_at - tail_whole, tail_end - tail_whole_end
    # One pass over the regions: the best now, and the best later start of each (the best hour up to
    # the latest start is looked up, not searched). Regions are visited in the request's order;
    # every comparison breaks ties by the start, then the name, so that order does not matter.
    now_best: tuple[float, str, float] | None = None  # (cost, region, mean over the run)
    now_windows: _Windows | None = None
    best: _Candidate | None = None
    for region in request.allowed_regions:
        windows = windows_by_region.get(region)
        fixed_usd = fixed_by_region.get(region)
        if windows is None or fixed_usd is None:
            continue
        now_mean = windows.now_mean
        if math.isnan(now_mean):  # nothing known
            continue
        fixed = fixed_usd * pods
        cost = fixed + usd_per_g * now_mean
        if now_best is None or cost < now_best[0] or (cost == now_best[0] and region < now_best[1]):
            now_best = (cost, region, now_mean)
            now_windows = windows
        means = windows.means
        top = min(len(means) - 1, last_k)
        if top >= first_k:
            if first_k == 1:
                k = windows.best_upto[top]
            else:  # arrives later than the next hour: rare, scan
                k = min(range(first_k, top + 1), key=lambda j: (means[j], j))
            cost = fixed + usd_per_g * means[k]
            if (
                best is None
                or cost < best.cost
                or (cost == best.cost and (k, region) < (best.at, best.region))
            ):
                best = _Candidate(region=region, at=k, cost=cost, mean=means[k], windows=windows)
        if tail_at is not None and tail_end <= len(windows.values) + _EPS:
            # _mean_from inlined (once per region and Job): the integral from slot 0 to the end,
            # less that to the start
            values, prefix = windows.values, windows.prefix
            mean = (
                prefix[tail_whole_end]
                + (tail_part_end * values[tail_whole_end] if tail_part_end > _EPS else 0.0)
                - prefix[tail_whole]
                - tail_part * values[tail_whole]
            ) / runtime
            cost = fixed + usd_per_g * mean
            if (
                best is None
                or cost < best.cost
                or (cost == best.cost and (tail_at, region) < (best.at, best.region))
            ):
                best = _Candidate(region=region, at=tail_at, cost=cost, mean=mean, windows=windows)
    if now_best is None:
        return _released(request, StartReason.NO_FORECAST, now=now, latest=latest, now_best=None)
    now_cost, now_region, now_mean = now_best
    if last_k < first_k and tail_at is None:
        return _released(request, StartReason.RELEASE_BY, now=now, latest=latest, now_best=now_best)
    if best is None:
        return _released(request, StartReason.NO_FORECAST, now=now, latest=latest, now_best=now_best)
    best.start = latest if best.at == tail_at else table.origin + HOUR * int(best.at)
    best.net_usd = now_cost - best.cost
    if best.net_usd <= _EPS:
        return _released(
            request, StartReason.GREEN_HOUR, now=now, latest=latest, now_best=now_best, candidate=best
        )
    if best.net_usd < min_benefit_usd:
        return _released(
            request, StartReason.NOT_WORTH_WAITING, now=now, latest=latest, now_best=now_best, candidate=best
        )
    overstated: tuple[float, float] | None = None
    if best.windows and now_windows:
        overstated = (
            _tail_overstatement(now_windows, best.windows, best.at, runtime)
            if best.at == tail_at
            else _overstatement(now_windows, best.windows, int(best.at))
        )
    if overstated is not None:
        # The expected saving: less what such forecasts overstated it by lately (never more than
        # forecast), then less confidence_z standard errors of that mean.
        mean, standard_error = overstated
        best.robust_usd = best.net_usd - max(0.0, mean + confidence_z * standard_error) * usd_per_g
    elif confidence_z <= 0:
        best.robust_usd = best.net_usd  # no record: the forecast as given
    if best.robust_usd is None or best.robust_usd <= 0:
        return _released(
            request, StartReason.NOT_ROBUST, now=now, latest=latest, now_best=now_best, candidate=best
        )
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


def _released(
    request: DeferralRequest,
    reason: StartReason,
    *,
    now: datetime,
    latest: datetime,
    now_best: tuple[float, str, float] | None,
    candidate: _Candidate | None = None,
) -> StartPlan:
    """Start now: in the region best now (at home when nothing is known)."""
    region = now_best[1] if now_best is not None else request.home_region
    mean = now_best[2] if now_best is not None else None
    return StartPlan(
        region=region,
        start=now,
        release_now=True,
        reason=reason,
        latest_start=latest,
        now_region=region,
        expected_net_benefit_usd=0.0,
        carbon_avoided_g=0.0,
        hours=request.runtime_hours,
        now_carbon_g_per_kwh=mean,
        chosen_carbon_g_per_kwh=mean,
        candidate_region=candidate.region if candidate else None,
        candidate_start=candidate.start if candidate else None,
        candidate_net_benefit_usd=candidate.net_usd if candidate else None,
        candidate_robust_net_benefit_usd=candidate.robust_usd if candidate else None,
    )


@dataclass(slots=True, kw_only=True)
class _Candidate:
    region: str
    at: float  # hours from slot 0: a whole hour, or the latest start
    cost: float
    mean: float
    windows: _Windows | None = None
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
