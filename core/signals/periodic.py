"""What the carbon and price refreshers share: a daemon thread that runs a round, sleeps and can
be woken early (a reload), and the exponential back-off a provider's refusal starts."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Backoff:
    """After a refusal (rate limited, unauthorised) a provider is left alone, twice as long after
    each refusal in a row, at least as long as it asked (Retry-After), at most ``max_seconds``."""

    max_seconds: float
    consecutive: int = 0
    until: datetime | None = None

    def blocks(self, now: datetime) -> bool:
        return self.until is not None and now < self.until

    def reset(self) -> None:
        """A new provider: nothing it has refused yet."""
        self.consecutive, self.until = 0, None

    def succeeded(self) -> None:
        self.consecutive = 0

    def refused(self, now: datetime, *, base_seconds: float, retry_after_seconds: float | None) -> float:
        """Start the next back-off; its length in seconds."""
        self.consecutive += 1
        exponential = base_seconds * 2.0 ** (self.consecutive - 1)
        seconds = min(self.max_seconds, max(retry_after_seconds or 0.0, exponential))
        self.until = now + timedelta(seconds=seconds)
        return seconds


class PeriodicThread:
    """Runs ``round`` on a daemon thread, then sleeps ``interval_seconds()`` (read each time, so a
    reload applies) unless woken. A round that raises is logged and the loop goes on: a bug in one
    round must not stop the signals for good."""

    def __init__(
        self,
        *,
        name: str,
        run_round: Callable[[], object],
        interval_seconds: Callable[[], float],
        failure_message: str,
    ) -> None:
        self._name = name
        self._run_round = run_round
        self._interval_seconds = interval_seconds
        self._failure_message = failure_message
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, *, join_timeout_seconds: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=join_timeout_seconds)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._run_round()
            except Exception:
                log.exception(self._failure_message)
            self._wake.wait(self._interval_seconds())
            self._wake.clear()
