"""Pure. The forecasts a process plans deferrable Jobs with, and the record they are judged by.

Every app that judges a wait (the webhook's hold, the rebalancer's release loop, fleet mode's
release) asks :func:`planning_forecasts` for the same forecasts from the same signals: the
provider's where it forecasts, else the embedded forecast from the kept history
(``core.forecast``), else the current value alone; each with its source's error record
(``core.forecast.ForecastErrors``). The planner then applies ``deferral.confidenceZ`` to that
record in every app alike, and a record not known yet means no wait anywhere (unknown: do
nothing), so a Job the webhook holds is one the release loop, with the same signals, keeps
holding.

:class:`ForecastBook` is that state for an app that keeps no history of its own (the webhook,
fleet mode): the history of the grid's hours, both records, and the newest forecasts. Feed it one
snapshot per cycle (:meth:`ForecastBook.update`), leader or not, so a new leader, or a hold, is
judged by a record as warm as the process is old.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import datetime

from core.deferral import HourlyForecast
from core.deferral_jobs import snapshot_forecasts
from core.forecast import SOURCE as EMBEDDED_SOURCE
from core.forecast import ForecastErrors, embedded_forecasts, warm_errors
from core.history import IntensityHistory, hour_index
from core.model import SignalSnapshot

DEFAULT_HISTORY_WINDOW_HOURS = 168
# Completed hours a provider's forecast is judged against each cycle (as the embedded record).
_OBSERVED_HOURS = 3


def planning_forecasts(
    signals: SignalSnapshot,
    *,
    history: IntensityHistory | None,
    errors: ForecastErrors,
    provider_errors: ForecastErrors,
    now: datetime,
) -> list[HourlyForecast]:
    """The provider's forecast where it gives one, else the embedded one from ``history`` (else the
    current value alone); each with its source's record. ``errors`` is the embedded forecast's,
    ``provider_errors`` the provider's: both learn from this call, so call it once a cycle."""
    embedded = (
        {f.region: f for f in embedded_forecasts(history, errors, now=now)} if history is not None else {}
    )
    hour = hour_index(now)
    found: list[HourlyForecast] = []
    for given in snapshot_forecasts(signals, now=now):
        region = given.region
        if len(given.carbon_g_per_kwh) > 1 and history is not None:
            # What came, completed hours only (as the embedded record).
            values = history.series(region)
            for seen in [h for h in values if hour - _OBSERVED_HOURS < h < hour]:
                provider_errors.observe(region, seen, values[seen])
        if len(given.carbon_g_per_kwh) > 1:
            provider_errors.record(given)
        found.append(_chosen(given, embedded, provider_errors))
    return found


def _chosen(
    given: HourlyForecast, embedded: Mapping[str, HourlyForecast], provider_errors: ForecastErrors
) -> HourlyForecast:
    """The provider's forecast with its record where it forecasts, else the embedded one, else the
    current value alone."""
    if len(given.carbon_g_per_kwh) > 1:
        return provider_errors.attach(given)
    return embedded.get(given.region, given)


class ForecastBook:
    """One process's history of the grid, the forecasts' error records, and its newest forecasts.

    One writer (the app's cycle, or the webhook's ticker) calls :meth:`update`; :attr:`latest` is
    replaced whole, never changed in place; :meth:`judge` (the webhook's request path) reads the
    records under the same lock.
    """

    def __init__(
        self,
        *,
        history: IntensityHistory | None = None,
        window_hours: int = DEFAULT_HISTORY_WINDOW_HOURS,
    ) -> None:
        self.history = history if history is not None else IntensityHistory(window_hours=window_hours)
        self.errors = ForecastErrors()
        self.provider_errors = ForecastErrors()
        self.latest: tuple[HourlyForecast, ...] = ()
        self._lock = threading.Lock()

    def warm(self, *, now: datetime) -> None:
        """Replay the hours the history holds through the embedded forecast's record
        (``core.forecast.warm_errors``): a book given a kept history knows that forecast's error at
        once. A provider's past forecasts are not known: its record learns as they come."""
        upto = hour_index(now) - 1
        for region in self.history.regions():
            warm_errors(
                self.errors,
                region,
                self.history.series(region),
                upto_hour=upto,
                window_hours=self.history.window_hours,
            )

    def update(self, signals: SignalSnapshot, *, now: datetime) -> tuple[HourlyForecast, ...]:
        """Record the snapshot's hours, then make this cycle's forecasts (:attr:`latest`)."""
        with self._lock:
            self.history.record(signals)
            self.latest = tuple(
                planning_forecasts(
                    signals,
                    history=self.history,
                    errors=self.errors,
                    provider_errors=self.provider_errors,
                    now=now,
                )
            )
        return self.latest

    def judge(self, signals: SignalSnapshot, *, now: datetime) -> list[HourlyForecast]:
        """The forecasts of ``signals`` (newer than the last cycle's) with the records as they
        stand, learning nothing: what a decision between two cycles plans with. A region the
        provider does not forecast gets the last cycle's embedded forecast (hourly, made this hour or
        the last), as :func:`planning_forecasts` would."""
        with self._lock:
            embedded = {f.region: f for f in self.latest if f.source == EMBEDDED_SOURCE}
            return [
                _chosen(given, embedded, self.provider_errors)
                for given in snapshot_forecasts(signals, now=now)
            ]
