"""WattTimeProvider against a fake WattTime v3 API (MockTransport) and a real slow socket."""

from __future__ import annotations

import base64
import json
import logging
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.config import parse_config_text
from core.model import Region
from core.signals.base import ProviderError, ProviderErrorKind
from core.signals.http import MAX_RESPONSE_BYTES, USER_AGENT
from core.signals.providers import build_provider
from core.signals.watttime import LBS_PER_MWH_TO_G_PER_KWH, WattTimeProvider, watttime_from_env
from tests.integration.flood_server import FLOOD_BYTES, flood_server

USERNAME = "eco-pulse-bot"
PASSWORD = "wt-PASS-5ecr3t-77b2"
BASIC = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
BASE = "https://api.watttime.org"
REGION_MAP = {"us-west1": "CAISO_NORTH", "us-east4": "PJM_DC"}
US_WEST = Region(name="us-west1", zone="US-CAL-CISO")
US_EAST = Region(name="us-east4", zone="US-MIDA-PJM")
START = datetime(2024, 6, 18, 18, 40, tzinfo=UTC)


def forecast_body(values: list[float] | None = None, *, units: str = "lbs_co2_per_mwh") -> dict[str, object]:
    """The openapi example's shape: 5-minute points from START, meta with units."""
    values = values if values is not None else [870.0, 865.0, 861.5, 850.0, 842.0, 840.0]
    return {
        "data": [
            {"point_time": (START + timedelta(minutes=5 * i)).isoformat(), "value": value}
            for i, value in enumerate(values)
        ],
        "meta": {
            "data_point_period_seconds": 300,
            "region": "CAISO_NORTH",
            "warnings": [],
            "signal_type": "co2_moer",
            "model": {"date": "2023-03-01"},
            "units": units,
            "generated_at_period_seconds": 300,
            "generated_at": START.isoformat(),
        },
    }


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    raises: Exception | None = None


def json_reply(body: object, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status=status, body=json.dumps(body).encode(), headers=headers or {})


def respond(reply: Reply) -> httpx.Response:
    if reply.raises is not None:
        raise reply.raises
    return httpx.Response(reply.status, content=reply.body, headers=reply.headers)


