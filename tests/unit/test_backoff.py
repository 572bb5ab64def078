"""The reconnect pacing of the reflector: backoff pauses, and when a reconnect pauses at all."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.kube.backoff import Backoff
from core.kube.reflector import MIN_WATCH_SECONDS, WatchEnd, pauses_after, watch_end


def pauses(backoff: Backoff, count: int) -> list[float]:
    return [backoff.next_pause_seconds() for _ in range(count)]


@pytest.mark.parametrize(
    ("fraction", "expected"),
    [
        (0.0, [0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0, 30.0]),  # no jitter: the base, capped
        (1.0, [0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 15.0, 15.0]),  # the most jitter: half the base
        (0.5, [0.6, 1.2, 2.4, 4.8, 9.6, 19.2, 22.5, 22.5]),
    ],
)
def test_pauses_double_up_to_the_cap(fraction: float, expected: list[float]) -> None:
    assert pauses(Backoff(random_fraction=lambda: fraction), 8) == pytest.approx(expected)


def test_reset_starts_again_from_the_initial_pause() -> None:
    backoff = Backoff(random_fraction=lambda: 0.0)
    pauses(backoff, 5)
    backoff.reset()
    assert pauses(backoff, 2) == pytest.approx([0.8, 1.6])


@given(st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=40))
def test_a_pause_is_never_above_the_cap_nor_below_half_the_initial(fractions: list[float]) -> None:
    draws = iter(fractions)
    backoff = Backoff(random_fraction=lambda: next(draws))
    for pause in pauses(backoff, len(fractions)):
        assert 0.4 <= pause <= 30.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial_seconds": 0.0},
        {"initial_seconds": 40.0},
        {"factor": 0.5},
        {"jitter_fraction": 1.0},
        {"jitter_fraction": -0.1},
    ],
)
def test_nonsense_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="backoff needs"):
        Backoff(
            initial_seconds=kwargs.get("initial_seconds", 0.8),
            factor=kwargs.get("factor", 2.0),
            jitter_fraction=kwargs.get("jitter_fraction", 0.5),
        )


SHORT = MIN_WATCH_SECONDS / 2
LONG = 300.0


@pytest.mark.parametrize(
    ("failed", "expired", "lasted_seconds", "end", "pause"),
    [
        (False, False, LONG, WatchEnd.CLOSED, False),  # the server's timeout: routine
        (False, False, SHORT, WatchEnd.TOO_SHORT, True),  # a server or proxy that ends watches at once
        (False, False, 0.0, WatchEnd.TOO_SHORT, True),
        (True, False, LONG, WatchEnd.ERROR, True),
        (True, False, SHORT, WatchEnd.ERROR, True),
        (False, True, LONG, WatchEnd.EXPIRED, False),  # history compacted during a long watch
        (False, True, SHORT, WatchEnd.EXPIRED, True),  # expired right after a list: paced
    ],
)
def test_which_ends_pause(
    failed: bool, expired: bool, lasted_seconds: float, end: WatchEnd, pause: bool
) -> None:
    assert watch_end(failed=failed, expired=expired, lasted_seconds=lasted_seconds) is end
    assert pauses_after(end, lasted_seconds=lasted_seconds) is pause


def test_a_failed_list_always_pauses() -> None:
    assert pauses_after(WatchEnd.LIST_ERROR, lasted_seconds=LONG)
