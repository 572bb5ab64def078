"""Capped exponential backoff with jitter, and the timer a reconnect loop waits on.

The timer is injected so that tests drive the loop in simulated time (no sleeps): ``monotonic``
says how long a watch lasted, ``wait`` pauses and wakes early when the loop is told to stop.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Protocol


class Timer(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""
        ...

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        """Pause for ``seconds``, or less if ``stop`` is set; True when the loop must stop."""
        ...


class SystemTimer:
    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        return stop.wait(seconds)


class Backoff:
    """Pauses that double from ``initial_seconds`` up to ``cap_seconds``, each shortened at random.

    A pause is its base times (1 - jitter_fraction * random()): with the default 0.5 it lies in
    [base / 2, base], so it never exceeds the cap and processes that lost the API server at the
    same moment come back spread out, not in step (also at the cap). ``reset`` after a healthy
    spell starts again from ``initial_seconds``.
    """

    def __init__(
        self,
        *,
        initial_seconds: float = 0.8,
        cap_seconds: float = 30.0,
        factor: float = 2.0,
        jitter_fraction: float = 0.5,
        random_fraction: Callable[[], float] = random.random,
    ) -> None:
        if not 0 < initial_seconds <= cap_seconds or factor < 1 or not 0 <= jitter_fraction < 1:
            raise ValueError("backoff needs 0 < initial <= cap, factor >= 1 and 0 <= jitter < 1")
        self.initial_seconds = initial_seconds
        self.cap_seconds = cap_seconds
        self.factor = factor
        self.jitter_fraction = jitter_fraction
        self._random_fraction = random_fraction
        self._base_seconds = initial_seconds

    def next_pause_seconds(self) -> float:
        base = self._base_seconds
        self._base_seconds = min(self.cap_seconds, base * self.factor)
        return base * (1.0 - self.jitter_fraction * self._random_fraction())

    def reset(self) -> None:
        self._base_seconds = self.initial_seconds
