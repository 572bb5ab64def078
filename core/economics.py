"""What running a pod in a region costs over a horizon, and the net benefit of a move. Pure.

    net benefit(r -> t) = price savings + carbon value - (migration cost + egress cost + latency penalty)

Every term is the difference between running in r and running in t, over the same horizon:

- price savings  = compute(r) - compute(t), from the region price table and the capacity type;
- carbon value   = carbon price x (emissions(r) - emissions(t)), emissions from the power model
                   and the mean intensity over the horizon (the forecast where there is one);
- egress cost    = egress(t) - egress(r): GB/h to the pod's data region x hours x $/GB;
- latency penalty = penalty(t) - penalty(r): $/ms-hour x RTT to the data (or baseline) region;
- migration cost = the configured per-move cost + the restart downtime priced at the pod's
                   current hourly compute cost (0 for a new pod: nothing moves).

Staying put is therefore worth exactly zero, and a new pod's score for a region is its net
benefit against the baseline region with no migration cost (nothing moves).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from core.config import EcoPulseConfiguration
from core.model import CarbonSignal, ForecastPoint, PlacementHints, PodDemand, PriceRates
from core.power import emissions_grams, pod_energy_kwh

GRAMS_PER_TONNE = 1_000_000.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RegionCost:
    """Everything it costs to run the pod in one region over the horizon."""

    region: str
    hours: float
    energy_kwh: float
    carbon_g_per_kwh: float  # mean over the horizon
    emissions_grams: float
    compute_usd: float
    carbon_usd: float  # emissions priced at the (capped) carbon price
    egress_usd: float
    latency_penalty_usd: float

    @property
    def total_usd(self) -> float:
        return self.compute_usd + self.carbon_usd + self.egress_usd + self.latency_penalty_usd


@dataclass(frozen=True, slots=True, kw_only=True)
class NetBenefit:
    """The net benefit of running in ``target`` instead of ``source``, with its parts, in USD."""

    source: str
    target: str
    price_savings_usd: float
    carbon_value_usd: float
    migration_cost_usd: float
    egress_cost_usd: float
    latency_penalty_usd: float
    avoided_grams: float

    @property
    def net_usd(self) -> float:
        return (
            self.price_savings_usd
            + self.carbon_value_usd
            - self.migration_cost_usd
            - self.egress_cost_usd
            - self.latency_penalty_usd
        )


def horizon_hours(hints: PlacementHints, config: EcoPulseConfiguration) -> float:
    """The pod's own expected runtime when it gives one, else the configured horizon."""
    if hints.expected_runtime_hours is not None and hints.expected_runtime_hours > 0:
        return hints.expected_runtime_hours
    return config.economics.horizon_hours


def reference_region(hints: PlacementHints, config: EcoPulseConfiguration) -> str:
    """Where the pod's data (or users) are: its data region, else the baseline region."""
    return hints.data_region or config.baseline_region


def mean_intensity_g_per_kwh(signal: CarbonSignal, *, start: datetime, hours: float) -> float:
    """Time-weighted mean of the intensity over [start, start + hours].

    The current value holds until the first forecast point; each point holds until the next.
    Without a forecast this is just the current value.
    """
    end = start + timedelta(hours=hours)
    points = sorted(
        (point for point in signal.forecast if start < point.at < end), key=lambda point: point.at
    )
    if not points or hours <= 0:
        return signal.carbon_g_per_kwh
    steps: list[ForecastPoint] = [ForecastPoint(at=start, carbon_g_per_kwh=signal.carbon_g_per_kwh), *points]
    weighted = 0.0
    for index, point in enumerate(steps):
        until = steps[index + 1].at if index + 1 < len(steps) else end
        weighted += point.carbon_g_per_kwh * (until - point.at).total_seconds()
    return weighted / (end - start).total_seconds()