class FakeWattTime:
    """Speaks GET /login (Basic auth → token) and GET /v3/forecast (Bearer), like the v3 API.

    Tokens are valid until expire_tokens(); regions outside `subscribed` get the documented 403.
    `login_reply` / `forecast_reply` override the answer once authentication has passed.
    """

    def __init__(self) -> None:
        self.password = PASSWORD
        self.valid_tokens: set[str] = set()
        self.issued: list[str] = []
        self.subscribed = {"CAISO_NORTH"}
        self.login_reply: Reply | None = None
        self.forecast_reply: Reply | None = None
        self.reject_all_tokens = False
        self.requests: list[httpx.Request] = []

    @property
    def logins(self) -> int:
        return sum(1 for r in self.requests if r.url.path == "/login")

    @property
    def forecasts(self) -> int:
        return sum(1 for r in self.requests if r.url.path == "/v3/forecast")

    def expire_tokens(self) -> None:
        self.valid_tokens.clear()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert request.method == "GET"
        assert request.url.host == "api.watttime.org"
        if request.url.path == "/login":
            return self._login(request)
        if request.url.path == "/v3/forecast":
            return self._forecast(request)
        return httpx.Response(404, json={"error": "Not Found"})

    def _login(self, request: httpx.Request) -> httpx.Response:
        expected = base64.b64encode(f"{USERNAME}:{self.password}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {expected}":
            return httpx.Response(
                401, json={"error": "Unauthorized", "echo": request.headers.get("authorization")}
            )
        if self.login_reply is not None:
            return respond(self.login_reply)
        token = f"wt-BEARER-{len(self.issued) + 1}-5ecr3t"
        self.issued.append(token)
        self.valid_tokens.add(token)
        return httpx.Response(200, json={"token": token})

    def _forecast(self, request: httpx.Request) -> httpx.Response:
        authorization = request.headers.get("authorization", "")
        token = authorization.removeprefix("Bearer ")
        if (
            not authorization.startswith("Bearer ")
            or token not in self.valid_tokens
            or self.reject_all_tokens
        ):
            return httpx.Response(401, json={"error": "Invalid token", "echo": authorization})
        params = request.url.params
        assert set(params.keys()) == {"region", "signal_type", "horizon_hours"}
        assert params["signal_type"] == "co2_moer"
        assert 0 <= int(params["horizon_hours"]) <= 72
        if params["region"] not in self.subscribed:
            return httpx.Response(
                403,
                json={
                    "error": "Forbidden",
                    "message": f"{token}: your subscription does not include this region",
                    "docs": "https://docs.watttime.org",
                },
            )
        if self.forecast_reply is not None:
            return respond(self.forecast_reply)
        return httpx.Response(200, json=forecast_body())


class FakeClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


ProviderFactory = Callable[..., WattTimeProvider]


@pytest.fixture
def fake() -> FakeWattTime:
    return FakeWattTime()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_provider(fake: FakeWattTime, clock: FakeClock) -> Iterator[ProviderFactory]:
    made: list[WattTimeProvider] = []

    def make(*, password: str = PASSWORD, horizon_hours: int = 24) -> WattTimeProvider:
        provider = WattTimeProvider(
            client=httpx.Client(transport=httpx.MockTransport(fake), timeout=1.0),
            username=USERNAME,
            password=password,
            region_map=REGION_MAP,
            base_url=BASE,
            now=clock,
            horizon_hours=horizon_hours,
        )
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.close()


@dataclass
class SlowServer:
    base_url: str
    slow_paths: set[str]


@pytest.fixture
def slow_server() -> Iterator[SlowServer]:
    """A real HTTP server on 127.0.0.1: /login answers a token at once; paths in slow_paths never answer."""
    release = threading.Event()
    slow_paths: set[str] = {"/v3/forecast"}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path in slow_paths:
                release.wait(5.0)  # the client gives up first; teardown releases us
                return
            body = json.dumps({"token": "wt-BEARER-real-5ecr3t"}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield SlowServer(base_url=f"http://127.0.0.1:{server.server_port}", slow_paths=slow_paths)
    finally:
        release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5.0)


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def real_provider(base_url: str) -> WattTimeProvider:
    return WattTimeProvider(
        client=httpx.Client(timeout=0.15, trust_env=False),  # no proxy from the environment for 127.0.0.1
        username=USERNAME,
        password=PASSWORD,
        region_map=REGION_MAP,
        base_url=base_url,
        allow_insecure_http=True,  # loopback fakes speak plain HTTP: opt in explicitly
    )


def fetch_error(provider: WattTimeProvider, region: Region = US_WEST) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        provider.fetch(region)
    return info.value


# --- success, login and token reuse --------------------------------------------------------------


def test_login_then_forecast(fake: FakeWattTime, make_provider: ProviderFactory) -> None:
    provider = make_provider()
    observation = provider.fetch(US_WEST)

    assert provider.name == "watttime"
    assert observation.carbon_g_per_kwh == pytest.approx(870.0 * 0.453592)
    assert observation.observed_at == START
    assert len(observation.forecast) == 6
    assert observation.forecast[0].carbon_g_per_kwh == observation.carbon_g_per_kwh
    assert observation.forecast[-1].at == START + timedelta(minutes=25)
    assert observation.forecast[-1].carbon_g_per_kwh == pytest.approx(840.0 * LBS_PER_MWH_TO_G_PER_KWH)

    login, forecast = fake.requests
    assert str(login.url) == f"{BASE}/login"  # no /v3 prefix on login
    assert login.headers["authorization"] == f"Basic {BASIC}"
    assert forecast.url.path == "/v3/forecast"
    assert dict(forecast.url.params) == {
        "region": "CAISO_NORTH",
        "signal_type": "co2_moer",
        "horizon_hours": "24",
    }
    assert forecast.headers["authorization"] == f"Bearer {fake.issued[0]}"


def test_points_are_sorted_and_first_is_current(fake: FakeWattTime, make_provider: ProviderFactory) -> None:
    body = forecast_body([500.0, 400.0, 300.0])
    data = body["data"]
    assert isinstance(data, list)
    fake.forecast_reply = json_reply({**body, "data": list(reversed(data))})
    observation = make_provider().fetch(US_WEST)
    assert observation.observed_at == START
    assert observation.carbon_g_per_kwh == pytest.approx(500.0 * LBS_PER_MWH_TO_G_PER_KWH)
    assert [p.at for p in observation.forecast] == sorted(p.at for p in observation.forecast)


def test_horizon_hours_is_sent(fake: FakeWattTime, make_provider: ProviderFactory) -> None:
    make_provider(horizon_hours=0).fetch(US_WEST)
    assert fake.requests[-1].url.params["horizon_hours"] == "0"
    with pytest.raises(ValueError, match="horizon_hours"):
        make_provider(horizon_hours=73)


def test_token_is_reused(fake: FakeWattTime, make_provider: ProviderFactory) -> None:
    provider = make_provider()
    for _ in range(3):
        provider.fetch(US_WEST)
    assert (fake.logins, fake.forecasts) == (1, 3)


def test_token_renewed_before_it_expires(
    fake: FakeWattTime, make_provider: ProviderFactory, clock: FakeClock
) -> None:
    provider = make_provider()
    provider.fetch(US_WEST)
    clock.advance(timedelta(minutes=24, seconds=59))
    provider.fetch(US_WEST)
    assert fake.logins == 1
    clock.advance(timedelta(seconds=1))  # 25 minutes old: renew although the server would still accept it
    provider.fetch(US_WEST)
    assert fake.logins == 2
    assert fake.requests[-1].headers["authorization"] == f"Bearer {fake.issued[1]}"


def test_clock_going_back_renews(
    fake: FakeWattTime, make_provider: ProviderFactory, clock: FakeClock
) -> None:
    provider = make_provider()
    provider.fetch(US_WEST)
    clock.advance(timedelta(minutes=-5))
    provider.fetch(US_WEST)
    assert fake.logins == 2


def test_401_relogs_in_once_then_succeeds(fake: FakeWattTime, make_provider: ProviderFactory) -> None:
    provider = make_provider()
    provider.fetch(US_WEST)
    fake.expire_tokens()  # the server forgot our token early

    observation = provider.fetch(US_WEST)

    assert observation.carbon_g_per_kwh == pytest.approx(870.0 * LBS_PER_MWH_TO_G_PER_KWH)
    assert [r.url.path for r in fake.requests] == [
        "/login",
        "/v3/forecast",
        "/v3/forecast",
        "/login",
        "/v3/forecast",
    ]
    assert fake.requests[-1].headers["authorization"] == f"Bearer {fake.issued[1]}"


def test_401_relogin_rejected_is_auth(fake: FakeWattTime, make_provider: ProviderFactory) -> None:
    provider = make_provider()
    provider.fetch(US_WEST)
    fake.expire_tokens()
    fake.password = "rotated-by-someone"

    err = fetch_error(provider)

    assert err.kind is ProviderErrorKind.AUTH
    assert err.message == "watttime login: HTTP 401 (check WATTTIME_USERNAME and WATTTIME_PASSWORD)"
    assert (fake.logins, fake.forecasts) == (2, 2)
    fetch_error(provider)  # the rejected token is not reused: the next fetch logs in again
    assert (fake.logins, fake.forecasts) == (3, 2)


def test_401_after_fresh_login_is_auth_without_looping(
    fake: FakeWattTime, make_provider: ProviderFactory
) -> None:
    fake.reject_all_tokens = True
    err = fetch_error(make_provider())
    assert err.kind is ProviderErrorKind.AUTH
    assert err.message == "watttime region CAISO_NORTH (us-west1): HTTP 401"
    assert (fake.logins, fake.forecasts) == (2, 2)


def test_wrong_password_is_auth(fake: FakeWattTime, make_provider: ProviderFactory) -> None:
    err = fetch_error(make_provider(password="not-it"))
    assert err.kind is ProviderErrorKind.AUTH
    assert (fake.logins, fake.forecasts) == (1, 0)


def test_403_unsubscribed_region_is_auth_without_relogin(
    fake: FakeWattTime, make_provider: ProviderFactory
) -> None:
    err = fetch_error(make_provider(), US_EAST)
    assert err.kind is ProviderErrorKind.AUTH
    assert err.message == "watttime region PJM_DC (us-east4): HTTP 403"
    assert (fake.logins, fake.forecasts) == (1, 1)


def test_unmapped_region_is_config_without_requests(
    fake: FakeWattTime, make_provider: ProviderFactory
) -> None:
    err = fetch_error(make_provider(), Region(name="eu-north1", zone="FI"))
    assert err.kind is ProviderErrorKind.CONFIG
    assert "eu-north1" in err.message
    assert fake.requests == []


# --- HTTP errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (403, ProviderErrorKind.AUTH),
        (404, ProviderErrorKind.NOT_FOUND),
        (400, ProviderErrorKind.CONFIG),
        (500, ProviderErrorKind.UNAVAILABLE),
        (503, ProviderErrorKind.UNAVAILABLE),
    ],
)
def test_forecast_status_classification(
    fake: FakeWattTime, make_provider: ProviderFactory, status: int, kind: ProviderErrorKind
) -> None:
    fake.forecast_reply = json_reply({"error": "x"}, status=status)
    err = fetch_error(make_provider())
    assert err.kind is kind
    assert err.message.startswith(f"watttime region CAISO_NORTH (us-west1): HTTP {status}")


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (403, ProviderErrorKind.AUTH),
        (404, ProviderErrorKind.NOT_FOUND),
        (500, ProviderErrorKind.UNAVAILABLE),
        (503, ProviderErrorKind.UNAVAILABLE),
    ],
)
def test_login_status_classification(
    fake: FakeWattTime, make_provider: ProviderFactory, status: int, kind: ProviderErrorKind
) -> None:
    fake.login_reply = json_reply({"error": "x"}, status=status)
    err = fetch_error(make_provider())
    assert err.kind is kind
    assert err.message.startswith(f"watttime login: HTTP {status}")
    assert fake.forecasts == 0


