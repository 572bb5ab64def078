"""The price cache, what a fetched price must pass to enter it, and the thread that fills it.

Readers ask ``PriceRefresher.quotes(now)``: a walk over a small dictionary, no I/O. Each region's
quote is, in order of precedence: the operator's ``prices:`` entry; the provider's last good value
while it is younger than ``pricing.maxStaleSeconds``; the bundled table (a fallback, counted).
A fetched value is refused, and the last good one kept, when it is not finite and positive, when
spot is not below on-demand, or when it moved by more than ``pricing.maxChangeFactor`` since the
last good value; a refusal concerns its region only.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from core.config import EcoPulseConfiguration, PriceProviderName, PricingSettings
from core.model import CapacityType, PriceQuote, PriceRates, Region
from core.signals.base import Clock, ProviderError, ProviderErrorKind, utc_now
from core.signals.periodic import Backoff, PeriodicThread
from core.signals.prices.base import PriceProvider, RegionPrices, ResourcePrices

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 6 * 3600.0
CONFIG_SOURCE = "config"
STATIC_SOURCE = "static"
FALLBACK_SOURCE = "static(fallback)"


class Refusal(StrEnum):
    """Why a fetched price did not enter the cache (the ``reason`` of the failure counter)."""

    NOT_FINITE_POSITIVE = "not-finite-positive"
    SPOT_NOT_BELOW_ON_DEMAND = "spot-not-below-on-demand"
    CHANGED_TOO_MUCH = "changed-too-much"


def judge(new: RegionPrices, last_good: RegionPrices | None, *, max_change_factor: float) -> Refusal | None:
    """None when ``new`` may replace ``last_good``; otherwise why not. Pure."""
    parts = [new.on_demand] if new.spot is None else [new.on_demand, new.spot]
    if not all(part.is_finite_positive() for part in parts):
        return Refusal.NOT_FINITE_POSITIVE
    if new.spot is not None and (
        new.spot.vcpu_hour_usd >= new.on_demand.vcpu_hour_usd
        or new.spot.gib_hour_usd >= new.on_demand.gib_hour_usd
    ):
        return Refusal.SPOT_NOT_BELOW_ON_DEMAND
    if last_good is not None:
        pairs = [(new.on_demand, last_good.on_demand)]
        if new.spot is not None and last_good.spot is not None:
            pairs.append((new.spot, last_good.spot))
        for fresh, old in pairs:
            for a, b in ((fresh.vcpu_hour_usd, old.vcpu_hour_usd), (fresh.gib_hour_usd, old.gib_hour_usd)):
                if max(a / b, b / a) > max_change_factor:
                    return Refusal.CHANGED_TOO_MUCH
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class CachedPrices:
    prices: RegionPrices
    fetched_at: datetime
    source: str


def quote_for(
    region: str,
    *,
    configured: PriceRates,
    cached: CachedPrices | None,
    now: datetime,
    settings: PricingSettings,
) -> PriceQuote:
    """The one rule of precedence (operator, live while fresh, bundled). Pure."""
    if configured.source.startswith(CONFIG_SOURCE):
        return PriceQuote(rates=configured, source=CONFIG_SOURCE, spot_source=CONFIG_SOURCE)
    live = settings.provider is not PriceProviderName.STATIC
    if cached is None or (now - cached.fetched_at).total_seconds() > settings.max_stale_seconds:
        source = FALLBACK_SOURCE if live else STATIC_SOURCE
        return PriceQuote(rates=configured, source=source, spot_source=source)
    on_demand, spot = cached.prices.on_demand, cached.prices.spot
    rates = PriceRates(
        vcpu_hour_usd=on_demand.vcpu_hour_usd,
        gib_hour_usd=on_demand.gib_hour_usd,
        spot_vcpu_hour_usd=spot.vcpu_hour_usd if spot is not None else configured.spot_vcpu_hour_usd,
        spot_gib_hour_usd=spot.gib_hour_usd if spot is not None else configured.spot_gib_hour_usd,
        source=cached.source,
    )
    return PriceQuote(
        rates=rates,
        source=cached.source,
        spot_source=cached.source if spot is not None else STATIC_SOURCE,
        fetched_at=cached.fetched_at,
    )


PRICE_REFRESHES = Counter(
    "ecopulse_price_refreshes_total",
    "Price refresh rounds by source and outcome (ok: every asked region priced; partial; failed).",
    ["source", "outcome"],
)
PRICE_REFRESH_FAILURES = Counter(
    "ecopulse_price_refresh_failures_total",
    "Regions a price refresh could not price, by source and reason (a provider error kind or a refusal).",
    ["source", "reason"],
)
PRICE_FALLBACKS = Counter(
    "ecopulse_price_fallbacks_total",
    "Times a region's live price grew older than pricing.maxStaleSeconds and the bundled table took over.",
    ["source", "region"],
)
REASONS = (*(str(kind) for kind in ProviderErrorKind), *(str(r) for r in Refusal), "internal")


@dataclass(slots=True)
class PriceRefreshReport:
    priced: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped_backoff: bool = False


ProviderFactory = Callable[[PricingSettings], PriceProvider | None]


class PriceRefresher:
    """Fetches the configured regions' prices every ``pricing.refreshSeconds`` in its own thread.

    ``refresh_once`` is the unit tests drive with a fake clock. The static provider fetches
    nothing: its quotes are the configuration's table. Nothing but this thread calls a provider.
    """

    def __init__(
        self,
        *,
        config: EcoPulseConfiguration,
        clock: Clock = utc_now,
        provider_factory: ProviderFactory | None = None,
    ) -> None:
        from core.signals.prices.providers import build_price_provider  # noqa: PLC0415 - a cycle otherwise

        self._config = config
        self._clock = clock
        self._factory: ProviderFactory = provider_factory or (lambda s: build_price_provider(s, clock=clock))
        self._cache: dict[str, CachedPrices] = {}
        self._fallen_back: set[str] = set()
        self._provider: PriceProvider | None = None
        self._provider_error: ProviderError | None = None
        self._backoff = Backoff(max_seconds=MAX_BACKOFF_SECONDS)
        self._lock = threading.Lock()
        # Wake at least every maxStaleSeconds too, so a fallback is counted when it happens.
        self._worker = PeriodicThread(
            name="price-refresher",
            run_round=self.refresh_once,
            interval_seconds=lambda: min(
                self._config.pricing.refresh_seconds, self._config.pricing.max_stale_seconds
            ),
            failure_message="price refresh round failed",
        )
        self._install(config.pricing)

    @property
    def source(self) -> str:
        return str(self._config.pricing.provider)

    def _install(self, settings: PricingSettings) -> None:
        if self._provider is not None:
            self._provider.close()
        self._cache = {}
        self._fallen_back = set()
        self._backoff.reset()
        try:
            self._provider, self._provider_error = self._factory(settings), None
        except ProviderError as error:
            self._provider, self._provider_error = None, error
            log.error(
                "price provider cannot start",
                extra={"provider": str(settings.provider), "reason": str(error)},
            )
        # Every series at 0 from the start: "no failures" is a 0 on a dashboard, not no data.
        source = str(settings.provider)
        for reason in REASONS:
            PRICE_REFRESH_FAILURES.labels(source=source, reason=reason)
        for outcome in ("ok", "partial", "failed"):
            PRICE_REFRESHES.labels(source=source, outcome=outcome)
        for region in self._config.regions:
            PRICE_FALLBACKS.labels(source=source, region=region.name)

    def update_config(self, config: EcoPulseConfiguration) -> None:
        with self._lock:
            previous, self._config = self._config, config
            if previous.pricing != config.pricing:
                self._install(config.pricing)
        self._worker.wake()

    def check_config(self, config: EcoPulseConfiguration) -> list[str]:
        """A reload whose price provider cannot be built is refused, as for carbon."""
        if config.pricing == self._config.pricing:
            return []
        try:
            provider = self._factory(config.pricing)
        except ProviderError as error:
            return [f"pricing: {error.message}"]
        if provider is not None:
            provider.close()
        return []

    def _asked(self) -> list[Region]:
        """The regions a provider is asked about: those the operator did not price."""
        return [
            r
            for r in self._config.regions
            if not self._config.prices[r.name].source.startswith(CONFIG_SOURCE)
        ]

    def refresh_once(self) -> PriceRefreshReport:
        with self._lock:
            report = self._refresh_locked()
            self._count_fallbacks()
            return report

    def _refresh_locked(self) -> PriceRefreshReport:
        report = PriceRefreshReport()
        now = self._clock()
        source = self.source
        settings = self._config.pricing
        if self._provider is None:
            if self._provider_error is not None:
                PRICE_REFRESHES.labels(source=source, outcome="failed").inc()
                PRICE_REFRESH_FAILURES.labels(source=source, reason="config").inc()
                report.failed = {r.name: str(self._provider_error) for r in self._asked()}
            return report
        if self._backoff.blocks(now):
            report.skipped_backoff = True
            return report
        asked = self._asked()
        try:
            fetched = self._provider.fetch(asked)
        except ProviderError as error:
            PRICE_REFRESHES.labels(source=source, outcome="failed").inc()
            PRICE_REFRESH_FAILURES.labels(source=source, reason=str(error.kind)).inc()
            log.warning(
                "price refresh failed; serving the last good prices while they are fresh",
                extra={"provider": source, "kind": str(error.kind), "reason": error.message},
            )
            report.failed = {r.name: str(error) for r in asked}
            if error.kind in (ProviderErrorKind.RATE_LIMITED, ProviderErrorKind.AUTH):
                self._back_off(now, error)
            return report
        except Exception as error:  # a provider bug must not kill the refresher
            PRICE_REFRESHES.labels(source=source, outcome="failed").inc()
            PRICE_REFRESH_FAILURES.labels(source=source, reason="internal").inc()
            log.exception("price provider raised unexpectedly", extra={"provider": source})
            report.failed = {r.name: f"internal: {type(error).__name__}" for r in asked}
            return report
        self._backoff.succeeded()
        for region in asked:
            result = fetched.get(region.name)
            if result is None:
                result = ProviderError(ProviderErrorKind.NOT_FOUND, f"{source}: no prices for {region.name}")
            reason: str
            if isinstance(result, ProviderError):
                reason, detail = str(result.kind), result.message
            else:
                last = self._cache.get(region.name)
                refusal = judge(
                    result,
                    last.prices if last is not None else None,
                    max_change_factor=settings.max_change_factor,
                )
                if refusal is None:
                    self._cache[region.name] = CachedPrices(prices=result, fetched_at=now, source=source)
                    report.priced.append(region.name)
                    continue
                reason, detail = str(refusal), f"{source}: {region.name}: {refusal}"
            PRICE_REFRESH_FAILURES.labels(source=source, reason=reason).inc()
            report.failed[region.name] = detail
            log.warning(
                "price refused or unavailable; keeping the last good one",
                extra={"provider": source, "region": region.name, "kind": reason, "reason": detail},
            )
        outcome = "ok" if not report.failed else ("partial" if report.priced else "failed")
        PRICE_REFRESHES.labels(source=source, outcome=outcome).inc()
        return report

    def _count_fallbacks(self) -> None:
        if self._config.pricing.provider is PriceProviderName.STATIC:
            return
        for name, quote in self.quotes(self._clock()).items():
            if quote.source == FALLBACK_SOURCE and name not in self._fallen_back:
                self._fallen_back.add(name)
                PRICE_FALLBACKS.labels(source=self.source, region=name).inc()
                log.warning(
                    "no live price younger than pricing.maxStaleSeconds; the bundled table stands in",
                    extra={"provider": self.source, "region": name},
                )
            elif quote.source != FALLBACK_SOURCE:
                self._fallen_back.discard(name)

    def _back_off(self, now: datetime, error: ProviderError) -> None:
        seconds = self._backoff.refused(
            now,
            base_seconds=self._config.pricing.refresh_seconds,
            retry_after_seconds=error.retry_after_seconds,
        )
        log.warning("price provider backing off", extra={"provider": self.source, "seconds": seconds})

    def quotes(self, now: datetime) -> dict[str, PriceQuote]:
        """Every configured region's quote at ``now``: memory only, safe on a request path."""
        config, cache = self._config, self._cache
        return {
            region.name: quote_for(
                region.name,
                configured=config.prices[region.name],
                cached=cache.get(region.name),
                now=now,
                settings=config.pricing,
            )
            for region in config.regions
        }

    def start(self) -> None:
        self._worker.start()

    def stop(self) -> None:
        self._worker.stop()
        if self._provider is not None:
            self._provider.close()


