"""The webhook's forecast book (core.forecast_book), fed by a thread once a releaser's cycle.

The hold is judged by the forecasts and error records the releasing controller judges the wait
by; both processes keep them from the same signals, one snapshot a cycle, so they learn the same
record. The request path only reads the book's newest forecasts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from core.forecast_book import ForecastBook
from core.model import SignalSnapshot

log = logging.getLogger("ecopulse.webhook")

MIN_PERIOD_SECONDS = 5.0


class ForecastTicker:
    """Calls :meth:`ForecastBook.update` every ``period_seconds()`` (read each time: the
    releaser's interval, reloadable) on a daemon thread; a failure is logged, the next tick runs."""

    def __init__(
        self,
        book: ForecastBook,
        *,
        signals: Callable[[], SignalSnapshot],
        period_seconds: Callable[[], float],
        clock: Callable[[], datetime],
    ) -> None:
        self.book = book
        self._signals = signals
        self._period_seconds = period_seconds
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> None:
        try:
            self.book.update(self._signals(), now=self._clock())
        except Exception:
            log.exception("forecast book update failed; Jobs are judged by the previous forecasts")

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.is_set():
                self.tick()
                self._stop.wait(max(MIN_PERIOD_SECONDS, self._period_seconds()))

        self._thread = threading.Thread(target=loop, name="forecast-book", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
