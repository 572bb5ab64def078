"""WattTime API v3: the grid's marginal operating emissions rate (MOER), converted to gCO2/kWh.

Runs only in the refresher's background thread. Login is `GET /login` with HTTP Basic auth (no /v3
prefix) and yields a bearer token that lives 30 minutes; data calls are under /v3.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Mapping
from datetime import datetime, timedelta

import httpx

from core.model import CarbonObservation, ForecastPoint, Region
from core.signals.base import Clock, ProviderError, ProviderErrorKind
from core.signals.http import (
    DEFAULT_TIMEOUT_SECONDS,
    HttpProvider,
    Reply,
    Secret,
    as_finite_number,
    as_object,
    as_str,
    bad_response,
    default_client,
    endpoint_from_env,
    error_for_status,
    is_plausible_intensity,
    object_items,
    parse_instant,
    read_json,
)

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.watttime.org"
USERNAME_ENV = "WATTTIME_USERNAME"
PASSWORD_ENV = "WATTTIME_PASSWORD"  # noqa: S105 - the name of a variable, not a password
BASE_URL_ENV = "WATTTIME_BASE_URL"  # optional
BASE_URL_SETTING = f"the base URL ({BASE_URL_ENV} or carbon.watttime.baseUrl)"

# 1 lb = 453.592 g and 1 MWh = 1000 kWh, so 1 lb/MWh = 0.453592 g/kWh.
LBS_PER_MWH_TO_G_PER_KWH = 0.453592
MOER_UNITS = "lbs_co2_per_mwh"
# Tokens live 30 minutes; renew a little early so a token never expires between check and use.
TOKEN_MAX_AGE = timedelta(minutes=25)
# Visible ASCII only: anything else cannot go in an Authorization header.
_TOKEN_SHAPE = re.compile(r"[!-~]+")
DEFAULT_HORIZON_HOURS = 24
MAX_HORIZON_HOURS = 72


class WattTimeProvider(HttpProvider):
    """Current and forecast MOER of a Region, from `GET /v3/forecast`; owns its client: close() closes it.

    MOER is a *marginal* rate: the emissions of the plant that would answer one more kWh of demand
    now. It is not comparable to Electricity Maps' *average* (lifecycle/direct) intensity of the
    whole grid mix, and the two must never be mixed in one decision: pick one provider per cluster.

    `region_map` maps our region name (Region.name, the topology.kubernetes.io/region value) to a
    WattTime region code such as "CAISO_NORTH". The first forecast point (the current 5-minute
    period) is the current value; the whole series is the forecast.
    """

    def __init__(
        self,
        *,
        client: httpx.Client,
        username: str,
        password: str,
        region_map: Mapping[str, str],
        base_url: str = DEFAULT_BASE_URL,
        signal_type: str = "co2_moer",
        now: Clock | None = None,
        horizon_hours: int = DEFAULT_HORIZON_HOURS,
        allow_insecure_http: bool = False,
    ) -> None:
        if not 0 <= horizon_hours <= MAX_HORIZON_HOURS:
            raise ValueError(f"horizon_hours must be within 0..{MAX_HORIZON_HOURS}, got {horizon_hours}")
        super().__init__(
            name="watttime",
            client=client,
            base_url=base_url,
            base_url_setting=BASE_URL_SETTING,
            allow_insecure_http=allow_insecure_http,
            now=now,
        )
        self._username = username
        self._password = Secret(password)
        self._region_map = dict(region_map)
        self._signal_type = signal_type
        self._horizon_hours = horizon_hours
        self._lock = threading.Lock()
        self._token: Secret | None = None
        self._token_at: datetime | None = None

    def _describe(self) -> str:
        return f"signal_type={self._signal_type!r}, regions={sorted(self._region_map)!r}"

    def fetch(self, region: Region) -> CarbonObservation:
        code = self._region_map.get(region.name, "").strip()
        if not code:
            raise ProviderError(
                ProviderErrorKind.CONFIG, f"watttime region {region.name}: no WattTime region mapped"
            )
        what = f"watttime region {code} ({region.name})"
        token = self._valid_token(rejected=None)
        response = self._get_forecast(code, token, what=what)
        if response.status_code == 401:
            log.info("%s: token rejected (HTTP 401), logging in again", what)
            token = self._valid_token(rejected=token)
            response = self._get_forecast(code, token, what=what)  # once: a second 401 is AUTH below
        return _parse_forecast(self._read_json(response, what=what), what=what)

    def close(self) -> None:
        with self._lock:
            self._token = None
            self._token_at = None
        super().close()

    def _get_forecast(self, code: str, token: Secret, *, what: str) -> Reply:
        return self._send(
            "/v3/forecast",
            what=what,
            params={
                "region": code,
                "signal_type": self._signal_type,
                "horizon_hours": str(self._horizon_hours),
            },
            headers={"authorization": f"Bearer {token.reveal()}"},
        )

    def _valid_token(self, *, rejected: Secret | None) -> Secret:
        """The cached token, or a fresh one if there is none, it is too old, or it was just rejected."""
        with self._lock:
            now = self._now()
            token, token_at = self._token, self._token_at
            if (
                token is None
                or token_at is None
                or token is rejected
                or now - token_at >= TOKEN_MAX_AGE
                or now < token_at  # the clock went back: the age is unknown
            ):
                self._token, self._token_at = None, None
                token = self._login()
                self._token, self._token_at = token, now
            return token

    def _login(self) -> Secret:
        what = "watttime login"
        response = self._send(
            "/login",
            what=what,
            auth=httpx.BasicAuth(self._username, self._password.reveal()),
        )
        error = error_for_status(response, what=what, now=self._now())
        if error is not None:
            if error.kind is ProviderErrorKind.AUTH:
                raise ProviderError(
                    ProviderErrorKind.AUTH,
                    f"{what}: HTTP {response.status_code} (check {USERNAME_ENV} and {PASSWORD_ENV})",
                )
            raise error
        obj = as_object(read_json(response, what=what))
        token = as_str(obj.get("token")) if obj is not None else None
        if token is None or not _TOKEN_SHAPE.fullmatch(token):
            raise bad_response(what, "no usable token in the answer")
        log.debug("watttime login: got a new token")
        return Secret(token)


def _parse_forecast(body: object, *, what: str) -> CarbonObservation:
    obj = as_object(body)
    if obj is None:
        raise bad_response(what, "body is not a JSON object")
    meta = as_object(obj.get("meta"))
    units = as_str(meta.get("units")) if meta is not None else None
    if units is not None and units != MOER_UNITS:
        raise bad_response(what, f"units are not {MOER_UNITS}")
    points: list[ForecastPoint] = []
    for point in object_items(obj, "data", what=what):
        lbs = as_finite_number(point.get("value"))
        if lbs is None:
            raise bad_response(what, "value is missing or not a finite number")
        g_per_kwh = lbs * LBS_PER_MWH_TO_G_PER_KWH
        if not is_plausible_intensity(g_per_kwh):
            raise bad_response(what, f"value {lbs:g} lbs/MWh out of range")
        at = parse_instant(point.get("point_time"))
        if at is None:
            raise bad_response(what, "missing or unparseable point_time")
        points.append(ForecastPoint(at=at, carbon_g_per_kwh=g_per_kwh))
    if not points:
        raise bad_response(what, "no data points")
    points.sort(key=lambda p: p.at)
    current = points[0]
    return CarbonObservation(
        carbon_g_per_kwh=current.carbon_g_per_kwh, observed_at=current.at, forecast=tuple(points)
    )


def watttime_from_env(
    region_map: Mapping[str, str],
    env: Mapping[str, str] | None = None,
    *,
    client: httpx.Client | None = None,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    base_url: str = DEFAULT_BASE_URL,
    signal_type: str = "co2_moer",
    horizon_hours: int = DEFAULT_HORIZON_HOURS,
    now: Clock | None = None,
) -> WattTimeProvider:
    """The provider from WATTTIME_USERNAME, WATTTIME_PASSWORD (required), WATTTIME_BASE_URL (optional:
    it overrides ``base_url``, carbon.watttime.baseUrl; https:// unless
    ECOPULSE_ALLOW_INSECURE_PROVIDER_URLS=true). Production (build_provider) and tests both build here."""
    source = os.environ if env is None else env
    username = source.get(USERNAME_ENV, "").strip()
    password = source.get(PASSWORD_ENV, "")
    missing = [name for name, value in ((USERNAME_ENV, username), (PASSWORD_ENV, password)) if not value]
    if missing:
        raise ProviderError(ProviderErrorKind.CONFIG, f"watttime: {' and '.join(missing)} not set")
    endpoint = endpoint_from_env(source, base_url_env=BASE_URL_ENV, base_url=base_url)
    return WattTimeProvider(
        client=client if client is not None else default_client(timeout_seconds),
        username=username,
        password=password,
        region_map=region_map,
        base_url=endpoint.base_url,
        signal_type=signal_type,
        now=now,
        horizon_hours=horizon_hours,
        allow_insecure_http=endpoint.allow_insecure_http,
    )