class PriceMetricsCollector(Collector):
    """Scrape-time gauges: every region's prices as decisions use them, with their source and age."""

    def __init__(self, refresher: PriceRefresher) -> None:
        self._refresher = refresher

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(_families())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        price, age, fresh = _families()
        now = self._refresher._clock()
        provider = self._refresher.source
        for region, quote in self._refresher.quotes(now).items():
            for capacity, source, part in _parts(quote):
                price.add_metric([region, capacity, "vcpu", source], part.vcpu_hour_usd)
                price.add_metric([region, capacity, "memory_gib", source], part.gib_hour_usd)
            # An operator's or the static table's price is never fetched, so never stale (no age).
            seconds = quote.age_seconds(now)
            if seconds is not None:
                age.add_metric([provider, region], seconds)
            fresh.add_metric([provider, region], 0.0 if quote.source == FALLBACK_SOURCE else 1.0)
        yield from (price, age, fresh)


def _parts(quote: PriceQuote) -> Iterator[tuple[str, str, ResourcePrices]]:
    rates = quote.rates
    yield (
        str(CapacityType.ON_DEMAND),
        quote.source,
        ResourcePrices(vcpu_hour_usd=rates.vcpu_hour_usd, gib_hour_usd=rates.gib_hour_usd),
    )
    yield (
        str(CapacityType.SPOT),
        quote.spot_source,
        ResourcePrices(vcpu_hour_usd=rates.spot_vcpu_hour_usd, gib_hour_usd=rates.spot_gib_hour_usd),
    )


def _families() -> tuple[GaugeMetricFamily, ...]:
    return (
        GaugeMetricFamily(
            "ecopulse_price_usd_per_hour",
            "The price decisions use: USD per hour of one vCPU or one GiB of memory, "
            "by capacity type and source.",
            labels=["region", "capacity_type", "resource", "source"],
        ),
        GaugeMetricFamily(
            "ecopulse_price_age_seconds",
            "Seconds since a region's live price was fetched (absent for configured and bundled prices).",
            labels=["provider", "region"],
        ),
        GaugeMetricFamily(
            "ecopulse_price_fresh",
            "0 when a region's live price is older than pricing.maxStaleSeconds "
            "and the bundled table stands in.",
            labels=["provider", "region"],
        ),
    )


_installed: list[PriceMetricsCollector] = []


def install_price_metrics(refresher: PriceRefresher) -> None:
    """Register the scrape-time collector once per process; later calls retarget it."""
    collector = PriceMetricsCollector(refresher)
    if _installed:
        REGISTRY.unregister(_installed.pop())
    REGISTRY.register(collector)
    _installed.append(collector)
