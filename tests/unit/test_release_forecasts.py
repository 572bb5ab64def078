"""The forecasts the release loop plans with: the provider's where it forecasts, else the embedded
one from the replica's history, else the current value alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kubernetes import client

from core.history import IntensityHistory
from core.model import CarbonSignal, SignalSnapshot
from rebalancer.release_loop import ReleaseLoop
from rebalancer.releaser import JobReleaser
from tests.unit.test_job_hold import GREEN_LATER, NOW


def loop() -> ReleaseLoop:
    releaser = JobReleaser(client.ApiClient(), reporting_instance="test", clock=lambda: NOW)
    return ReleaseLoop(jobs=dict, synced=lambda: True, releaser=releaser)


def flat(at: datetime, value: float = 300.0) -> SignalSnapshot:
    carbon = {
        region: CarbonSignal(
            region=region, zone=region, carbon_g_per_kwh=value, observed_at=at, fetched_at=at, source="static"
        )
        for region in ("us-east-1", "eu-west-1", "eu-north-1")
    }
    return SignalSnapshot(taken_at=at, provider="static", carbon=carbon)


def test_the_providers_forecast_where_it_gives_one() -> None:
    found = {f.region: f for f in loop().forecasts(GREEN_LATER, history=None, now=NOW)}
    assert found["eu-north-1"].carbon_g_per_kwh[:3] == (500.0, 20.0, 20.0)
    assert found["eu-north-1"].source == "test"  # the signal's own source


def test_the_embedded_forecast_from_a_day_of_history_else_the_current_value() -> None:
    history = IntensityHistory(window_hours=168)
    assert {len(f.carbon_g_per_kwh) for f in loop().forecasts(flat(NOW), history=history, now=NOW)} == {1}
    for hours_ago in range(30, 0, -1):
        history.record(flat(NOW - timedelta(hours=hours_ago)))
    history.record(flat(NOW))
    found = loop().forecasts(flat(NOW), history=history, now=NOW)
    assert {f.source for f in found} == {"history"}
    assert all(len(f.carbon_g_per_kwh) > 24 for f in found)
    assert all(f.start <= NOW.replace(minute=0, tzinfo=UTC) for f in found)
