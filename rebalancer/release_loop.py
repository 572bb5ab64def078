"""The release loop's turn in a leader's cycle: decide (rebalancer.release), then release through
the one choke point (rebalancer.releaser)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from core.config import EcoPulseConfiguration
from core.deferral import HourlyForecast
from core.deferral_hints import JobFacts
from core.deferral_memo import PassMemo
from core.forecast import ForecastErrors
from core.forecast_book import planning_forecasts
from core.history import IntensityHistory
from core.model import NamespaceInfo, PriceRates, SignalSnapshot
from core.policy import PolicySet
from rebalancer.release import Asked, ReleaseReason, plan_releases, release_overdue
from rebalancer.releaser import FORECAST_AGE, FORECAST_HORIZON, JobReleaser

log = logging.getLogger("ecopulse.rebalancer")


@dataclass(slots=True, kw_only=True)
class ReleaseLoop:
    jobs: Callable[[], Mapping[str, JobFacts]]
    synced: Callable[[], bool]  # the Jobs' watch has listed: an empty view is not "nothing held"
    releaser: JobReleaser
    # False until this process, leading, has released the overdue holds once.
    started: bool = field(default=False)
    # How wrong the forecasts have lately been, one record per source (every replica keeps them,
    # so a new leader knows them at once): the embedded forecast's, and the provider's.
    errors: ForecastErrors = field(default_factory=ForecastErrors)
    provider_errors: ForecastErrors = field(default_factory=ForecastErrors)
    # What each held Job asks, read once per version of it (core.deferral_memo).
    asked: PassMemo[Asked] = field(default_factory=PassMemo)

    def forecasts(
        self, signals: SignalSnapshot, *, history: IntensityHistory | None, now: datetime
    ) -> list[HourlyForecast]:
        """The provider's forecast where it gives one, else the embedded one from the history (else
        the current value alone); each with its source's error record
        (core.forecast_book.planning_forecasts, as the webhook's hold and fleet mode judge them).
        Every cycle, leader or not."""
        found = planning_forecasts(
            signals, history=history, errors=self.errors, provider_errors=self.provider_errors, now=now
        )
        for chosen in found:
            region = chosen.region
            FORECAST_AGE.labels(region=region).set(chosen.age_seconds(now))
            FORECAST_HORIZON.labels(region=region).set(chosen.horizon_hours(now))
        return found

    def lost_leadership(self) -> None:
        self.started = False

    def run(
        self,
        *,
        forecasts: list[HourlyForecast],
        config: EcoPulseConfiguration,
        namespaces: Mapping[str, NamespaceInfo],
        policies: PolicySet,
        now: datetime,
        is_leader: Callable[[], bool],
        prices: Mapping[str, PriceRates] | None = None,
    ) -> int:
        """One turn; returns how many Jobs were released. A failure is logged, never raised."""
        if not self.synced():
            log.warning("the Jobs' watch has not listed yet; no release this cycle")
            return 0
        try:
            return self._run(
                forecasts=forecasts,
                config=config,
                namespaces=namespaces,
                policies=policies,
                now=now,
                is_leader=is_leader,
                prices=prices,
            )
        except Exception:
            log.exception("release loop failed; held Jobs wait for the next cycle (or the janitor)")
            return 0

    def _run(
        self,
        *,
        forecasts: list[HourlyForecast],
        config: EcoPulseConfiguration,
        namespaces: Mapping[str, NamespaceInfo],
        policies: PolicySet,
        now: datetime,
        is_leader: Callable[[], bool],
        prices: Mapping[str, PriceRates] | None = None,
    ) -> int:
        jobs = list(self.jobs().values())
        released = 0
        done: set[str] = set()
        if not self.started:
            self.releaser.leading(now)
            # A new leader's first act: whatever is overdue goes now, before any planning.
            for release in release_overdue(jobs, now=now, reason=ReleaseReason.CONTROLLER_START):
                if not is_leader():
                    return released
                if self.releaser.release(release):
                    released += 1
                    done.add(release.job.uid)
            self.started = True
        decided = plan_releases(
            (job for job in jobs if job.uid not in done),
            forecasts=forecasts,
            config=config,
            namespaces=namespaces,
            policies=policies,
            now=now,
            prices=prices,
            memo=self.asked,
        )
        for release in decided.releases:
            if not is_leader():
                break
            if self.releaser.release(release):
                released += 1
                done.add(release.job.uid)
        self.releaser.observe((job for job in jobs if job.uid not in done), decided.waiting, now=now)
        return released