def test_429_retry_after_seconds(fake: FakeWattTime, make_provider: ProviderFactory) -> None:
    fake.forecast_reply = json_reply(
        {"error": "Too Many Requests"}, status=429, headers={"Retry-After": "30"}
    )
    err = fetch_error(make_provider())
    assert err.kind is ProviderErrorKind.RATE_LIMITED
    assert err.retry_after_seconds == 30.0


def test_429_retry_after_http_date(
    fake: FakeWattTime, make_provider: ProviderFactory, clock: FakeClock
) -> None:
    retry_at = format_datetime(clock.now + timedelta(seconds=90), usegmt=True)
    fake.forecast_reply = json_reply({}, status=429, headers={"Retry-After": retry_at})
    err = fetch_error(make_provider())
    assert err.kind is ProviderErrorKind.RATE_LIMITED
    assert err.retry_after_seconds == 90.0


def test_429_on_login(fake: FakeWattTime, make_provider: ProviderFactory, clock: FakeClock) -> None:
    retry_at = format_datetime(clock.now + timedelta(minutes=5), usegmt=True)
    fake.login_reply = json_reply({}, status=429, headers={"Retry-After": retry_at})
    err = fetch_error(make_provider())
    assert err.kind is ProviderErrorKind.RATE_LIMITED
    assert err.retry_after_seconds == 300.0
    assert err.message == "watttime login: HTTP 429"


