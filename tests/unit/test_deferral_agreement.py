"""The webhook's hold and the release loop judge a wait by the same rule and the same record
(core.forecast_book): a Job the webhook holds is one the release loop, with the same signals,
keeps holding at its next pass; while the forecast's error record is unknown, neither waits."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client

from core.config import EcoPulseConfiguration, parse_config_text
from core.deferral_hints import NotDeferred, job_facts
from core.forecast_book import ForecastBook
from core.history import IntensityHistory
from core.model import CarbonSignal, ForecastPoint, SignalSnapshot
from core.policy import EMPTY_POLICY_SET
from rebalancer.release import ReleasePlan, plan_releases
from rebalancer.release_loop import ReleaseLoop
from rebalancer.releaser import JobReleaser
from tests.factories import ONE_PRICE, THREE_REGIONS
from tests.unit.test_job_hold import FLAT, GREEN_LATER, NOW, applied, job, review
from webhook.admission.job import JobOutcome, decide_job
from webhook.forecasts import forecast_ticker

_BASE = (
    "apiVersion: ecopulse.io/v1alpha1\nkind: EcoPulseConfiguration\n"
    + THREE_REGIONS
    + ONE_PRICE
    + "economics: {carbonPriceUsdPerTonne: 1000}\n"
    + "rebalancer: {dryRun: false}\n"
)
# The production default: deferral.confidenceZ is not set (0: the expected saving).
DEFAULT_Z = parse_config_text(_BASE + "deferral: {minBenefitUsd: 0, safetyMarginSeconds: 600}\n")
# A confidence margin: a wait must survive the forecast's measured error, unknown until a day of it.
MARGIN_Z = parse_config_text(
    _BASE + "deferral: {minBenefitUsd: 0, safetyMarginSeconds: 600, confidenceZ: 2}\n"
)
REGIONS = ("us-east-1", "eu-west-1", "eu-north-1")


def release_loop() -> ReleaseLoop:
    releaser = JobReleaser(client.ApiClient(), reporting_instance="test", clock=lambda: NOW)
    return ReleaseLoop(jobs=dict, synced=lambda: True, releaser=releaser)


def next_pass(
    held: dict[str, Any],
    loop: ReleaseLoop,
    snapshot: SignalSnapshot,
    config: EcoPulseConfiguration = MARGIN_Z,
    **kept: Any,
) -> ReleasePlan:
    """The release loop's next pass over the held Job, with the same signals."""
    forecasts = loop.forecasts(snapshot, now=NOW, **kept)
    return plan_releases(
        [job_facts(held)],
        forecasts=forecasts,
        config=config,
        namespaces={},
        policies=EMPTY_POLICY_SET,
        now=NOW,
    )


def hold(
    obj: dict[str, Any], snapshot: SignalSnapshot, config: EcoPulseConfiguration = MARGIN_Z, **options: Any
) -> JobOutcome:
    return decide_job(review(obj), signals=snapshot, config=config, now=NOW, releaser_live=True, **options)


def test_with_the_record_unknown_the_webhook_holds_nothing_the_release_loop_would_release() -> None:
    original = job()
    outcome = hold(original, GREEN_LATER)
    if outcome.held:
        decided = next_pass(applied(original, outcome), release_loop(), GREEN_LATER, history=None)
        assert not decided.releases, f"held, then released at the next pass: {decided.releases[0].reason}"
    assert not outcome.held
    assert outcome.reason is NotDeferred.NOT_ROBUST


def test_at_the_default_confidence_a_hold_made_without_a_record_is_kept_by_the_release_loop() -> None:
    original = job()
    outcome = hold(original, GREEN_LATER, DEFAULT_Z)
    assert outcome.held, outcome.reason
    decided = next_pass(applied(original, outcome), release_loop(), GREEN_LATER, DEFAULT_Z, history=None)
    assert not decided.releases, f"held, then released at the next pass: {decided.releases[0].reason}"


def truth(region: str, hour: int) -> float:
    """A grid whose forecasts come true: eu-north-1 green from 19:00 to 23:59 UTC every day."""
    return 20.0 if region == "eu-north-1" and 19 <= hour % 24 <= 23 else 500.0


