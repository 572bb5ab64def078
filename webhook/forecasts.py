"""The webhook's forecast book (core.forecast_book), fed once a releaser's cycle.

The hold is judged by the forecasts and error records the releasing controller judges the wait
by; both processes keep them from the same signals, one snapshot a cycle, so they learn the same
record. The request path only reads the book (ForecastBook.judge).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from core.forecast_book import ForecastBook
from core.model import SignalSnapshot
from core.signals.periodic import PeriodicThread

MIN_PERIOD_SECONDS = 5.0


def forecast_ticker(
    book: ForecastBook,
    *,
    signals: Callable[[], SignalSnapshot],
    period_seconds: Callable[[], float],
    clock: Callable[[], datetime],
) -> PeriodicThread:
    """A daemon thread calling :meth:`ForecastBook.update` every ``period_seconds()`` (read each
    round: the releaser's interval, reloadable); a failed round is logged, the next one runs."""
    return PeriodicThread(
        name="forecast-book",
        run_round=lambda: book.update(signals(), now=clock()),
        interval_seconds=lambda: max(MIN_PERIOD_SECONDS, period_seconds()),
        failure_message="forecast book update failed; Jobs are judged by the records as they were",
    )
