"""The only APScheduler import: run the cycle every rebalancer.intervalSeconds, one at a time."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

log = logging.getLogger("ecopulse.rebalancer")
JOB_ID = "rebalance"


def trigger(interval_seconds: float) -> IntervalTrigger:
    # Jitter spreads replicas and restarts apart; never more than a tenth of the interval.
    return IntervalTrigger(seconds=interval_seconds, jitter=min(30.0, interval_seconds / 10))


class CycleSchedule:
    def __init__(
        self, job: Callable[[], object], *, interval_seconds: float, first_run_delay_seconds: float = 5.0
    ) -> None:
        self._scheduler = BackgroundScheduler(timezone=UTC)
        self._interval_seconds = interval_seconds
        self._scheduler.add_job(
            job,
            trigger(interval_seconds),
            id=JOB_ID,
            max_instances=1,  # a slow cycle is never overlapped by the next
            coalesce=True,  # missed runs collapse into one
            misfire_grace_time=int(max(1, interval_seconds)),
            next_run_time=datetime.now(UTC) + timedelta(seconds=first_run_delay_seconds),
        )

    def start(self) -> None:
        self._scheduler.start()

    def reschedule(self, interval_seconds: float) -> None:
        if interval_seconds != self._interval_seconds:
            self._interval_seconds = interval_seconds
            self._scheduler.reschedule_job(JOB_ID, trigger=trigger(interval_seconds))
            log.info("rebalancing interval changed", extra={"interval_seconds": interval_seconds})

    def stop(self) -> None:
        self._scheduler.shutdown(wait=True)
