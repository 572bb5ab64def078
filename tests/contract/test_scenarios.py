"""The shipped simulate scenarios: they parse, they run on the bundled sample trace, and the
two-continent one is priced from the same table the cluster uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.catalog import load_price_table
from core.config import load_config
from core.trace import load_trace
from rebalancer.simulate.cli import SAMPLE_TRACE
from rebalancer.simulate.engine import CARBON_BLIND, ECOPULSE, HOURLY_ORACLE, Simulator
from rebalancer.simulate.workload import load_workload

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = {
    "EU": REPO / "examples" / "simulate",
    "two-continents": REPO / "examples" / "simulate" / "two-continents",
}


@pytest.mark.parametrize("scenario", SCENARIOS.values(), ids=list(SCENARIOS))
def test_each_scenario_runs_on_the_bundled_sample(scenario: Path) -> None:
    config = load_config(scenario / "config.yaml")
    workload = load_workload(scenario / "workload.yaml", regions=frozenset(config.region_names))
    trace = load_trace(SAMPLE_TRACE, zones={r.zone for r in config.regions})
    result = Simulator(config=config, trace=trace, workload=workload).run()
    assert result.reduction_percent(ECOPULSE) > 0
    assert all(m.realised_net_benefit_usd > 0 for m in result.policies[ECOPULSE].moves)
    assert result.policies[HOURLY_ORACLE].emissions_grams < result.policies[CARBON_BLIND].emissions_grams


def test_two_continents_prices_come_from_the_bundled_table() -> None:
    config = load_config(SCENARIOS["two-continents"] / "config.yaml")
    table = load_price_table()
    for region in config.region_names:
        # Norway has no priced cloud region: no-oslo copies GCP europe-north1 (Hamina), checked here.
        bundled = table["europe-north1" if region == "no-oslo" else region]
        resolved = config.prices[region]
        assert (resolved.vcpu_hour_usd, resolved.gib_hour_usd) == (
            bundled.vcpu_hour_usd,
            bundled.gib_hour_usd,
        )
        assert (resolved.spot_vcpu_hour_usd, resolved.spot_gib_hour_usd) == (
            bundled.spot_vcpu_hour_usd,
            bundled.spot_gib_hour_usd,
        )
    spot = {r: config.prices[r].spot_vcpu_hour_usd for r in config.region_names}
    assert max(spot.values()) > 1.3 * min(spot.values())  # spot prices that differ per region
    # maxLatencyMs rules regions out: web (40 ms) cannot leave Europe
    assert config.latency_between_ms("europe-west3", "us-west-1") == 151
