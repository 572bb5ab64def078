"""The API server's MicroTime: six fractional digits, whichever way a body is sent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from core.kube.microtime import micro_time, model_micro_time

WHOLE = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_a_whole_second_reaches_the_client_one_microsecond_later() -> None:
    assert model_micro_time(WHOLE) == WHOLE.replace(microsecond=1)
    assert model_micro_time(WHOLE).isoformat() == "2026-01-02T03:04:05.000001+00:00"


def test_any_other_moment_is_left_as_it_is_in_utc() -> None:
    moment = datetime(2026, 1, 2, 4, 4, 5, 250, tzinfo=timezone(timedelta(hours=1)))
    assert model_micro_time(moment) == moment
    assert model_micro_time(moment).tzinfo is UTC


def test_the_string_form_always_has_six_digits() -> None:
    assert micro_time(WHOLE) == "2026-01-02T03:04:05.000000Z"