def snapshot_at(hour: int) -> SignalSnapshot:
    """The provider's signal 20 minutes into ``hour``: its value and the next six hours, exact."""
    began = datetime.fromtimestamp(hour * 3600, tz=UTC)
    at = began + timedelta(minutes=20)
    carbon = {
        region: CarbonSignal(
            region=region,
            zone=region,
            carbon_g_per_kwh=truth(region, hour),
            observed_at=at,
            fetched_at=at,
            source="test",
            forecast=tuple(
                ForecastPoint(at=began + timedelta(hours=k), carbon_g_per_kwh=truth(region, hour + k))
                for k in range(1, 7)
            ),
        )
        for region in REGIONS
    }
    return SignalSnapshot(taken_at=at, provider="test", carbon=carbon)


def test_with_the_same_record_warm_the_hold_is_kept_by_the_release_loop() -> None:
    now_hour = int(NOW.timestamp() // 3600)
    assert NOW.hour == 18  # green from the next hour
    book = ForecastBook()
    loop, history = release_loop(), IntensityHistory(window_hours=168)
    # Two days of cycles, one an hour: the webhook's book and the release loop's own record.
    for hour in range(now_hour - 48, now_hour):
        snapshot = snapshot_at(hour)
        book.update(snapshot, now=snapshot.taken_at)
        history.record(snapshot)
        loop.forecasts(snapshot, history=history, now=snapshot.taken_at)
    current = snapshot_at(now_hour)
    book.update(current, now=NOW)
    history.record(current)
    assert all(f.error_samples >= 24 for f in book.latest)

    original = job()
    outcome = hold(original, current, book=book)
    assert outcome.held, outcome.reason
    assert outcome.plan is not None and outcome.plan.region == "eu-north-1"
    decided = next_pass(applied(original, outcome), loop, current, history=history)
    assert not decided.releases
    assert [w.plan.region for w in decided.waiting] == ["eu-north-1"]
    assert decided.waiting[0].plan.start == outcome.plan.start


def test_a_book_warms_the_embedded_record_from_a_kept_history() -> None:
    now_hour = int(NOW.timestamp() // 3600)
    history = IntensityHistory(window_hours=168)
    for hour in range(now_hour - 110, now_hour + 1):
        history.record(snapshot_at(hour))
    cold, warm = ForecastBook(history=history), ForecastBook(history=history)
    warm.warm(now=NOW)
    flat = SignalSnapshot(
        taken_at=NOW,
        provider="test",
        carbon={
            r: CarbonSignal(region=r, zone=r, carbon_g_per_kwh=truth(r, now_hour), observed_at=NOW,
                            fetched_at=NOW, source="test")
            for r in REGIONS
        },
    )  # fmt: skip
    # Without a provider forecast: the embedded one, its record known at once only when warmed.
    assert {f.source for f in warm.update(flat, now=NOW)} == {"history"}
    assert all(f.error_samples >= 24 for f in warm.latest)
    assert all(f.error_samples == 0 for f in cold.update(flat, now=NOW))


def test_a_book_before_any_cycle_knows_no_record_and_holds_nothing() -> None:
    assert ForecastBook().latest == ()
    outcome = hold(job(), GREEN_LATER, book=ForecastBook())
    assert not outcome.held and outcome.reason is NotDeferred.NOT_ROBUST


def test_the_webhooks_ticker_feeds_its_book_at_once_then_every_cycle() -> None:
    book = ForecastBook()
    ticker = forecast_ticker(
        book, signals=lambda: GREEN_LATER, period_seconds=lambda: 60.0, clock=lambda: NOW
    )
    ticker.start()
    try:
        deadline = time.monotonic() + 5
        while not book.latest and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        ticker.stop()
    assert {f.region for f in book.latest} == set(REGIONS)


def test_between_cycles_a_hold_is_judged_on_the_newest_signals_with_the_kept_record() -> None:
    book = ForecastBook()
    book.update(FLAT, now=NOW)  # the last cycle saw a flat grid
    judged = {f.region: f for f in book.judge(GREEN_LATER, now=NOW)}
    assert judged["eu-north-1"].carbon_g_per_kwh[:2] == (500.0, 20.0)
    assert book.latest[0].carbon_g_per_kwh[:2] == (500.0, 500.0)  # learning happens in cycles only
