"""Rank regions for a pod: the ONE decision used by the webhook, the extender and the rebalancer. Pure.

A region is assessed against the baseline region over the pod's horizon (see core.economics).
It is eligible only when we know its grid now, the pod allows it, and it is close enough to
the pod's data. When the baseline's own signal is unknown nothing can be said against it,
so the ranking says so and callers do nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from core.config import EcoPulseConfiguration, PlacementMode
from core.economics import (
    NetBenefit,
    RegionCost,
    horizon_hours,
    mean_intensity_g_per_kwh,
    net_benefit,
    reference_region,
    region_cost,
)
from core.model import CapacityType, PlacementHints, PodDemand, SignalSnapshot

MAX_AFFINITY_WEIGHT = 100
MIN_AFFINITY_WEIGHT = 1


class Ineligible(StrEnum):
    NOT_ALLOWED = "not-allowed"  # outside ecopulse.io/allowed-regions
    TOO_FAR = "too-far"  # RTT to the data region above ecopulse.io/max-latency-ms
    LATENCY_UNKNOWN = "latency-unknown"  # max latency asked, but no RTT known for the pair
    NO_SIGNAL = "no-signal"  # no fresh carbon intensity: unknown means do nothing


@dataclass(frozen=True, slots=True, kw_only=True)
class RegionAssessment:
    region: str
    cost: RegionCost | None
    versus_baseline: NetBenefit | None
    ineligible: Ineligible | None = None
    signal_age_seconds: float | None = None
    signal_observed_at: datetime | None = None  # what the decision log cites

    @property
    def eligible(self) -> bool:
        return self.ineligible is None

    @property
    def net_benefit_usd(self) -> float | None:
        return self.versus_baseline.net_usd if self.versus_baseline is not None else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Ranking:
    """Eligible regions best first (highest net benefit against the baseline), then the rest."""

    baseline_region: str
    hours: float
    assessments: tuple[RegionAssessment, ...]
    baseline_known: bool
    # Derived once: the rebalancer asks these of the same ranking for thousands of pods.
    eligible: tuple[RegionAssessment, ...] = field(init=False)
    _by_region: dict[str, RegionAssessment] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "eligible", tuple(a for a in self.assessments if a.eligible))
        object.__setattr__(self, "_by_region", {a.region: a for a in self.assessments})

    @property
    def best(self) -> RegionAssessment | None:
        return self.eligible[0] if self.eligible and self.baseline_known else None

    def assessment(self, region: str) -> RegionAssessment | None:
        return self._by_region.get(region)


def rank_regions(
    *,
    demand: PodDemand,
    hints: PlacementHints,
    signals: SignalSnapshot,
    config: EcoPulseConfiguration,
) -> Ranking:
    hours = horizon_hours(hints, config)
    reference = reference_region(hints, config)
    costs: dict[str, RegionCost] = {}
    ages: dict[str, float] = {}
    observed: dict[str, datetime] = {}
    for region in config.regions:
        signal = signals.known(region.name)
        if signal is None:
            continue
        intensity = mean_intensity_g_per_kwh(signal, start=signals.taken_at, hours=hours)
        costs[region.name] = region_cost(
            region=region.name,
            demand=demand,
            hints=hints,
            carbon_g_per_kwh=intensity,
            hours=hours,
            config=config,
            prices=signals.price_rates(region.name),
        )
        ages[region.name] = signal.age_seconds(signals.taken_at)
        observed[region.name] = signal.observed_at

    baseline_cost = costs.get(config.baseline_region)
    assessments: list[RegionAssessment] = []
    for region in config.regions:
        name = region.name
        reason = _ineligibility(name, hints=hints, reference=reference, config=config)
        cost = costs.get(name)
        if reason is None and cost is None:
            reason = Ineligible.NO_SIGNAL
        versus = (
            net_benefit(baseline_cost, cost, migration_usd=0.0)
            if baseline_cost is not None and cost is not None
            else None
        )
        assessments.append(
            RegionAssessment(
                region=name,
                cost=cost,
                versus_baseline=versus,
                ineligible=reason,
                signal_age_seconds=ages.get(name),
                signal_observed_at=observed.get(name),
            )
        )

    def order(assessment: RegionAssessment) -> tuple[int, float, str]:
        # Best first; ties broken by name so every replica and every path agrees.
        total = assessment.cost.total_usd if assessment.cost is not None else float("inf")
        return (0 if assessment.eligible else 1, total, assessment.region)

    assessments.sort(key=order)
    return Ranking(
        baseline_region=config.baseline_region,
        hours=hours,
        assessments=tuple(assessments),
        baseline_known=baseline_cost is not None,
    )


def permitted_regions(hints: PlacementHints, config: EcoPulseConfiguration) -> tuple[str, ...]:
    """The configured regions a pod's hints allow (allowed regions, latency to its data), in
    config order: what a region needs besides a signal to be eligible."""
    reference = reference_region(hints, config)
    return tuple(
        region.name
        for region in config.regions
        if _ineligibility(region.name, hints=hints, reference=reference, config=config) is None
    )


def _ineligibility(
    region: str, *, hints: PlacementHints, reference: str, config: EcoPulseConfiguration
) -> Ineligible | None:
    if hints.allowed_regions is not None and region not in hints.allowed_regions:
        return Ineligible.NOT_ALLOWED
    if hints.max_latency_ms is not None:
        rtt = config.latency_between_ms(reference, region)
        if rtt is None:
            return Ineligible.LATENCY_UNKNOWN
        if rtt > hints.max_latency_ms:
            return Ineligible.TOO_FAR
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class PlacementChoice:
    """What to ask of the scheduler: preferred terms (region, weight) and, in required mode, a hard set."""

    best_region: str
    preferred: tuple[tuple[str, int], ...]
    required_regions: tuple[str, ...] | None

    @property
    def landing_regions(self) -> tuple[str, ...]:
        """Where the scheduler puts the pod, most preferred first: the first of these with room.

        In required mode the required set (in ranking order); in preferred mode the preferred
        terms, heaviest first (the ranking order too). The rebalancer plans moves with this, so a
        move it proposes lands where the webhook sends the replacement.
        """
        if self.required_regions is not None:
            return self.required_regions
        return tuple(region for region, _ in self.preferred)


class NoChoice(StrEnum):
    BASELINE_UNKNOWN = "baseline-signal-unknown"
    NO_ELIGIBLE_REGION = "no-eligible-region"
    BELOW_FLOOR = "no-region-above-floor"


def choose_regions(ranking: Ranking, config: EcoPulseConfiguration) -> PlacementChoice | NoChoice:
    if not ranking.baseline_known:
        return NoChoice.BASELINE_UNKNOWN
    eligible = ranking.eligible
    if not eligible:
        return NoChoice.NO_ELIGIBLE_REGION
    placement = config.placement
    if placement.mode is PlacementMode.REQUIRED:
        allowed = [a for a in eligible if (a.net_benefit_usd or 0.0) >= placement.min_net_benefit_usd]
        if not allowed:
            return NoChoice.BELOW_FLOOR
        chosen = allowed[: placement.required_region_count]
        return PlacementChoice(
            best_region=chosen[0].region,
            preferred=_weights(chosen),
            required_regions=tuple(a.region for a in chosen),
        )
    chosen = list(eligible[: placement.max_preferred_regions])
    return PlacementChoice(best_region=chosen[0].region, preferred=_weights(chosen), required_regions=None)


def _weights(chosen: list[RegionAssessment]) -> tuple[tuple[str, int], ...]:
    """Best region 100; the others scaled linearly by net benefit down to 1 for the worst chosen."""
    benefits = [a.net_benefit_usd or 0.0 for a in chosen]
    high, low = max(benefits), min(benefits)
    weights: list[tuple[str, int]] = []
    for assessment, benefit in zip(chosen, benefits, strict=True):
        if high - low <= 1e-12:
            weight = MAX_AFFINITY_WEIGHT
        else:
            span = MAX_AFFINITY_WEIGHT - MIN_AFFINITY_WEIGHT
            weight = MIN_AFFINITY_WEIGHT + round(span * (benefit - low) / (high - low))
        weights.append((assessment.region, weight))
    return tuple(weights)


def landing_capacity(
    demand: PodDemand, *, offered: frozenset[CapacityType], current: CapacityType
) -> tuple[CapacityType, bool]:
    """The capacity type a pod will run on in a region, and whether that is an assumption.

    A pod that asks for a capacity type gets it. Otherwise the scheduler puts it on whatever the
    region offers: the one type there, or, when the region offers both (or no node is known), the
    type it runs on now: like for like, assumed (True), and every decision says so.
    """
    if demand.capacity_constrained:
        return demand.capacity_type, False
    if len(offered) == 1:
        return next(iter(offered)), False
    return current, True


def extender_scores(ranking: Ranking, *, max_score: int = 10) -> dict[str, int]:
    """Scores 0..max_score per region for the scheduler extender: same ranking, scaled.

    Regions we know nothing about (or that are ineligible) get 0 only if there is at least one
    eligible region; with no usable ranking every region is neutral (the caller fails open).
    """
    eligible = ranking.eligible if ranking.baseline_known else ()
    if not eligible:
        return {}
    totals = {a.region: a.cost.total_usd for a in eligible if a.cost is not None}
    best, worst = min(totals.values()), max(totals.values())
    scores: dict[str, int] = {}
    for assessment in ranking.assessments:
        total = totals.get(assessment.region)
        if total is None:
            scores[assessment.region] = 0
        elif worst - best <= 1e-12:
            scores[assessment.region] = max_score
        else:
            scores[assessment.region] = round(max_score * (worst - total) / (worst - best))
    return scores
