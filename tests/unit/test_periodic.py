"""The refreshers' shared back-off and loop (core.signals.periodic)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from core.signals.periodic import Backoff, PeriodicThread

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("refusals", "retry_after_seconds", "expected_seconds"),
    [
        (1, None, 60.0),  # the base interval first
        (2, None, 120.0),  # doubling in a row
        (3, None, 240.0),
        (1, 600.0, 600.0),  # at least what the provider asked
        (10, None, 3600.0),  # capped
        (1, 90_000.0, 3600.0),  # a Retry-After over the cap is capped too
    ],
)
def test_backoff_doubles_respects_retry_after_and_caps(
    refusals: int, retry_after_seconds: float | None, expected_seconds: float
) -> None:
    backoff = Backoff(max_seconds=3600.0)
    seconds = 0.0
    for _ in range(refusals):
        seconds = backoff.refused(T0, base_seconds=60.0, retry_after_seconds=retry_after_seconds)
    assert seconds == expected_seconds
    assert backoff.blocks(T0 + timedelta(seconds=expected_seconds - 1))
    assert not backoff.blocks(T0 + timedelta(seconds=expected_seconds))


def test_a_success_restarts_the_doubling_and_a_reset_lifts_the_block() -> None:
    backoff = Backoff(max_seconds=3600.0)
    backoff.refused(T0, base_seconds=60.0, retry_after_seconds=None)
    backoff.refused(T0, base_seconds=60.0, retry_after_seconds=None)
    backoff.succeeded()
    assert backoff.refused(T0, base_seconds=60.0, retry_after_seconds=None) == 60.0
    backoff.reset()
    assert not backoff.blocks(T0)


def test_the_loop_survives_a_failing_round_and_wakes_early() -> None:
    rounds: list[int] = []
    second_round = threading.Event()

    def run_round() -> None:
        rounds.append(len(rounds))
        if len(rounds) == 1:
            raise RuntimeError("a provider bug")
        second_round.set()

    worker = PeriodicThread(
        name="test-periodic",
        run_round=run_round,
        interval_seconds=lambda: 3600.0,  # only a wake can bring the second round in time
        failure_message="round failed",
    )
    worker.start()
    try:
        worker.wake()
        assert second_round.wait(10), "the loop died with the first round, or a wake was lost"
    finally:
        worker.stop()
    assert len(rounds) >= 2