# --- transport errors (real sockets) -------------------------------------------------------------


def test_forecast_timeout_against_a_real_slow_server(slow_server: SlowServer) -> None:
    provider = real_provider(slow_server.base_url)
    try:
        started = time.monotonic()
        err = fetch_error(provider)
        elapsed = time.monotonic() - started
    finally:
        provider.close()
    assert err.kind is ProviderErrorKind.TIMEOUT
    assert err.message == "watttime region CAISO_NORTH (us-west1): timed out (ReadTimeout)"
    assert elapsed < 2.0


def test_login_timeout_against_a_real_slow_server(slow_server: SlowServer) -> None:
    slow_server.slow_paths.add("/login")
    provider = real_provider(slow_server.base_url)
    try:
        err = fetch_error(provider)
    finally:
        provider.close()
    assert err.kind is ProviderErrorKind.TIMEOUT
    assert err.message == "watttime login: timed out (ReadTimeout)"


def test_connection_refused_is_unavailable() -> None:
    provider = real_provider(f"http://127.0.0.1:{closed_port()}")
    try:
        err = fetch_error(provider)
    finally:
        provider.close()
    assert err.kind is ProviderErrorKind.UNAVAILABLE
    assert err.message.startswith("watttime login: connection failed (ConnectError: ")


# --- bodies we cannot read -----------------------------------------------------------------------

