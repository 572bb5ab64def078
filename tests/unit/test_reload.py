"""A reload applies only a configuration that can work: one that cannot produce signals is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from core.config import CarbonSettings
from core.reload import ConfigSource
from core.signals.base import CarbonProvider
from core.signals.providers import build_provider
from core.signals.refresher import SignalCache, SignalRefresher

FIRST = datetime(2022, 6, 1, tzinfo=UTC)
HEADER = "datetime_utc,zone,carbon_intensity_direct_g_per_kwh,carbon_intensity_lifecycle_g_per_kwh\n"


def trace_config(path: Path) -> str:
    return f"""\
regions: [{{name: ra, zone: ZA}}, {{name: rb, zone: ZB}}]
prices:
  ra: {{vcpuHour: 0.03, gibHour: 0.004, spotVcpuHour: 0.01, spotGibHour: 0.001}}
  rb: {{vcpuHour: 0.03, gibHour: 0.004, spotVcpuHour: 0.01, spotGibHour: 0.001}}
carbon:
  provider: trace
  trace: {{path: "{path}", wallClockStart: "2026-01-01T00:00:00Z"}}
"""


def last_error(source: ConfigSource) -> str | None:
    return source.last_error


def unusable() -> float:
    return REGISTRY.get_sample_value("ecopulse_config_reloads_total", {"result": "unusable"}) or 0.0


@pytest.fixture
def trace_file(tmp_path: Path) -> Path:
    path = tmp_path / "grid.csv"
    rows = [
        f"{FIRST + timedelta(hours=hour):%Y-%m-%dT%H:%M:%SZ},{zone},{value / 2},{value}"
        for zone, value in (("ZA", 100.0), ("ZB", 50.0))
        for hour in range(3)
    ]
    path.write_text(HEADER + "\n".join(rows) + "\n")
    return path


def follow(config_file: Path) -> tuple[ConfigSource, SignalRefresher]:
    """The webhook's and the rebalancer's wiring (webhook/server.py, rebalancer/main.py)."""
    source = ConfigSource.from_file(config_file)
    refresher = SignalRefresher(
        config=source.current,
        cache=SignalCache(),
        provider_factory=lambda settings: build_provider(settings, environ={}),
    )
    source.add_check(refresher.check_config)
    source.subscribe(refresher.update_config)
    return source, refresher


def test_a_reload_whose_trace_file_is_missing_keeps_the_last_good_configuration(
    tmp_path: Path, trace_file: Path
) -> None:
    config_file = tmp_path / "config.yaml"
    config_file.write_text(trace_config(trace_file))
    source, refresher = follow(config_file)
    good = source.current
    assert refresher.refresh_once().fetched == ["ra", "rb"]

    before = unusable()
    missing = tmp_path / "moved-away.csv"
    config_file.write_text(trace_config(missing))
    assert source.reload() is False
    assert source.current is good
    assert unusable() == before + 1
    assert source.last_error is not None
    assert "carbon.trace.path" in source.last_error and str(missing) in source.last_error
    # The signals keep flowing from the last good trace.
    assert refresher.refresh_once().fetched == ["ra", "rb"]
    assert set(refresher.snapshot().carbon) == {"ra", "rb"}

    # Fixed: the next edit applies, and its error is forgotten.
    trace_file.rename(missing)
    assert source.reload() is True
    assert last_error(source) is None
    assert source.current.carbon.trace.path == str(missing)
    assert refresher.refresh_once().fetched == ["ra", "rb"]


def test_a_reload_to_a_provider_without_its_credentials_is_refused(tmp_path: Path, trace_file: Path) -> None:
    config_file = tmp_path / "config.yaml"
    config_file.write_text(trace_config(trace_file))
    source, refresher = follow(config_file)
    good = source.current
    config_file.write_text(trace_config(trace_file).replace("provider: trace", "provider: electricitymaps"))
    assert source.reload() is False
    assert source.current is good
    assert source.last_error is not None and "ELECTRICITYMAPS_API_TOKEN" in source.last_error
    assert refresher.provider_name == "trace"


def test_a_reload_whose_trace_knows_no_configured_zone_is_refused(tmp_path: Path, trace_file: Path) -> None:
    config_file = tmp_path / "config.yaml"
    config_file.write_text(trace_config(trace_file))
    source, refresher = follow(config_file)
    config_file.write_text(trace_config(trace_file).replace("ZA", "XA").replace("ZB", "XB"))
    assert source.reload() is False
    assert source.last_error is not None and "no configured region has a signal" in source.last_error
    assert refresher.refresh_once().fetched == ["ra", "rb"]


def test_a_reload_that_changes_only_economics_applies_without_rebuilding_the_provider(
    tmp_path: Path, trace_file: Path
) -> None:
    built: list[CarbonSettings] = []

    def factory(settings: CarbonSettings) -> CarbonProvider:
        built.append(settings)
        return build_provider(settings, environ={})

    config_file = tmp_path / "config.yaml"
    config_file.write_text(trace_config(trace_file))
    source = ConfigSource.from_file(config_file)
    refresher = SignalRefresher(config=source.current, cache=SignalCache(), provider_factory=factory)
    source.add_check(refresher.check_config)
    source.subscribe(refresher.update_config)
    config_file.write_text(trace_config(trace_file) + "economics: {horizonHours: 3}\n")
    assert source.reload() is True
    assert source.current.economics.horizon_hours == 3
    assert len(built) == 1  # at start only

    # A carbon change is built once, by the check, and installed as built.
    other = tmp_path / "other.csv"
    other.write_text(trace_file.read_text())
    config_file.write_text(trace_config(other))
    assert source.reload() is True
    assert len(built) == 2
    assert refresher.refresh_once().fetched == ["ra", "rb"]
