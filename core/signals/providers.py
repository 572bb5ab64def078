"""Offline providers (mock, static) and the factory that builds the configured provider."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import httpx

from core.catalog import load_zone_intensity
from core.config import CarbonProviderName, CarbonSettings
from core.model import CarbonObservation, Region
from core.signals.base import CarbonProvider, ProviderError, ProviderErrorKind
from core.signals.electricitymaps import ElectricityMapsProvider
from core.signals.watttime import WattTimeProvider

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class MockProvider:
    """The configured, forced grid states (carbon.mock): demonstrates high and low carbon on demand."""

    def __init__(self, values_g_per_kwh: Mapping[str, float], *, clock: Clock = utc_now) -> None:
        self._values = dict(values_g_per_kwh)
        self._clock = clock

    @property
    def name(self) -> str:
        return "mock"

    def fetch(self, region: Region) -> CarbonObservation:
        value = self._values.get(region.name)
        if value is None:
            raise ProviderError(ProviderErrorKind.NOT_FOUND, f"mock: no value for region {region.name}")
        return CarbonObservation(carbon_g_per_kwh=value, observed_at=self._clock())

    def close(self) -> None:
        return None


class StaticProvider:
    """Bundled annual mean lifecycle intensity per grid zone (Electricity Maps 2022, see core/data)."""

    def __init__(self, zone_g_per_kwh: Mapping[str, float] | None = None, *, clock: Clock = utc_now) -> None:
        self._values = dict(zone_g_per_kwh if zone_g_per_kwh is not None else load_zone_intensity())
        self._clock = clock

    @property
    def name(self) -> str:
        return "static"

    def fetch(self, region: Region) -> CarbonObservation:
        value = self._values.get(region.zone)
        if value is None:
            raise ProviderError(ProviderErrorKind.NOT_FOUND, f"static: no annual mean for zone {region.zone}")
        return CarbonObservation(carbon_g_per_kwh=value, observed_at=self._clock())

    def close(self) -> None:
        return None


def build_provider(
    settings: CarbonSettings,
    *,
    environ: Mapping[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
    clock: Clock = utc_now,
) -> CarbonProvider:
    """The provider the configuration names; credentials come from the environment (a Secret).

    Raises ProviderError(CONFIG) when a needed credential is missing, with the variable's name.
    """
    env = os.environ if environ is None else environ
    if settings.provider is CarbonProviderName.MOCK:
        return MockProvider(settings.mock_g_per_kwh, clock=clock)
    if settings.provider is CarbonProviderName.STATIC:
        return StaticProvider(clock=clock)
    timeout = httpx.Timeout(settings.request_timeout_seconds)
    if settings.provider is CarbonProviderName.ELECTRICITYMAPS:
        token = env.get("ELECTRICITYMAPS_API_TOKEN", "").strip()
        if not token:
            raise ProviderError(
                ProviderErrorKind.CONFIG, "electricitymaps: ELECTRICITYMAPS_API_TOKEN is not set"
            )
        return ElectricityMapsProvider(
            client=httpx.Client(timeout=timeout, transport=transport),
            token=token,
            base_url=settings.electricitymaps.base_url,
            emission_factor_type=settings.electricitymaps.emission_factor_type,
            fetch_forecast=settings.electricitymaps.forecast,
        )
    username = env.get("WATTTIME_USERNAME", "").strip()
    password = env.get("WATTTIME_PASSWORD", "")
    if not username or not password:
        raise ProviderError(
            ProviderErrorKind.CONFIG, "watttime: WATTTIME_USERNAME and WATTTIME_PASSWORD must be set"
        )
    return WattTimeProvider(
        client=httpx.Client(timeout=timeout, transport=transport),
        username=username,
        password=password,
        region_map=settings.watttime.regions,
        base_url=settings.watttime.base_url,
        now=clock,
    )