BAD_LOGIN_BODIES: dict[str, bytes] = {
    "html": b"<html>login page</html>",
    "empty": b"",
    "list": b'["token"]',
    "no-token": b"{}",
    "null-token": b'{"token": null}',
    "empty-token": b'{"token": ""}',
    "number-token": b'{"token": 42}',
    "non-ascii-token": json.dumps({"token": "t\u00f6ken"}).encode(),
    "header-injection": json.dumps({"token": "abc\r\nX-Evil: 1"}).encode(),
}


@pytest.mark.parametrize("body", BAD_LOGIN_BODIES.values(), ids=BAD_LOGIN_BODIES.keys())
def test_unreadable_login_is_bad_response(
    fake: FakeWattTime, make_provider: ProviderFactory, body: bytes
) -> None:
    fake.login_reply = Reply(body=body)
    err = fetch_error(make_provider())
    assert err.kind is ProviderErrorKind.BAD_RESPONSE
    assert err.message.startswith("watttime login: ")
    assert fake.forecasts == 0


def _with_point(**point: object) -> bytes:
    return json.dumps(
        {**forecast_body(), "data": [{"point_time": START.isoformat(), "value": 800, **point}]}
    ).encode()


BAD_FORECAST_BODIES: dict[str, bytes] = {
    "html": b"<html>502</html>",
    "truncated": b'{"data": [{"point_time": ',
    "list": json.dumps(forecast_body()["data"]).encode(),
    "no-data": json.dumps({"meta": {"units": "lbs_co2_per_mwh"}}).encode(),
    "data-not-list": json.dumps({"data": {"value": 800}}).encode(),
    "empty-data": json.dumps({**forecast_body(), "data": []}).encode(),
    "point-not-object": json.dumps({"data": [800]}).encode(),
    "null-value": _with_point(value=None),
    "missing-value": json.dumps({"data": [{"point_time": START.isoformat()}]}).encode(),
    "negative": _with_point(value=-1),
    "absurd": _with_point(value=11100),  # 5035 g/kWh
    "nan": _with_point(value=float("nan")),
    "string-value": _with_point(value="800"),
    "bool-value": _with_point(value=False),
    "bad-time": _with_point(point_time="18:40 today"),
    "null-time": _with_point(point_time=None),
    "units": json.dumps(forecast_body(units="percentile")).encode(),
}


@pytest.mark.parametrize("body", BAD_FORECAST_BODIES.values(), ids=BAD_FORECAST_BODIES.keys())
def test_unreadable_forecast_is_bad_response(
    fake: FakeWattTime, make_provider: ProviderFactory, body: bytes
) -> None:
    fake.forecast_reply = Reply(body=body)
    err = fetch_error(make_provider())
    assert err.kind is ProviderErrorKind.BAD_RESPONSE
    assert err.message.startswith("watttime region CAISO_NORTH (us-west1): ")


@pytest.mark.parametrize("lbs", [0.0, 11023.0])
def test_range_boundaries_accepted(fake: FakeWattTime, make_provider: ProviderFactory, lbs: float) -> None:
    fake.forecast_reply = json_reply(forecast_body([lbs]))
    assert make_provider().fetch(US_WEST).carbon_g_per_kwh == pytest.approx(lbs * LBS_PER_MWH_TO_G_PER_KWH)


