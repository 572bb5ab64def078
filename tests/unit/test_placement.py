"""core.placement: one ranking for every caller, the choice it leads to, and the scores it gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from core.config import EcoPulseConfiguration, parse_config_text
from core.model import CarbonSignal, PlacementHints, PodDemand, SignalSnapshot
from core.placement import (
    MAX_AFFINITY_WEIGHT,
    MIN_AFFINITY_WEIGHT,
    Ineligible,
    NoChoice,
    PlacementChoice,
    Ranking,
    choose_regions,
    extender_scores,
    rank_regions,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
NAMES = ("us-east-1", "eu-west-1", "eu-north-1")
SAME_PRICE = {"vcpuHour": 0.04, "gibHour": 0.005, "spotVcpuHour": 0.015, "spotGibHour": 0.002}
POD = PodDemand(cpu_cores=2.0, memory_gib=4.0)
NO_HINTS = PlacementHints()


def config(*, equal_prices: bool = True, **sections: Any) -> EcoPulseConfiguration:
    doc: dict[str, Any] = {
        "apiVersion": "ecopulse.io/v1alpha1",
        "kind": "EcoPulseConfiguration",
        "regions": [{"name": name} for name in NAMES],
        "baselineRegion": "us-east-1",
    }
    if equal_prices:
        doc["prices"] = dict.fromkeys(NAMES, SAME_PRICE)
    doc.update(sections)
    return parse_config_text(yaml.safe_dump(doc))


def snapshot(values: dict[str, float], *, age_seconds: float = 0.0) -> SignalSnapshot:
    fetched = T0 - timedelta(seconds=age_seconds)
    return SignalSnapshot(
        taken_at=T0,
        provider="test",
        carbon={
            name: CarbonSignal(
                region=name,
                zone="Z",
                carbon_g_per_kwh=value,
                observed_at=fetched,
                fetched_at=fetched,
                source="test",
            )
            for name, value in values.items()
        },
    )


def rank(values: dict[str, float], cfg: EcoPulseConfiguration, hints: PlacementHints = NO_HINTS) -> Ranking:
    return rank_regions(demand=POD, hints=hints, signals=snapshot(values), config=cfg)


PREFERRED = config()
GRID = {"us-east-1": 400.0, "eu-west-1": 300.0, "eu-north-1": 30.0}


def order(ranking: Ranking) -> list[str]:
    return [a.region for a in ranking.assessments]


# --- ranking ------------------------------------------------------------------------------------


def test_rank_orders_by_net_benefit_against_the_baseline() -> None:
    ranking = rank(GRID, PREFERRED)
    assert order(ranking) == ["eu-north-1", "eu-west-1", "us-east-1"]
    benefits = [a.net_benefit_usd for a in ranking.assessments]
    assert all(b is not None for b in benefits)
    assert benefits == sorted(benefits, key=lambda b: -(b or 0.0))
    baseline = ranking.assessment("us-east-1")
    assert baseline is not None
    assert baseline.net_benefit_usd == 0.0
    assert ranking.baseline_known
    assert ranking.best is not None
    assert ranking.best.region == "eu-north-1"
    assert ranking.hours == 6.0


def test_net_benefit_against_the_baseline_by_hand() -> None:
    ranking = rank(GRID, PREFERRED)
    energy = 5.808 * 1.135 * 6 / 1000
    north = ranking.assessment("eu-north-1")
    assert north is not None
    assert north.net_benefit_usd == pytest.approx(energy * (400 - 30) / 1e6 * 100)


def test_prices_can_outweigh_carbon() -> None:
    cheap_dirty = {**SAME_PRICE, "vcpuHour": 0.001, "gibHour": 0.0001}
    cfg = config(prices={"us-east-1": SAME_PRICE, "eu-west-1": cheap_dirty, "eu-north-1": SAME_PRICE})
    ranking = rank({"us-east-1": 400.0, "eu-west-1": 900.0, "eu-north-1": 30.0}, cfg)
    assert order(ranking)[0] == "eu-west-1"


def test_the_pods_expected_runtime_is_the_horizon() -> None:
    ranking = rank(GRID, PREFERRED, PlacementHints(expected_runtime_hours=2.0))
    assert ranking.hours == 2.0
    north = ranking.assessment("eu-north-1")
    assert north is not None
    assert north.cost is not None
    assert north.cost.hours == 2.0


def test_regions_without_a_signal_are_ineligible_and_last() -> None:
    ranking = rank({"us-east-1": 400.0, "eu-north-1": 30.0}, PREFERRED)
    assert order(ranking) == ["eu-north-1", "us-east-1", "eu-west-1"]
    west = ranking.assessment("eu-west-1")
    assert west is not None
    assert west.ineligible is Ineligible.NO_SIGNAL
    assert not west.eligible
    assert west.cost is None
    assert west.net_benefit_usd is None
    assert [a.region for a in ranking.eligible] == ["eu-north-1", "us-east-1"]


def test_signal_age_is_reported() -> None:
    ranking = rank_regions(
        demand=POD, hints=NO_HINTS, signals=snapshot(GRID, age_seconds=90), config=PREFERRED
    )
    assert {a.signal_age_seconds for a in ranking.assessments} == {90.0}


def test_regions_outside_allowed_regions_are_not_allowed() -> None:
    hints = PlacementHints(allowed_regions=frozenset({"us-east-1", "eu-west-1"}))
    ranking = rank(GRID, PREFERRED, hints)
    north = ranking.assessment("eu-north-1")
    assert north is not None
    assert north.ineligible is Ineligible.NOT_ALLOWED
    assert north.cost is not None  # still costed, for the record
    assert order(ranking) == ["eu-west-1", "us-east-1", "eu-north-1"]
    choice = choose_regions(ranking, PREFERRED)
    assert isinstance(choice, PlacementChoice)
    assert choice.best_region == "eu-west-1"


def test_regions_too_far_from_the_data_are_excluded() -> None:
    cfg = config(latencyMs={"us-east-1": {"eu-west-1": 80, "eu-north-1": 120}})
    hints = PlacementHints(max_latency_ms=100.0, data_region="us-east-1")
    ranking = rank(GRID, cfg, hints)
    reasons = {a.region: a.ineligible for a in ranking.assessments}
    assert reasons == {"us-east-1": None, "eu-west-1": None, "eu-north-1": Ineligible.TOO_FAR}
    # exactly at the limit is close enough
    at_limit = rank(GRID, cfg, PlacementHints(max_latency_ms=120.0))
    assert all(a.eligible for a in at_limit.assessments)


def test_a_region_with_no_known_latency_is_excluded_when_a_maximum_is_asked() -> None:
    cfg = config(
        equal_prices=False,
        regions=[{"name": "us-east-1"}, {"name": "my-dc", "zone": "XX-NOWHERE"}],
        prices={"my-dc": SAME_PRICE},
    )
    values = {"us-east-1": 400.0, "my-dc": 10.0}
    unbounded = rank(values, cfg)
    assert all(a.eligible for a in unbounded.assessments)
    ranking = rank(values, cfg, PlacementHints(max_latency_ms=50.0))
    my_dc = ranking.assessment("my-dc")
    assert my_dc is not None
    assert my_dc.ineligible is Ineligible.LATENCY_UNKNOWN


def test_an_exclusion_reason_wins_over_no_signal() -> None:
    hints = PlacementHints(allowed_regions=frozenset({"us-east-1"}))
    ranking = rank({"us-east-1": 400.0}, PREFERRED, hints)
    west = ranking.assessment("eu-west-1")
    assert west is not None
    assert west.ineligible is Ineligible.NOT_ALLOWED


# --- choosing -----------------------------------------------------------------------------------


def test_baseline_unknown_means_no_choice_and_no_scores() -> None:
    ranking = rank({"eu-west-1": 300.0, "eu-north-1": 30.0}, PREFERRED)
    assert not ranking.baseline_known
    assert ranking.best is None
    assert all(a.net_benefit_usd is None for a in ranking.assessments)
    assert choose_regions(ranking, PREFERRED) is NoChoice.BASELINE_UNKNOWN
    assert extender_scores(ranking) == {}


def test_no_eligible_region_means_no_choice() -> None:
    ranking = rank(GRID, PREFERRED, PlacementHints(allowed_regions=frozenset()))
    assert choose_regions(ranking, PREFERRED) is NoChoice.NO_ELIGIBLE_REGION
    assert extender_scores(ranking) == {}


def test_preferred_mode_weighs_best_100_and_worst_chosen_1() -> None:
    choice = choose_regions(rank(GRID, PREFERRED), PREFERRED)
    assert isinstance(choice, PlacementChoice)
    assert choice.required_regions is None
    assert choice.best_region == "eu-north-1"
    weights = dict(choice.preferred)
    assert [region for region, _ in choice.preferred] == ["eu-north-1", "eu-west-1", "us-east-1"]
    assert weights["eu-north-1"] == 100
    assert weights["us-east-1"] == 1
    # eu-west-1 sits at (400 - 300) / (400 - 30) of the span: 1 + round(99 x 100 / 370) = 28
    assert weights["eu-west-1"] == 28


def test_preferred_mode_keeps_at_most_max_preferred_regions() -> None:
    cfg = config(placement={"maxPreferredRegions": 2})
    choice = choose_regions(rank(GRID, cfg), cfg)
    assert isinstance(choice, PlacementChoice)
    assert choice.preferred == (("eu-north-1", 100), ("eu-west-1", 1))


def test_all_equal_regions_all_weigh_100() -> None:
    choice = choose_regions(rank(dict.fromkeys(NAMES, 250.0), PREFERRED), PREFERRED)
    assert isinstance(choice, PlacementChoice)
    assert [weight for _, weight in choice.preferred] == [100, 100, 100]
    assert choice.best_region == "eu-north-1"  # ties broken by name


def test_a_single_chosen_region_weighs_100() -> None:
    ranking = rank(GRID, PREFERRED, PlacementHints(allowed_regions=frozenset({"eu-west-1"})))
    choice = choose_regions(ranking, PREFERRED)
    assert isinstance(choice, PlacementChoice)
    assert choice.preferred == (("eu-west-1", 100),)


def test_required_mode_returns_the_top_required_region_count() -> None:
    cfg = config(placement={"mode": "required", "requiredRegionCount": 2})
    choice = choose_regions(rank(GRID, cfg), cfg)
    assert isinstance(choice, PlacementChoice)
    assert choice.required_regions == ("eu-north-1", "eu-west-1")
    assert choice.best_region == "eu-north-1"
    assert choice.preferred == (("eu-north-1", 100), ("eu-west-1", 1))


def test_required_mode_keeps_only_regions_above_the_floor() -> None:
    ranking = rank(GRID, PREFERRED)
    north, west = ranking.assessment("eu-north-1"), ranking.assessment("eu-west-1")
    assert north is not None
    assert west is not None
    assert north.net_benefit_usd is not None
    assert west.net_benefit_usd is not None
    floor = (north.net_benefit_usd + west.net_benefit_usd) / 2
    cfg = config(placement={"mode": "required", "requiredRegionCount": 3, "minNetBenefitUsd": floor})
    choice = choose_regions(rank(GRID, cfg), cfg)
    assert isinstance(choice, PlacementChoice)
    assert choice.required_regions == ("eu-north-1",)
    assert choice.preferred == (("eu-north-1", 100),)


def test_required_mode_with_no_region_above_the_floor_is_below_floor() -> None:
    cfg = config(placement={"mode": "required", "minNetBenefitUsd": 1000.0})
    assert choose_regions(rank(GRID, cfg), cfg) is NoChoice.BELOW_FLOOR


def test_required_mode_with_a_zero_floor_includes_the_baseline_itself() -> None:
    cfg = config(placement={"mode": "required", "requiredRegionCount": 3})
    choice = choose_regions(rank(GRID, cfg), cfg)
    assert isinstance(choice, PlacementChoice)
    assert choice.required_regions == ("eu-north-1", "eu-west-1", "us-east-1")


# --- extender scores -----------------------------------------------------------------------------


def test_extender_scores_by_hand() -> None:
    scores = extender_scores(rank(GRID, PREFERRED))
    # linear in total cost: eu-west-1 at 100/370 of the way from the worst
    assert scores == {"eu-north-1": 10, "eu-west-1": 3, "us-east-1": 0}


def test_extender_scores_give_ineligible_regions_zero_and_equal_regions_the_maximum() -> None:
    scores = extender_scores(rank({"us-east-1": 200.0, "eu-north-1": 200.0}, PREFERRED))
    assert scores == {"us-east-1": 10, "eu-north-1": 10, "eu-west-1": 0}
    assert extender_scores(rank(GRID, PREFERRED), max_score=100)["eu-north-1"] == 100


# --- properties ----------------------------------------------------------------------------------

grid_values = st.fixed_dictionaries(
    {},
    optional={name: st.floats(0, 2000) for name in NAMES},
)
CONFIGS = [
    PREFERRED,
    config(equal_prices=False),
    config(placement={"mode": "required", "requiredRegionCount": 2, "maxPreferredRegions": 1}),
    config(equal_prices=False, placement={"maxPreferredRegions": 2}),
]
configs = st.sampled_from(CONFIGS)
hint_values = st.builds(
    PlacementHints,
    egress_gb_per_hour=st.floats(0, 5),
    data_region=st.none() | st.sampled_from(NAMES),
    expected_runtime_hours=st.none() | st.floats(0.1, 100),
)


@given(grid_values, configs, hint_values)
def test_the_best_region_has_the_lowest_total_cost(
    values: dict[str, float], cfg: EcoPulseConfiguration, hints: PlacementHints
) -> None:
    ranking = rank(values, cfg, hints)
    eligible = ranking.eligible
    assert [a.region for a in eligible] == [a.region for a in ranking.assessments[: len(eligible)]]
    if ranking.best is None:
        assert "us-east-1" not in values or not eligible
        return
    assert ranking.best.cost is not None
    totals = [a.cost.total_usd for a in eligible if a.cost is not None]
    assert ranking.best.cost.total_usd == min(totals)
    assert totals == sorted(totals)
    for assessment in eligible:
        assert assessment.net_benefit_usd is not None
        assert assessment.cost is not None
        assert ranking.best.net_benefit_usd is not None
        assert assessment.net_benefit_usd <= ranking.best.net_benefit_usd + 1e-9


@given(grid_values, configs, hint_values)
def test_the_ranking_is_deterministic(
    values: dict[str, float], cfg: EcoPulseConfiguration, hints: PlacementHints
) -> None:
    first = rank(values, cfg, hints)
    again = rank(dict(reversed(list(values.items()))), cfg, hints)
    assert first == again
    assert choose_regions(first, cfg) == choose_regions(again, cfg)
    assert extender_scores(first) == extender_scores(again)


@given(grid_values, configs, hint_values)
def test_weights_are_within_1_to_100_and_the_best_gets_100(
    values: dict[str, float], cfg: EcoPulseConfiguration, hints: PlacementHints
) -> None:
    ranking = rank(values, cfg, hints)
    choice = choose_regions(ranking, cfg)
    if isinstance(choice, NoChoice):
        return
    weights = [weight for _, weight in choice.preferred]
    assert all(MIN_AFFINITY_WEIGHT <= weight <= MAX_AFFINITY_WEIGHT for weight in weights)
    benefit = {a.region: a.net_benefit_usd for a in ranking.eligible}
    best_benefit = max(benefit[region] or 0.0 for region, _ in choice.preferred)
    for region, weight in choice.preferred:
        if benefit[region] == best_benefit:
            assert weight == MAX_AFFINITY_WEIGHT
    if len(set(weights)) > 1:
        assert min(weights) == MIN_AFFINITY_WEIGHT
    assert choice.best_region == choice.preferred[0][0]
    if choice.required_regions is None:
        assert ranking.best is not None
        assert choice.best_region == ranking.best.region
        expected = [a.region for a in ranking.eligible[: cfg.placement.max_preferred_regions]]
    else:
        # the ranking's order, keeping only regions at or above the floor
        floor = cfg.placement.min_net_benefit_usd
        above = [a.region for a in ranking.eligible if (a.net_benefit_usd or 0.0) >= floor]
        expected = above[: cfg.placement.required_region_count]
        assert list(choice.required_regions) == expected
    assert [region for region, _ in choice.preferred] == expected


@given(grid_values, configs, hint_values)
def test_extender_scores_are_within_0_to_10_and_the_best_gets_10(
    values: dict[str, float], cfg: EcoPulseConfiguration, hints: PlacementHints
) -> None:
    ranking = rank(values, cfg, hints)
    scores = extender_scores(ranking)
    if ranking.best is None:
        assert scores == {}
        return
    assert set(scores) == set(NAMES)
    assert all(0 <= score <= 10 for score in scores.values())
    assert scores[ranking.best.region] == 10
    for assessment in ranking.assessments:
        if not assessment.eligible:
            assert scores[assessment.region] == 0
