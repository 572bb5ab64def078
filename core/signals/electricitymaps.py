"""Electricity Maps API v3: the grid's average (lifecycle or direct) carbon intensity per zone, in gCO2eq/kWh.

Runs only in the refresher's background thread. `/carbon-intensity/latest` is in the free tier;
`/carbon-intensity/forecast` is not, so the forecast is optional and its failure is never fatal.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import datetime

import httpx

from core.model import CarbonObservation, ForecastPoint, Region
from core.signals.base import ProviderError, ProviderErrorKind
from core.signals.http import (
    DEFAULT_TIMEOUT_SECONDS,
    HttpProvider,
    Secret,
    as_finite_number,
    as_object,
    as_str,
    bad_response,
    default_client,
    endpoint_from_env,
    is_plausible_intensity,
    object_items,
    parse_instant,
)

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.electricitymap.org/v3"
TOKEN_ENV = "ELECTRICITYMAPS_API_TOKEN"  # noqa: S105 - a variable name, not a token
# Optional. Official material documents both api.electricitymap.org and api.electricitymaps.com.
BASE_URL_ENV = "ELECTRICITYMAPS_BASE_URL"
BASE_URL_SETTING = f"the base URL ({BASE_URL_ENV} or carbon.electricitymaps.baseUrl)"


class ElectricityMapsProvider(HttpProvider):
    """Latest (and optionally forecast) intensity of a Region's zone. Owns its client: close() closes it."""

    def __init__(
        self,
        *,
        client: httpx.Client,
        token: str,
        base_url: str = DEFAULT_BASE_URL,
        emission_factor_type: str = "lifecycle",
        fetch_forecast: bool = False,
        allow_insecure_http: bool = False,
    ) -> None:
        super().__init__(
            name="electricitymaps",
            client=client,
            base_url=base_url,
            base_url_setting=BASE_URL_SETTING,
            allow_insecure_http=allow_insecure_http,
        )
        self._token = Secret(token)
        self._emission_factor_type = emission_factor_type
        self._fetch_forecast = fetch_forecast

    def _describe(self) -> str:
        return f"emission_factor_type={self._emission_factor_type!r}, fetch_forecast={self._fetch_forecast}"

    def fetch(self, region: Region) -> CarbonObservation:
        zone = region.zone
        what = f"electricitymaps zone {zone}"
        if not zone:
            raise ProviderError(
                ProviderErrorKind.CONFIG, f"electricitymaps region {region.name}: no grid zone"
            )
        body = self._get("/carbon-intensity/latest", zone, what=what)
        value, observed_at = _parse_latest(body, zone=zone, what=what)
        forecast: tuple[ForecastPoint, ...] = ()
        if self._fetch_forecast:
            forecast_what = f"electricitymaps zone {zone} forecast"
            try:
                forecast = _parse_forecast(
                    self._get("/carbon-intensity/forecast", zone, what=forecast_what), what=forecast_what
                )
            except ProviderError as err:
                log.info("%s unavailable, keeping the latest value (%s)", forecast_what, err)
        return CarbonObservation(carbon_g_per_kwh=value, observed_at=observed_at, forecast=forecast)

    def _get(self, path: str, zone: str, *, what: str) -> object:
        response = self._send(
            path,
            what=what,
            params={"zone": zone, "emissionFactorType": self._emission_factor_type},
            headers={"auth-token": self._token.reveal()},
        )
        return self._read_json(response, what=what)


def _parse_latest(body: object, *, zone: str, what: str) -> tuple[float, datetime]:
    obj = as_object(body)
    if obj is None:
        raise bad_response(what, "body is not a JSON object")
    answered_zone = as_str(obj.get("zone"))
    # The API falls back to the caller's location when it detects no zone: never accept another zone's value.
    if answered_zone is not None and answered_zone.casefold() != zone.casefold():
        raise bad_response(what, "response is for another zone")
    raw = obj.get("carbonIntensity")
    if raw is None:
        raise bad_response(what, "no carbonIntensity (no data)")
    value = as_finite_number(raw)
    if value is None:
        raise bad_response(what, "carbonIntensity is not a finite number")
    if not is_plausible_intensity(value):
        raise bad_response(what, f"carbonIntensity {value:g} out of range")
    observed_at = parse_instant(obj.get("datetime"))
    if observed_at is None:
        raise bad_response(what, "missing or unparseable datetime")
    return value, observed_at


def _parse_forecast(body: object, *, what: str) -> tuple[ForecastPoint, ...]:
    obj = as_object(body)
    if obj is None:
        raise bad_response(what, "body is not a JSON object")
    points: list[ForecastPoint] = []
    for point in object_items(obj, "forecast", what=what):
        raw = point.get("carbonIntensity")
        if raw is None:  # a point without data: skip it, keep the rest
            continue
        value = as_finite_number(raw)
        if value is None or not is_plausible_intensity(value):
            raise bad_response(what, "forecast carbonIntensity is not a plausible number")
        at = parse_instant(point.get("datetime"))
        if at is None:
            raise bad_response(what, "forecast point has an unparseable datetime")
        points.append(ForecastPoint(at=at, carbon_g_per_kwh=value))
    points.sort(key=lambda p: p.at)
    return tuple(points)


def electricitymaps_from_env(
    env: Mapping[str, str] | None = None,
    *,
    client: httpx.Client | None = None,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    base_url: str = DEFAULT_BASE_URL,
    emission_factor_type: str = "lifecycle",
    fetch_forecast: bool = False,
) -> ElectricityMapsProvider:
    """The provider from ELECTRICITYMAPS_API_TOKEN (required), ELECTRICITYMAPS_BASE_URL (optional: it
    overrides ``base_url``, carbon.electricitymaps.baseUrl; https:// unless
    ECOPULSE_ALLOW_INSECURE_PROVIDER_URLS=true). Production (build_provider) and tests both build here."""
    source = os.environ if env is None else env
    token = source.get(TOKEN_ENV, "").strip()
    if not token:
        raise ProviderError(ProviderErrorKind.CONFIG, f"electricitymaps: {TOKEN_ENV} is not set")
    endpoint = endpoint_from_env(source, base_url_env=BASE_URL_ENV, base_url=base_url)
    return ElectricityMapsProvider(
        client=client if client is not None else default_client(timeout_seconds),
        token=token,
        base_url=endpoint.base_url,
        emission_factor_type=emission_factor_type,
        fetch_forecast=fetch_forecast,
        allow_insecure_http=endpoint.allow_insecure_http,
    )