def test_missing_meta_is_accepted(fake: FakeWattTime, make_provider: ProviderFactory) -> None:
    fake.forecast_reply = json_reply({"data": forecast_body()["data"]})
    assert make_provider().fetch(US_WEST).observed_at == START


# --- secrets -------------------------------------------------------------------------------------

Setup = Callable[[FakeWattTime], None]


def _login(reply: Reply) -> Setup:
    def setup(fake: FakeWattTime) -> None:
        fake.login_reply = reply

    return setup


def _forecast(reply: Reply) -> Setup:
    def setup(fake: FakeWattTime) -> None:
        fake.forecast_reply = reply

    return setup


def _wrong_password(fake: FakeWattTime) -> None:
    fake.password = "something-else"


def _reject_tokens(fake: FakeWattTime) -> None:
    fake.reject_all_tokens = True


SECRET_SCENARIOS: dict[str, Setup] = {
    "login-401": _wrong_password,
    "login-429": _login(json_reply({"echo": PASSWORD}, status=429, headers={"retry-after": "5"})),
    "login-500": _login(Reply(status=500, body=PASSWORD.encode())),
    "login-garbage": _login(Reply(body=f"<p>{PASSWORD}</p>".encode())),
    "login-bad-token": _login(json_reply({"token": f"{PASSWORD}\n"})),
    "login-timeout": _login(Reply(raises=httpx.ConnectTimeout("timed out"))),
    "data-401-twice": _reject_tokens,
    "data-403": lambda fake: fake.subscribed.clear(),
    "data-404": _forecast(json_reply({"echo": PASSWORD}, status=404)),
    "data-429": _forecast(
        json_reply({}, status=429, headers={"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})
    ),
    "data-503": _forecast(Reply(status=503, body=b"wt-BEARER-1-5ecr3t")),
    "data-garbage": _forecast(Reply(body=b"wt-BEARER-1-5ecr3t")),
    "data-shape": _forecast(json_reply({"data": [{"point_time": "wt-BEARER-1-5ecr3t", "value": 1}]})),
    "data-null": _forecast(json_reply({"data": [{"point_time": START.isoformat(), "value": None}]})),
    "data-timeout": _forecast(Reply(raises=httpx.ReadTimeout("timed out"))),
    "data-connect": _forecast(Reply(raises=httpx.ConnectError("refused"))),
}


def secrets_of(fake: FakeWattTime) -> list[str]:
    return [PASSWORD, BASIC, *fake.issued, "wt-BEARER-"]


def error_texts(err: ProviderError) -> list[str]:
    return [str(err), repr(err), "".join(traceback.format_exception(err))]


@pytest.mark.parametrize("setup", SECRET_SCENARIOS.values(), ids=SECRET_SCENARIOS.keys())
def test_credentials_never_leak(
    fake: FakeWattTime, make_provider: ProviderFactory, caplog: pytest.LogCaptureFixture, setup: Setup
) -> None:
    caplog.set_level(logging.DEBUG)
    provider = make_provider()
    provider.fetch(US_WEST)  # hold a token, so the data scenarios exercise the bearer path
    fake.expire_tokens()  # and make the next fetch re-login through the 401 path
    setup(fake)
    err = fetch_error(provider)
    for secret in secrets_of(fake):
        for text in [*error_texts(err), caplog.text, repr(provider)]:
            assert secret not in text


def test_credentials_never_leak_on_real_timeout_or_refusal(
    slow_server: SlowServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for base_url in (slow_server.base_url, f"http://127.0.0.1:{closed_port()}"):
        provider = real_provider(base_url)
        try:
            err = fetch_error(provider)
        finally:
            provider.close()
        for text in [*error_texts(err), repr(provider)]:
            assert PASSWORD not in text
            assert BASIC not in text
            assert "wt-BEARER-real" not in text
    assert PASSWORD not in caplog.text
    assert "wt-BEARER-real" not in caplog.text


# --- hostile sizes and plain HTTP ---------------------------------------------------------------


def test_largest_real_forecast_is_far_below_the_cap(
    make_provider: ProviderFactory, fake: FakeWattTime
) -> None:
    # 72 hours of 5-minute points is the most we ever ask for (MAX_HORIZON_HOURS).
    body = forecast_body([800.0 + i / 7 for i in range(72 * 12)])
    size = len(json.dumps(body).encode())
    assert size < MAX_RESPONSE_BYTES // 32
    fake.forecast_reply = json_reply(body)
    assert len(make_provider(horizon_hours=72).fetch(US_WEST).forecast) == 864


@pytest.mark.parametrize("declare_length", [False, True])
def test_oversized_body_is_refused_without_reading_it_all(declare_length: bool) -> None:
    with flood_server(declare_length=declare_length) as server:
        provider = WattTimeProvider(
            client=httpx.Client(timeout=5.0, trust_env=False),
            username=USERNAME,
            password=PASSWORD,
            region_map=REGION_MAP,
            base_url=server.url,
            allow_insecure_http=True,
        )
        try:
            err = fetch_error(provider)
        finally:
            provider.close()
        assert server.done.wait(5.0)
    assert err.kind is ProviderErrorKind.BAD_RESPONSE
    assert err.message.startswith(f"watttime login: response body exceeds {MAX_RESPONSE_BYTES} bytes")
    # The client hung up early: the server wrote the cap plus what socket buffers held (~5 MiB here).
    assert server.sent_bytes < FLOOD_BYTES // 2


@pytest.mark.parametrize("url", ["http://127.0.0.1:{port}", "Http://127.0.0.1:{port}/"])
def test_plain_http_is_refused_and_credentials_never_sent(url: str) -> None:
    with flood_server(declare_length=False) as server:
        base_url = url.format(port=server.url.rsplit(":", 1)[1])
        with pytest.raises(ProviderError) as info:
            WattTimeProvider(
                client=httpx.Client(trust_env=False),
                username=USERNAME,
                password=PASSWORD,
                region_map=REGION_MAP,
                base_url=base_url,
            )
        env = {"WATTTIME_USERNAME": USERNAME, "WATTTIME_PASSWORD": PASSWORD, "WATTTIME_BASE_URL": base_url}
        with pytest.raises(ProviderError) as from_env:
            watttime_from_env(REGION_MAP, env)
        assert server.paths == []  # no login, so no password in clear
    for err in (info.value, from_env.value):
        assert err.kind is ProviderErrorKind.CONFIG
        assert "WATTTIME_BASE_URL" in err.message
        assert "carbon.watttime.baseUrl" in err.message
        assert "ECOPULSE_ALLOW_INSECURE_PROVIDER_URLS=true" in err.message
        assert PASSWORD not in str(err)


def test_plain_http_with_the_opt_in_works(fake: FakeWattTime) -> None:
    env = {
        "WATTTIME_USERNAME": USERNAME,
        "WATTTIME_PASSWORD": PASSWORD,
        "WATTTIME_BASE_URL": "http://api.watttime.org",
        "ECOPULSE_ALLOW_INSECURE_PROVIDER_URLS": "true",
    }
    provider = watttime_from_env(REGION_MAP, env, client=httpx.Client(transport=httpx.MockTransport(fake)))
    try:
        assert provider.fetch(US_WEST).observed_at == START
    finally:
        provider.close()


# --- builder -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({}, "WATTTIME_USERNAME and WATTTIME_PASSWORD"),
        ({"WATTTIME_USERNAME": USERNAME}, "WATTTIME_PASSWORD"),
        ({"WATTTIME_USERNAME": " ", "WATTTIME_PASSWORD": PASSWORD}, "WATTTIME_USERNAME"),
    ],
)
def test_from_env_without_credentials_is_config(env: dict[str, str], missing: str) -> None:
    with pytest.raises(ProviderError) as info:
        watttime_from_env(REGION_MAP, env)
    assert info.value.kind is ProviderErrorKind.CONFIG
    assert info.value.message == f"watttime: {missing} not set"
    assert PASSWORD not in str(info.value)


def test_from_env_builds_a_working_provider(fake: FakeWattTime) -> None:
    client = httpx.Client(transport=httpx.MockTransport(fake))
    provider = watttime_from_env(
        REGION_MAP, {"WATTTIME_USERNAME": USERNAME, "WATTTIME_PASSWORD": PASSWORD}, client=client
    )
    try:
        assert provider.fetch(US_WEST).observed_at == START
        assert PASSWORD not in repr(provider)
    finally:
        provider.close()
    assert client.is_closed


# --- property: any JSON body yields an observation or a ProviderError ------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
numbers = st.integers(min_value=-(10**6), max_value=10**30) | st.floats()
instants = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).map(
    lambda d: d.isoformat() + "+00:00"
)
login_like = st.fixed_dictionaries({"token": st.text(max_size=16) | json_values})
forecast_like = st.fixed_dictionaries(
    {
        "data": st.lists(
            st.fixed_dictionaries(
                {"point_time": instants | st.text(max_size=20) | json_values, "value": numbers}
            )
            | json_values,
            max_size=4,
        )
        | json_values,
        "meta": st.fixed_dictionaries({"units": st.sampled_from(["lbs_co2_per_mwh", "percentile"])})
        | json_values,
    }
)


