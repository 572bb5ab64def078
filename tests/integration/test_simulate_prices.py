"""`simulate --prices FILE`: replayed hourly prices change the decisions and the costs, and the
report names the file; a bad file is a clear error naming its line (docs/trace-format.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.model import PriceRates
from core.signals.prices.replay import PriceHistoryError, parse_price_history

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "examples" / "simulate" / "config.yaml"
WORKLOAD = REPO / "examples" / "simulate" / "workload.yaml"
HEADER = "datetime_utc,region,capacity_type,vcpu_hour_usd,gib_hour_usd\n"


def simulate(*arguments: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rebalancer", "simulate", *map(str, arguments)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_replayed_prices_change_the_moves_and_the_report_names_them(tmp_path: Path) -> None:
    # Frankfurt, where every workload starts, at a third of the others' price.
    prices = tmp_path / "prices.csv"
    prices.write_text(
        HEADER
        + "2022-03-01T00:00:00Z,de-frankfurt,on-demand,0.0104,0.0014\n"
        + "2022-03-01T00:00:00Z,de-frankfurt,spot,0.004,0.0005\n"
    )
    common = ("--config", CONFIG, "--workload", WORKLOAD)
    with_prices = simulate(*common, "--out", tmp_path / "live", "--prices", prices)
    without = simulate(*common, "--out", tmp_path / "table")
    assert with_prices.returncode == 0 and without.returncode == 0, with_prices.stderr + without.stderr
    live = json.loads((tmp_path / "live" / "report.json").read_text())
    table = json.loads((tmp_path / "table" / "report.json").read_text())
    assert live["meta"]["prices"] == str(prices)
    assert table["meta"]["prices"].startswith("configuration")
    assert f"prices: {prices}" in (tmp_path / "live" / "report.html").read_text()
    # The same grid, other prices: other moves (the decisions are priced with the replayed file).
    assert live["policies"]["ecopulse"]["moves"] != table["policies"]["ecopulse"]["moves"]
    blind_live, blind_table = (r["policies"]["carbon-blind"]["computeCostUsd"] for r in (live, table))
    assert blind_live < blind_table  # the carbon-blind baseline stays in Frankfurt, now cheaper


def test_a_bad_prices_file_is_one_clear_error(tmp_path: Path) -> None:
    prices = tmp_path / "prices.csv"
    prices.write_text(HEADER + "2022-03-01T00:00:00Z,mars-north-1,on-demand,0.01,0.001\n")
    run = simulate("--config", CONFIG, "--workload", WORKLOAD, "--out", tmp_path / "out", "--prices", prices)
    assert run.returncode == 2
    assert f"{prices}:2: region 'mars-north-1' is not one of the configured regions" in run.stderr
    assert not (tmp_path / "out" / "report.json").exists()


CONFIGURED = {
    "r": PriceRates(
        vcpu_hour_usd=1, gib_hour_usd=0.1, spot_vcpu_hour_usd=0.3, spot_gib_hour_usd=0.03, source="x"
    )
}


def test_the_latest_row_at_or_before_an_instant_holds_over_the_configuration() -> None:
    history = parse_price_history(
        HEADER + "2022-01-01T02:00:00Z,r,spot,0.2,0.02\n2022-01-01T00:00:00Z,r,spot,0.25,0.025\n",
        source="p.csv",
        regions=frozenset({"r"}),
    )
    at = datetime(2022, 1, 1, tzinfo=UTC)
    before = history.rates_at(at.replace(year=2021), CONFIGURED)["r"]
    assert before == CONFIGURED["r"]
    one = history.rates_at(at.replace(hour=1), CONFIGURED)["r"]
    assert (one.spot_vcpu_hour_usd, one.vcpu_hour_usd, one.source) == (0.25, 1, "p.csv")
    assert history.rates_at(at.replace(hour=5), CONFIGURED)["r"].spot_gib_hour_usd == 0.02


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("datetime,region\n", "the header must be"),
        (HEADER, "has no rows"),
        (HEADER + "yesterday,r,spot,1,1\n", ":2: datetime_utc 'yesterday'"),
        (HEADER + "2022-01-01T00:00:00Z,r,preemptible,1,1\n", ":2: capacity_type must be on-demand or spot"),
        (HEADER + "2022-01-01T00:00:00Z,r,spot,nan,1\n", ":2: vcpu_hour_usd must be > 0"),
        (HEADER + "2022-01-01T00:00:00Z,r,spot,1,0\n", ":2: gib_hour_usd must be > 0"),
        (HEADER + "2022-01-01T00:00:00Z,r,spot,1\n", ":2: expected 5 fields"),
        (
            HEADER + "2022-01-01T00:00:00Z,r,spot,1,1\n2022-01-01T00:00:00+00:00,r,spot,2,2\n",
            ":3: a second row",
        ),
    ],
)
def test_bad_files_name_the_line(text: str, message: str) -> None:
    with pytest.raises(PriceHistoryError, match=message.replace("(", r"\(")):
        parse_price_history(text, source="p.csv", regions=frozenset({"r"}))
