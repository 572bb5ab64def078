"""How a move, made or refused, explains itself: one text and one set of log fields for both. Pure.

An eviction and a refusal carry the same breakdown (price, carbon value, egress, latency,
migration, the capacity types priced, the robust figure), so a pod left in a dirty region says
exactly what moving it would have gained and cost.
"""

from __future__ import annotations

from rebalancer.planner import Candidate, MoveFigures, Refusal


def breakdown(figures: MoveFigures) -> str:
    """``net benefit +0.0123 USD = price savings ... - latency ...; priced on-demand -> on-demand; ...``"""
    b = figures.benefit
    robust = (
        "" if figures.robust_net_usd is None else f"; robust net benefit {figures.robust_net_usd:+.4f} USD"
    )
    return (
        f"net benefit {b.net_usd:+.4f} USD = price savings {b.price_savings_usd:+.4f} "
        f"+ carbon value {b.carbon_value_usd:+.4f} "
        f"- migration {b.migration_cost_usd:.4f} - egress {b.egress_cost_usd:.4f} - latency "
        f"{b.latency_penalty_usd:.4f}; avoids {b.avoided_grams:.1f} gCO2eq; "
        f"priced {figures.source_capacity} -> {figures.target_capacity}"
        f"{' (assumed)' if figures.capacity_assumed else ''}{robust}"
    )


def explain_move(candidate: Candidate) -> str:
    """The eviction's Event note and log reason: from where to where, intensities, the breakdown."""
    return (
        f"moving from {candidate.source_region} ({candidate.source_g_per_kwh:.0f} gCO2/kWh) to "
        f"{candidate.target_region} ({candidate.target_g_per_kwh:.0f} gCO2/kWh): "
        f"{breakdown(candidate.figures)}{'; ' + candidate.prices if candidate.prices else ''}"
    )


def explain_refusal(refusal: Refusal) -> str:
    """Why the pod stays where it runs, and what the move refused would have been."""
    figures = refusal.figures
    if figures is None:
        where = f" in {refusal.source_region}" if refusal.source_region else ""
        toward = f"; its best region is {refusal.target_region}" if refusal.target_region else ""
        return f"stays{where}: {refusal.reason}{toward}"
    return (
        f"stays in {refusal.source_region} ({figures.source_g_per_kwh:.0f} gCO2/kWh): {refusal.reason}; "
        f"moving to {figures.benefit.target} ({figures.target_g_per_kwh:.0f} gCO2/kWh): "
        f"{breakdown(figures)}"
    )


def figure_fields(figures: MoveFigures | None) -> dict[str, object]:
    """The breakdown as structured log fields (absent when nothing was priced)."""
    if figures is None:
        return {}
    b = figures.benefit
    return {
        "source_g_per_kwh": round(figures.source_g_per_kwh, 3),
        "target_g_per_kwh": round(figures.target_g_per_kwh, 3),
        "price_savings_usd": round(b.price_savings_usd, 6),
        "carbon_value_usd": round(b.carbon_value_usd, 6),
        "migration_cost_usd": round(b.migration_cost_usd, 6),
        "egress_cost_usd": round(b.egress_cost_usd, 6),
        "latency_penalty_usd": round(b.latency_penalty_usd, 6),
        "avoided_grams": round(b.avoided_grams, 3),
        "source_capacity_type": str(figures.source_capacity),
        "target_capacity_type": str(figures.target_capacity),
        "target_capacity_assumed": figures.capacity_assumed,
        "robust_net_benefit_usd": None
        if figures.robust_net_usd is None
        else round(figures.robust_net_usd, 6),
    }