def encoded(values: st.SearchStrategy[object]) -> st.SearchStrategy[bytes]:
    return st.builds(lambda v: json.dumps(v).encode(), values) | st.binary(max_size=48)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    login=encoded(json_values | login_like) | st.just(b'{"token": "ok-token"}'),
    forecast=encoded(json_values | forecast_like),
)
def test_any_body_yields_observation_or_bad_response(login: bytes, forecast: bytes) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=login if request.url.path == "/login" else forecast)

    provider = WattTimeProvider(
        client=httpx.Client(transport=httpx.MockTransport(handler)),
        username=USERNAME,
        password=PASSWORD,
        region_map=REGION_MAP,
        base_url=BASE,
        now=lambda: START,
    )
    try:
        observation = provider.fetch(US_WEST)
    except ProviderError as err:
        assert err.kind is ProviderErrorKind.BAD_RESPONSE
        assert PASSWORD not in str(err)
    else:
        assert 0.0 <= observation.carbon_g_per_kwh <= 5000.0
        assert observation.observed_at.tzinfo is not None
        assert observation.forecast[0].carbon_g_per_kwh == observation.carbon_g_per_kwh
    finally:
        provider.close()


def test_concurrent_fetches_share_one_login(fake: FakeWattTime, make_provider: ProviderFactory) -> None:
    provider = make_provider()
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            provider.fetch(US_WEST)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5.0)
    assert errors == []
    assert (fake.logins, fake.forecasts) == (1, 4)


def test_production_builds_the_provider_as_the_env_builder_does() -> None:
    """build_provider (what the apps run) honours WATTTIME_BASE_URL and sends our user agent."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"token": "t"})

    settings = parse_config_text(
        "apiVersion: ecopulse.io/v1alpha1\nkind: EcoPulseConfiguration\n"
        "regions: [{name: us-west1, zone: US-CAL-CISO}]\nbaselineRegion: us-west1\n"
        "carbon: {provider: watttime, watttime: {regions: {us-west1: CAISO_NORTH}}}\n"
    ).carbon
    env = {
        "WATTTIME_USERNAME": USERNAME,
        "WATTTIME_PASSWORD": PASSWORD,
        "WATTTIME_BASE_URL": "https://wt.example",
    }
    provider = build_provider(settings, environ=env, transport=httpx.MockTransport(answer))
    try:
        with pytest.raises(ProviderError):
            provider.fetch(US_WEST)  # the fake only logs in; what matters is where it went and how
    finally:
        provider.close()
    assert seen, "no request"
    assert {r.url.host for r in seen} == {"wt.example"}
    assert all(r.headers["user-agent"] == USER_AGENT for r in seen)
