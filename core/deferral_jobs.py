"""A held or holdable Job as the deferral planner (core.deferral) sees it. Pure.

The webhook (whether to hold) and the rebalancer's release loop (when and where to release) ask
the same planner the same question through :func:`plan_job`: the Job's run length, deadline,
one pod's demand times its parallelism, its hints, and the forecasts of the pass.

Forecasts come from the signals' provider where it forecasts (:func:`snapshot_forecasts`), else,
in the release loop, from the embedded forecaster over the rebalancer's history (core.forecast).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from core.config import EcoPulseConfiguration
from core.deferral import (
    DeferralRequest,
    ForecastTable,
    HourlyForecast,
    StartPlan,
    deferral_request,
    plan_start,
)
from core.deferral_hints import DeferralIntent, JobFacts
from core.forecast import provider_forecast
from core.model import REGION_LABEL, PlacementHints, PriceRates, SignalSnapshot
from core.podspec import as_mapping, region_constraints, string_map


def user_constrained(facts: JobFacts) -> bool:
    """The Job's own template steers the region: a release then pins none of ours."""
    return bool(region_constraints(as_mapping(facts.template.get("spec"))))


def job_hints(facts: JobFacts, hints: PlacementHints) -> PlacementHints:
    """A region the template's nodeSelector pins is the only one the planner may choose."""
    selector = string_map(as_mapping(facts.template.get("spec")).get("nodeSelector"))
    pinned = selector.get(REGION_LABEL)
    if not pinned:
        return hints
    allowed = frozenset({pinned}) if hints.allowed_regions is None else hints.allowed_regions & {pinned}
    return PlacementHints(
        max_latency_ms=hints.max_latency_ms,
        data_region=hints.data_region,
        egress_gb_per_hour=hints.egress_gb_per_hour,
        allowed_regions=allowed,
        expected_runtime_hours=hints.expected_runtime_hours,
    )


def job_request(
    facts: JobFacts,
    intent: DeferralIntent,
    *,
    hints: PlacementHints,
    config: EcoPulseConfiguration,
    now: datetime,
) -> DeferralRequest:
    """``now`` stands for the creation time at admission (the API server sets it after us)."""
    return deferral_request(
        runtime_hours=intent.runtime_hours or 0.0,
        not_before=min(facts.created_at or now, now),
        deadline=intent.deadline,
        demand=facts.demand,
        hints=job_hints(facts, hints),
        home_region=config.baseline_region,
        config=config,
        pods=facts.parallelism,
        safety_margin_seconds=config.deferral.safety_margin_seconds,
    )


def snapshot_forecasts(signals: SignalSnapshot, *, now: datetime) -> list[HourlyForecast]:
    """Each region's signal as the planner's hourly forecast (core.forecast.provider_forecast): the
    current value alone where the provider does not forecast."""
    return [provider_forecast(signals.carbon[region], now=now) for region in sorted(signals.carbon)]


def plan_job(
    facts: JobFacts,
    intent: DeferralIntent,
    *,
    hints: PlacementHints,
    forecasts: ForecastTable | Iterable[HourlyForecast],
    config: EcoPulseConfiguration,
    now: datetime,
    confidence_z: float,
    prices: Mapping[str, PriceRates] | None = None,
) -> StartPlan:
    """Where and when the Job should start (core.deferral.plan_start); ``prices`` the live rates."""
    return plan_start(
        job_request(facts, intent, hints=hints, config=config, now=now),
        forecasts=forecasts,
        now=now,
        config=config,
        min_benefit_usd=config.deferral.min_benefit_usd,
        confidence_z=confidence_z,
        prices=prices,
    )


def describe_plan(plan: StartPlan) -> str:
    """The plan in a few words, for the decision annotation and the Events."""
    when = "now" if plan.release_now else f"{plan.start:%Y-%m-%dT%H:%MZ}"
    grams = f"{plan.chosen_carbon_g_per_kwh:.0f}" if plan.chosen_carbon_g_per_kwh is not None else "?"
    now_grams = f"{plan.now_carbon_g_per_kwh:.0f}" if plan.now_carbon_g_per_kwh is not None else "?"
    text = (
        f"{plan.reason}: start {when} in {plan.region} ({grams} g/kWh; now {now_grams} in {plan.now_region})"
    )
    if not plan.release_now:
        text += f"; saves {plan.carbon_avoided_g:.1f} g, {plan.expected_net_benefit_usd:+.4f} USD"
    return text
