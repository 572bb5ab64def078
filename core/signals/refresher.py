"""The signal cache and the background refresher that fills it.

Readers (the webhook's request path, the extender, the rebalancer's cycle) only ever call
``SignalCache.snapshot``: a dictionary read, no I/O. The refresher, in its own thread, asks the
provider for each region on its own schedule, keeps the last good value on failure, and backs
off when the provider rate-limits us or refuses our credentials.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from core.catalog import load_region_locations
from core.config import CarbonProviderName, CarbonSettings, EcoPulseConfiguration
from core.metrics import SIGNAL_FETCH_ERRORS, SIGNAL_FETCHES
from core.model import CapacityType, CarbonSignal, PriceQuote, SignalSnapshot
from core.reload import ConfigSource
from core.signals.base import CarbonProvider, Clock, ProviderError, ProviderErrorKind, utc_now
from core.signals.periodic import Backoff, PeriodicThread
from core.signals.prices.refresher import PriceRefresher, install_price_metrics
from core.signals.providers import build_provider

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 3600.0


# Providers that answer from memory or a local file: a reload may ask them for every region.
OFFLINE_PROVIDERS = frozenset({CarbonProviderName.MOCK, CarbonProviderName.STATIC, CarbonProviderName.TRACE})

# Readers on the request path reuse one snapshot for this long: ages move by at most this much.
SNAPSHOT_REUSE_SECONDS = 1.0


class SignalCache:
    """Last good signal per region. Writes replace the whole mapping, so reads need no lock."""

    def __init__(self) -> None:
        self._signals: dict[str, CarbonSignal] = {}
        self._provider = ""
        self._write_lock = threading.Lock()
        self._recent: SignalSnapshot | None = None

    @property
    def provider(self) -> str:
        return self._provider

    def put(self, signal: CarbonSignal) -> None:
        with self._write_lock:
            updated = dict(self._signals)
            updated[signal.region] = signal
            self._signals = updated
            self._recent = None

    def reset(self, provider: str) -> None:
        """Forget everything: values from another provider (or another mock grid) must not linger."""
        with self._write_lock:
            self._signals = {}
            self._provider = provider
            self._recent = None

    def last_known(self) -> dict[str, CarbonSignal]:
        return self._signals

    def snapshot(
        self,
        *,
        now: datetime,
        max_stale_seconds: float,
        prices: Callable[[datetime], Mapping[str, PriceQuote]] | None = None,
    ) -> SignalSnapshot:
        recent = self._recent
        if recent is not None and timedelta(0) <= now - recent.taken_at <= timedelta(
            seconds=SNAPSHOT_REUSE_SECONDS
        ):
            oldest = min((s.fetched_at for s in recent.carbon.values()), default=None)
            if oldest is None or (now - oldest).total_seconds() <= max_stale_seconds:
                return recent
        fresh = {
            region: signal
            for region, signal in self._signals.items()
            if signal.age_seconds(now) <= max_stale_seconds
        }
        quotes = prices(now) if prices is not None else {}
        snapshot = SignalSnapshot(taken_at=now, provider=self._provider, carbon=fresh, prices=quotes)
        self._recent = snapshot
        return snapshot


@dataclass(slots=True)
class RefreshReport:
    fetched: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped_backoff: bool = False


class SignalRefresher:
    """Fetches every configured region's signal each ``carbon.refreshSeconds``.

    ``refresh_once`` is the unit tests drive with a fake clock; ``start`` runs it in a thread.
    A configuration change rebuilds the provider when its settings changed and refreshes at once,
    so editing the mock grid moves the next pods without waiting a refresh period.
    """

    def __init__(
        self,
        *,
        config: EcoPulseConfiguration,
        cache: SignalCache,
        clock: Clock = utc_now,
        provider_factory: Callable[[CarbonSettings], CarbonProvider] | None = None,
        prices: PriceRefresher | None = None,
    ) -> None:
        self._config = config
        self._prices = prices  # the price signal: its quotes ride in every snapshot
        self._cache = cache
        self._clock = clock
        self._factory = provider_factory or (lambda settings: build_provider(settings, clock=clock))
        self._provider: CarbonProvider | None = None
        self._provider_error: ProviderError | None = None
        # Built by check_config for a configuration about to apply, so update_config need not build it twice.
        self._staged: tuple[CarbonSettings, CarbonProvider] | None = None
        self._backoff = Backoff(max_seconds=MAX_BACKOFF_SECONDS)
        self._worker = PeriodicThread(
            name="signal-refresher",
            run_round=self.refresh_once,
            interval_seconds=lambda: self._config.carbon.refresh_seconds,
            failure_message="signal refresh round failed",
        )
        self._lock = threading.Lock()
        self._install_provider(config.carbon)

    @property
    def provider_name(self) -> str:
        return self._provider.name if self._provider is not None else str(self._config.carbon.provider)

    @property
    def backoff_until(self) -> datetime | None:
        return self._backoff.until

    def _install_provider(self, settings: CarbonSettings) -> None:
        if self._provider is not None:
            self._provider.close()
        self._backoff.reset()
        staged, self._staged = self._staged, None
        if staged is not None and staged[0] == settings:
            self._provider, self._provider_error = staged[1], None
        else:
            if staged is not None:
                staged[1].close()
            try:
                self._provider = self._factory(settings)
                self._provider_error = None
            except ProviderError as error:
                self._provider = None
                self._provider_error = error
                log.error(
                    "carbon provider cannot start",
                    extra={"provider": str(settings.provider), "reason": str(error)},
                )
        self._cache.reset(self.provider_name)

    def check_config(self, config: EcoPulseConfiguration) -> list[str]:
        """What keeps ``config`` from producing signals; nothing when it can (a ConfigSource check).

        A provider that cannot be built (a missing trace file or credential) refuses the reload,
        and so does an offline provider that knows no configured region: either way every
        review would fail open. A working provider is kept for ``update_config`` to install.
        Network providers are not asked here: the watcher thread does no network I/O.
        """
        with self._lock:
            current = self._config
        if config.carbon == current.carbon and config.regions == current.regions:
            return []
        try:
            provider = self._factory(config.carbon)
        except ProviderError as error:
            return [f"carbon: {error.message}"]
        except Exception as error:  # a provider bug must refuse the reload, not kill the watcher
            log.exception("carbon provider raised while checking a configuration")
            return [f"carbon: the {config.carbon.provider} provider failed: {type(error).__name__}"]
        if config.carbon.provider in OFFLINE_PROVIDERS:
            failures: list[str] = []
            for region in config.regions:
                try:
                    provider.fetch(region)
                except ProviderError as error:
                    failures.append(error.message)
            if len(failures) == len(config.regions):
                provider.close()
                return [f"carbon: no configured region has a signal ({'; '.join(failures[:3])})"]
        with self._lock:
            if self._staged is not None:
                self._staged[1].close()
            self._staged = (config.carbon, provider)
        return []

    def update_config(self, config: EcoPulseConfiguration) -> None:
        with self._lock:
            previous = self._config
            self._config = config
            if previous.carbon != config.carbon or previous.regions != config.regions:
                self._install_provider(config.carbon)
        self._worker.wake()

    def refresh_once(self) -> RefreshReport:
        with self._lock:
            return self._refresh_locked()

    def _refresh_locked(self) -> RefreshReport:
        report = RefreshReport()
        now = self._clock()
        provider_label = self.provider_name
        _initialise_metrics(provider_label, self._config)
        if self._provider is None:
            error = self._provider_error
            for region in self._config.regions:
                SIGNAL_FETCH_ERRORS.labels(provider=provider_label, region=region.name, kind="config").inc()
                report.failed[region.name] = str(error)
            return report
        if self._backoff.blocks(now):
            report.skipped_backoff = True
            return report
        for region in self._config.regions:
            try:
                observation = self._provider.fetch(region)
            except ProviderError as error:
                SIGNAL_FETCH_ERRORS.labels(
                    provider=provider_label, region=region.name, kind=str(error.kind)
                ).inc()
                report.failed[region.name] = str(error)
                log.warning(
                    "carbon signal fetch failed; serving the last good value while it is fresh",
                    extra={
                        "provider": provider_label,
                        "region": region.name,
                        "kind": str(error.kind),
                        "reason": error.message,
                    },
                )
                if error.kind in (ProviderErrorKind.RATE_LIMITED, ProviderErrorKind.AUTH):
                    self._back_off(now, error)
                    break  # the rest of this round would be refused the same way
                continue
            except Exception as error:  # a provider bug must not kill the refresher
                SIGNAL_FETCH_ERRORS.labels(provider=provider_label, region=region.name, kind="internal").inc()
                report.failed[region.name] = f"internal: {type(error).__name__}"
                log.exception(
                    "carbon provider raised unexpectedly",
                    extra={"provider": provider_label, "region": region.name},
                )
                continue
            self._cache.put(
                CarbonSignal(
                    region=region.name,
                    zone=region.zone,
                    carbon_g_per_kwh=observation.carbon_g_per_kwh,
                    observed_at=observation.observed_at,
                    fetched_at=now,
                    source=provider_label,
                    forecast=observation.forecast,
                )
            )
            SIGNAL_FETCHES.labels(provider=provider_label, region=region.name).inc()
            report.fetched.append(region.name)
        else:
            self._backoff.succeeded()
        return report

    def _back_off(self, now: datetime, error: ProviderError) -> None:
        seconds = self._backoff.refused(
            now,
            base_seconds=self._config.carbon.refresh_seconds,
            retry_after_seconds=error.retry_after_seconds,
        )
        log.warning(
            "carbon provider backing off",
            extra={"provider": self.provider_name, "kind": str(error.kind), "seconds": seconds},
        )

    def snapshot(self) -> SignalSnapshot:
        return self._cache.snapshot(
            now=self._clock(),
            max_stale_seconds=self._config.carbon.max_stale_seconds,
            prices=self._prices.quotes if self._prices is not None else None,
        )

    def start(self) -> None:
        self._worker.start()
        if self._prices is not None:
            self._prices.start()

    def stop(self) -> None:
        self._worker.stop()
        if self._provider is not None:
            self._provider.close()
        if self._prices is not None:
            self._prices.stop()


class SignalMetricsCollector(Collector):
    """Scrape-time gauges: signal age and freshness, intensity and prices per region."""

    def __init__(self, refresher: SignalRefresher, config: Callable[[], EcoPulseConfiguration]) -> None:
        self._refresher = refresher
        self._config = config

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(_families())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        age, fresh, intensity, vcpu, gib, info = _families()
        config = self._config()
        locations = load_region_locations()
        now = self._refresher._clock()
        provider = self._refresher.provider_name
        known = self._refresher._cache.last_known()
        quotes = self._refresher.snapshot().prices
        for region in config.regions:
            signal = known.get(region.name)
            if signal is not None:
                seconds = signal.age_seconds(now)
                age.add_metric([provider, region.name], seconds)
                fresh.add_metric(
                    [provider, region.name], 1.0 if seconds <= config.carbon.max_stale_seconds else 0.0
                )
                intensity.add_metric([region.name, region.zone, provider], signal.carbon_g_per_kwh)
            else:
                fresh.add_metric([provider, region.name], 0.0)
            location = locations.get(region.name)
            if location is not None:
                latitude, longitude = location
                info.add_metric([region.name, region.zone, f"{latitude:g}", f"{longitude:g}"], 1.0)
            quote = quotes.get(region.name)
            rates = quote.rates if quote is not None else config.prices.get(region.name)
            if rates is not None:
                vcpu.add_metric([region.name, str(CapacityType.ON_DEMAND)], rates.vcpu_hour_usd)
                vcpu.add_metric([region.name, str(CapacityType.SPOT)], rates.spot_vcpu_hour_usd)
                gib.add_metric([region.name, str(CapacityType.ON_DEMAND)], rates.gib_hour_usd)
                gib.add_metric([region.name, str(CapacityType.SPOT)], rates.spot_gib_hour_usd)
        yield from (age, fresh, intensity, vcpu, gib, info)


def _families() -> tuple[GaugeMetricFamily, ...]:
    return (
        GaugeMetricFamily(
            "ecopulse_signal_age_seconds",
            "Seconds since the last successful fetch of a region's carbon intensity.",
            labels=["provider", "region"],
        ),
        GaugeMetricFamily(
            "ecopulse_signal_fresh",
            "1 when the region's intensity is fresh enough to decide on (age <= maxStaleSeconds).",
            labels=["provider", "region"],
        ),
        GaugeMetricFamily(
            "ecopulse_carbon_intensity_grams_per_kwh",
            "Latest known grid carbon intensity of a region, gCO2eq per kWh.",
            labels=["region", "zone", "provider"],
        ),
        GaugeMetricFamily(
            "ecopulse_price_usd_per_vcpu_hour",
            "List price per vCPU-hour of a region, by capacity type.",
            labels=["region", "capacity_type"],
        ),
        GaugeMetricFamily(
            "ecopulse_price_usd_per_gib_hour",
            "List price per GiB-hour of memory of a region, by capacity type.",
            labels=["region", "capacity_type"],
        ),
        GaugeMetricFamily(
            "ecopulse_region_info",
            "1 for each configured region with a known location (bundled catalog), for maps.",
            labels=["region", "zone", "latitude", "longitude"],
        ),
    )


def _initialise_metrics(provider: str, config: EcoPulseConfiguration) -> None:
    """Every (provider, region, kind) at 0 from the start: "no errors" is a 0 on a dashboard, not no data."""
    for region in config.regions:
        SIGNAL_FETCHES.labels(provider=provider, region=region.name)
        for kind in (*ProviderErrorKind, "internal"):
            SIGNAL_FETCH_ERRORS.labels(provider=provider, region=region.name, kind=str(kind))


_installed: list[SignalMetricsCollector] = []


def following(source: ConfigSource) -> SignalRefresher:
    """A refresher for ``source``'s configuration that follows its reloads, with its metrics.

    A reload that cannot produce working signals is refused (the last good configuration stays).
    Not started: the app starts it once it is ready to serve.
    """
    prices = PriceRefresher(config=source.current)
    source.add_check(prices.check_config)
    source.subscribe(prices.update_config)
    install_price_metrics(prices)
    refresher = SignalRefresher(config=source.current, cache=SignalCache(), prices=prices)
    source.add_check(refresher.check_config)
    source.subscribe(refresher.update_config)
    install_signal_metrics(refresher, lambda: source.current)
    return refresher


def install_signal_metrics(refresher: SignalRefresher, config: Callable[[], EcoPulseConfiguration]) -> None:
    """Register the scrape-time collector once per process; later calls retarget it."""
    collector = SignalMetricsCollector(refresher, config)
    if _installed:
        REGISTRY.unregister(_installed.pop())
    REGISTRY.register(collector)
    _installed.append(collector)