def region_cost(
    *,
    region: str,
    demand: PodDemand,
    hints: PlacementHints,
    carbon_g_per_kwh: float,
    hours: float,
    config: EcoPulseConfiguration,
    prices: PriceRates | None = None,
) -> RegionCost:
    """``prices``: the region's quote from the price signal; None prices it from the configuration."""
    prices = prices if prices is not None else config.prices[region]
    energy = pod_energy_kwh(demand, config.power, hours=hours)
    grams = emissions_grams(energy, carbon_g_per_kwh)
    reference = reference_region(hints, config)
    egress_usd = 0.0
    if hints.egress_gb_per_hour > 0:
        egress_usd = (
            hints.egress_gb_per_hour * hours * config.economics.egress_price_usd_per_gb(reference, region)
        )
    latency_usd = 0.0
    if config.economics.latency_penalty_usd_per_ms_hour > 0:
        rtt = config.latency_between_ms(reference, region) or 0.0
        latency_usd = config.economics.latency_penalty_usd_per_ms_hour * rtt * hours
    return RegionCost(
        region=region,
        hours=hours,
        energy_kwh=energy,
        carbon_g_per_kwh=carbon_g_per_kwh,
        emissions_grams=grams,
        compute_usd=prices.per_hour_usd(
            cpu_cores=demand.cpu_cores, memory_gib=demand.memory_gib, capacity_type=demand.capacity_type
        )
        * hours,
        carbon_usd=grams / GRAMS_PER_TONNE * config.economics.effective_carbon_price_usd_per_tonne,
        egress_usd=egress_usd,
        latency_penalty_usd=latency_usd,
    )


def migration_cost_usd(current: RegionCost, config: EcoPulseConfiguration) -> float:
    """Per-move cost plus the restart downtime, priced at the pod's hourly compute cost where it runs."""
    hourly_compute = current.compute_usd / current.hours if current.hours > 0 else 0.0
    downtime_hours = config.economics.restart_downtime_seconds / 3600.0
    return config.economics.migration_cost_usd + hourly_compute * downtime_hours


def lost_progress_usd(current: RegionCost, *, hours_run: float) -> float:
    """What evicting a run-to-completion pod throws away: the hours it has run, at what an hour of it
    costs where it runs (compute and carbon value), since a replacement starts its work again."""
    if current.hours <= 0 or hours_run <= 0:
        return 0.0
    return hours_run * (current.compute_usd + current.carbon_usd) / current.hours


def net_benefit(source: RegionCost, target: RegionCost, *, migration_usd: float) -> NetBenefit:
    return NetBenefit(
        source=source.region,
        target=target.region,
        price_savings_usd=source.compute_usd - target.compute_usd,
        carbon_value_usd=source.carbon_usd - target.carbon_usd,
        migration_cost_usd=migration_usd if source.region != target.region else 0.0,
        egress_cost_usd=target.egress_usd - source.egress_usd,
        latency_penalty_usd=target.latency_penalty_usd - source.latency_penalty_usd,
        avoided_grams=source.emissions_grams - target.emissions_grams,
    )


def robust_net_benefit_usd(
    benefit: NetBenefit,
    source: RegionCost,
    target: RegionCost,
    *,
    held_gaps_g_per_kwh: tuple[float, ...],
    gap_error_g_per_kwh: float,
    confidence_z: float,
    config: EcoPulseConfiguration,
) -> float:
    """The net benefit a move can count on: its carbon value at a gap the grid has lately shown.

    The predicted gap (source minus target mean intensity over the horizon) is replaced by the
    smallest of it and the gaps of the last hours (a gap that has not held is not counted on), less
    ``confidence_z`` times the spread the gap's horizon mean has had around its starting value
    (``core.history``). Everything else (prices, egress, latency, migration) is as predicted. Never
    more than ``benefit.net_usd``: the margin only takes away.
    """
    predicted_gap = source.carbon_g_per_kwh - target.carbon_g_per_kwh
    counted_gap = min((predicted_gap, *held_gaps_g_per_kwh)) - confidence_z * gap_error_g_per_kwh
    price = config.economics.effective_carbon_price_usd_per_tonne
    margin_usd = (predicted_gap - counted_gap) * source.energy_kwh / GRAMS_PER_TONNE * price
    return benefit.net_usd - max(0.0, margin_usd)
