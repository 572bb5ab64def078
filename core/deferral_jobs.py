"""A held or holdable Job as the deferral planner sees it, and the planner's answer for it. Pure.

The webhook (whether to hold) and the rebalancer's release loop (when and where to release) ask
the same question of the same function, :func:`plan_job`: from the Job's facts, its resolved
intent and hints, the signals (with their forecasts) and the configuration, the best (region,
start) before the Job's latest start, and whether it is now.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.config import EcoPulseConfiguration
from core.deferral_hints import DeferralIntent, JobFacts, release_by
from core.model import REGION_LABEL, PlacementHints, PodDemand, SignalSnapshot
from core.podspec import as_mapping, pod_demand, region_constraints, string_map
from core.power import emissions_grams, pod_energy_kwh

# Waiting must cut the run's emissions by at least this share of starting now, in the best
# region now; a smaller saving is inside any forecast's error.
MIN_SAVING_FRACTION = 0.05


@dataclass(frozen=True, slots=True, kw_only=True)
class JobPlan:
    """Where and when the Job should start; ``release_now`` when that is now."""

    region: str
    start: datetime
    release_now: bool
    reason: str  # why: the planner's words, for the decision annotation and logs
    # Waiting's expected saving against starting now in the best region now (0 when not waiting).
    avoided_grams: float = 0.0
    avoided_usd: float = 0.0


def job_demand(facts: JobFacts) -> PodDemand:
    """One pod's demand times the Job's parallelism is not known here: one pod's, as placement counts."""
    return pod_demand({"spec": as_mapping(facts.template.get("spec"))})


def pinned_regions(facts: JobFacts) -> tuple[str, ...]:
    """Regions the user's own template already constrains to ("" list when none)."""
    spec = as_mapping(facts.template.get("spec"))
    selector = string_map(spec.get("nodeSelector"))
    region = selector.get(REGION_LABEL)
    return (region,) if region else ()


def user_constrained(facts: JobFacts) -> bool:
    return bool(region_constraints(as_mapping(facts.template.get("spec"))))


def plan_job(
    facts: JobFacts,
    intent: DeferralIntent,
    *,
    hints: PlacementHints,
    signals: SignalSnapshot,
    config: EcoPulseConfiguration,
    now: datetime,
) -> JobPlan | None:
    """None: no fresh signal for any region the Job may run in (nothing to plan with)."""
    runtime_hours = intent.runtime_hours or 0.0
    latest = release_by(
        intent.deadline, runtime_hours=runtime_hours, margin_seconds=config.deferral.safety_margin_seconds
    )
    allowed = set(config.known_regions)
    if hints.allowed_regions is not None:
        allowed &= hints.allowed_regions
    pinned = pinned_regions(facts)
    if pinned:
        allowed &= set(pinned)
    candidates = sorted(region for region in allowed if signals.known(region) is not None)
    if not candidates:
        return None
    demand = job_demand(facts)
    energy_kwh = pod_energy_kwh(demand, config.power, hours=max(runtime_hours, 1e-9))
    slots: list[tuple[float, datetime, str]] = []
    for region in candidates:
        signal = signals.carbon[region]
        slots.append((signal.carbon_g_per_kwh, now, region))
        for point in signal.forecast:
            if now < point.at <= latest:
                slots.append((point.carbon_g_per_kwh, point.at, region))
    now_best = min((slot for slot in slots if slot[1] == now), key=lambda s: (s[0], s[2]))
    best = min(slots, key=lambda s: (s[0], s[1], s[2]))
    saving = now_best[0] - best[0]
    price = config.economics.effective_carbon_price_usd_per_tonne / 1e6
    if best[1] <= now or saving < MIN_SAVING_FRACTION * now_best[0] or now >= latest:
        return JobPlan(
            region=now_best[2],
            start=now,
            release_now=True,
            reason=f"start now in {now_best[2]} ({now_best[0]:.0f} g/kWh)",
        )
    avoided = emissions_grams(energy_kwh, saving)
    return JobPlan(
        region=best[2],
        start=best[1],
        release_now=False,
        reason=f"start {best[1]:%Y-%m-%dT%H:%MZ} in {best[2]} ({best[0]:.0f} vs {now_best[0]:.0f} g/kWh now)",
        avoided_grams=avoided,
        avoided_usd=avoided * price,
    )


def forecast_horizon(signals: SignalSnapshot, now: datetime) -> Mapping[str, timedelta]:
    """How far ahead each region's forecast reaches (a metric)."""
    return {
        region: (max(p.at for p in signal.forecast) - now) if signal.forecast else timedelta(0)
        for region, signal in signals.carbon.items()
    }
