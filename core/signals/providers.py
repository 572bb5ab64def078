"""Offline providers (mock, static, trace) and the factory that builds the configured provider."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path

import httpx

from core.catalog import load_zone_intensity
from core.config import CarbonProviderName, CarbonSettings, TraceSettings
from core.model import CarbonObservation, ForecastPoint, Region
from core.signals.base import CarbonProvider, Clock, ProviderError, ProviderErrorKind, utc_now
from core.signals.electricitymaps import electricitymaps_from_env
from core.signals.http import default_client
from core.signals.watttime import watttime_from_env
from core.trace import Trace, TraceError, load_trace

SECONDS_PER_HOUR = 3600.0

# What carbon.trace maps its start to by default: (close enough to) when this process started.
PROCESS_STARTED_AT = utc_now()


class _TableProvider:
    """A fixed value per region or per grid zone, stamped with the clock at each fetch (mock, static)."""

    def __init__(
        self, name: str, values_g_per_kwh: Mapping[str, float], *, by_zone: bool, missing: str, clock: Clock
    ) -> None:
        self._name = name
        self._values = dict(values_g_per_kwh)
        self._by_zone = by_zone
        self._missing = missing  # the NOT_FOUND message, up to the key it did not find
        self._clock = clock

    @property
    def name(self) -> str:
        return self._name

    def fetch(self, region: Region) -> CarbonObservation:
        key = region.zone if self._by_zone else region.name
        value = self._values.get(key)
        if value is None:
            raise ProviderError(ProviderErrorKind.NOT_FOUND, f"{self._name}: {self._missing} {key}")
        return CarbonObservation(carbon_g_per_kwh=value, observed_at=self._clock())

    def close(self) -> None:
        return None


class MockProvider(_TableProvider):
    """The configured, forced grid states (carbon.mock): demonstrates high and low carbon on demand."""

    def __init__(self, values_g_per_kwh: Mapping[str, float], *, clock: Clock = utc_now) -> None:
        super().__init__("mock", values_g_per_kwh, by_zone=False, missing="no value for region", clock=clock)


class StaticProvider(_TableProvider):
    """Bundled annual mean lifecycle intensity per grid zone (Electricity Maps 2022, see core/data)."""

    def __init__(self, zone_g_per_kwh: Mapping[str, float] | None = None, *, clock: Clock = utc_now) -> None:
        values = zone_g_per_kwh if zone_g_per_kwh is not None else load_zone_intensity()
        super().__init__("static", values, by_zone=True, missing="no annual mean for zone", clock=clock)


class TraceProvider:
    """Replays an hourly intensity trace (the simulator's CSV) as if it were live (carbon.trace).

    Wall-clock time maps to trace time linearly: at ``wall_clock_start`` the replay is at ``start``
    (default the trace's first hour) and it advances ``speedup`` trace hours per wall hour
    (3600: one trace hour per wall second), wrapping round to the first hour after the last. Each
    region reads the column of its ``zone``.

    With ``forecast_hours`` > 0 the next hours of the trace are the forecast: a PERFECT forecast,
    which no real provider gives. The points are stamped as if the trace ran in real time from now
    (the next trace hour begins when the rest of the current one would have passed at speedup 1,
    then one an hour): at speedup 1 that is exactly when they hold; faster, the replay gets there
    sooner and each refresh re-anchors the forecast. Either way the economics weighs the next
    ``economics.horizonHours`` of trace time, as the live system would at that trace hour.
    """

    def __init__(
        self,
        trace: Trace,
        *,
        wall_clock_start: datetime,
        start: datetime | None = None,
        speedup: float = 1.0,
        forecast_hours: int = 0,
        source: str = "<trace>",
        clock: Clock = utc_now,
    ) -> None:
        if not trace.times:
            raise ValueError("the trace has no hours")
        if speedup <= 0:
            raise ValueError(f"speedup must be > 0, got {speedup}")
        first = trace.times[0]
        self._trace = trace
        self._hours = len(trace.times)
        self._offset_seconds = ((start or first) - first).total_seconds()
        if not 0 <= self._offset_seconds < self._hours * SECONDS_PER_HOUR:
            raise ValueError(f"start {start} is outside the trace")
        self._wall_clock_start = wall_clock_start
        self._speedup = speedup
        self._forecast_hours = forecast_hours
        self._source = source
        self._clock = clock

    @property
    def name(self) -> str:
        return "trace"

    def position(self, now: datetime) -> tuple[int, float]:
        """The trace hour (index) the replay is in at ``now``, and how far into it (trace seconds)."""
        elapsed = (now - self._wall_clock_start).total_seconds() * self._speedup
        into_trace = (self._offset_seconds + elapsed) % (self._hours * SECONDS_PER_HOUR)
        index = min(int(into_trace // SECONDS_PER_HOUR), self._hours - 1)
        return index, into_trace - index * SECONDS_PER_HOUR

    def fetch(self, region: Region) -> CarbonObservation:
        series = self._trace.zones.get(region.zone)
        if series is None:
            raise ProviderError(
                ProviderErrorKind.NOT_FOUND,
                f"trace: no column for zone {region.zone} (region {region.name}) in {self._source}",
            )
        now = self._clock()
        index, into_hour = self.position(now)
        hour_began = now - timedelta(seconds=into_hour)  # in trace time, run at speedup 1
        forecast = tuple(
            ForecastPoint(
                at=hour_began + timedelta(hours=ahead),
                carbon_g_per_kwh=series[(index + ahead) % self._hours],
            )
            for ahead in range(1, self._forecast_hours + 1)
        )
        return CarbonObservation(
            carbon_g_per_kwh=series[index],
            observed_at=now - timedelta(seconds=into_hour / self._speedup),  # when the replay got there
            forecast=forecast,
        )

    def close(self) -> None:
        return None


def trace_provider(settings: TraceSettings, *, clock: Clock = utc_now) -> TraceProvider:
    """Read ``carbon.trace.path`` and build its provider; an unusable file or start is a CONFIG error."""
    try:
        trace = load_trace(Path(settings.path), intensity=settings.intensity)
    except TraceError as error:
        raise ProviderError(ProviderErrorKind.CONFIG, f"trace: carbon.trace.path: {error}") from None
    first, last = trace.times[0], trace.times[-1]
    if settings.start is not None and not first <= settings.start < last + timedelta(hours=1):
        raise ProviderError(
            ProviderErrorKind.CONFIG,
            f"trace: carbon.trace.start: {settings.start:%Y-%m-%dT%H:%M:%SZ} is outside {settings.path} "
            f"({first:%Y-%m-%dT%H:%M:%SZ} to {last:%Y-%m-%dT%H:%M:%SZ})",
        )
    return TraceProvider(
        trace,
        wall_clock_start=settings.wall_clock_start or PROCESS_STARTED_AT,
        start=settings.start,
        speedup=settings.speedup,
        forecast_hours=settings.forecast_hours,
        source=settings.path,
        clock=clock,
    )


def build_provider(
    settings: CarbonSettings,
    *,
    environ: Mapping[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
    clock: Clock = utc_now,
) -> CarbonProvider:
    """The provider the configuration names; credentials come from the environment (a Secret).

    Raises ProviderError(CONFIG) when a needed credential is missing, with the variable's name, or
    when the trace file cannot be used, naming ``carbon.trace.path``.
    """
    env = os.environ if environ is None else environ
    if settings.provider is CarbonProviderName.MOCK:
        return MockProvider(settings.mock_g_per_kwh, clock=clock)
    if settings.provider is CarbonProviderName.STATIC:
        return StaticProvider(clock=clock)
    if settings.provider is CarbonProviderName.TRACE:
        return trace_provider(settings.trace, clock=clock)
    # The same builders the provider tests use: env overrides, user agent, no redirects.
    client = default_client(settings.request_timeout_seconds, transport=transport)
    try:
        if settings.provider is CarbonProviderName.ELECTRICITYMAPS:
            return electricitymaps_from_env(
                env,
                client=client,
                base_url=settings.electricitymaps.base_url,
                emission_factor_type=settings.electricitymaps.emission_factor_type,
                fetch_forecast=settings.electricitymaps.forecast,
            )
        return watttime_from_env(
            settings.watttime.regions, env, client=client, base_url=settings.watttime.base_url, now=clock
        )
    except ProviderError:
        client.close()  # a missing credential: the provider that would own the client never came to be
        raise
