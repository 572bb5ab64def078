"""ElectricityMapsProvider against a fake Electricity Maps v3 API (MockTransport) and a real slow socket."""

from __future__ import annotations

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
from core.model import CarbonObservation, Region
from core.signals.base import ProviderError, ProviderErrorKind
from core.signals.electricitymaps import ElectricityMapsProvider, electricitymaps_from_env
from core.signals.http import MAX_RESPONSE_BYTES, USER_AGENT
from core.signals.providers import build_provider
from tests.integration.flood_server import FLOOD_BYTES, flood_server

TOKEN = "em-TOKEN-5ecr3t-4f9a1c"
BASE = "https://api.electricitymap.org/v3"
DE = Region(name="europe-west3", zone="DE")

# Real capture (aioelectricitymaps fixture latest_carbon_intensity.json), zone changed to DE.
LATEST_DE = {
    "zone": "DE",
    "carbonIntensity": 216,
    "datetime": "2024-03-06T19:00:00.000Z",
    "updatedAt": "2024-03-06T18:48:27.926Z",
    "createdAt": "2024-03-03T19:47:16.265Z",
    "emissionFactorType": "lifecycle",
    "isEstimated": True,
    "estimationMethod": "TIME_SLICER_AVERAGE",
}
# Shape of the GSF SDK's ForecastedCarbonIntensityData; deliberately out of order.
FORECAST_DE = {
    "zone": "DE",
    "forecast": [
        {"carbonIntensity": 318, "datetime": "2024-03-06T21:00:00.000Z"},
        {"carbonIntensity": 326, "datetime": "2024-03-06T20:00:00.000Z"},
        {"carbonIntensity": 301, "datetime": "2024-03-06T22:00:00.000Z"},
    ],
    "updatedAt": "2024-03-06T19:41:12.000Z",
}


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    raises: Exception | None = None


def json_reply(body: object, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status=status, body=json.dumps(body).encode(), headers=headers or {})


class FakeElectricityMaps:
    """Speaks /v3/carbon-intensity/{latest,forecast}: checks the token header and the query like the API."""

    def __init__(self) -> None:
        self.latest = json_reply(LATEST_DE)
        self.forecast = json_reply(FORECAST_DE)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert request.method == "GET"
        assert request.url.host == "api.electricitymap.org"
        if request.headers.get("auth-token") != TOKEN:
            # The real API answers 401 for an invalid token; echo it to prove we never quote bodies.
            return httpx.Response(401, json={"message": f"Invalid token {request.headers.get('auth-token')}"})
        assert "authorization" not in request.headers
        assert set(request.url.params.keys()) == {"zone", "emissionFactorType"}
        assert request.url.params["emissionFactorType"] in ("lifecycle", "direct")
        if request.url.params["zone"] != "DE":
            return httpx.Response(404, json={"error": "Zone not found"})
        if request.url.path == "/v3/carbon-intensity/latest":
            reply = self.latest
        elif request.url.path == "/v3/carbon-intensity/forecast":
            reply = self.forecast
        else:
            return httpx.Response(404, json={"error": "Not found"})
        if reply.raises is not None:
            raise reply.raises
        return httpx.Response(reply.status, content=reply.body, headers=reply.headers)


ProviderFactory = Callable[..., ElectricityMapsProvider]


@pytest.fixture
def fake() -> FakeElectricityMaps:
    return FakeElectricityMaps()


@pytest.fixture
def make_provider(fake: FakeElectricityMaps) -> Iterator[ProviderFactory]:
    made: list[ElectricityMapsProvider] = []

    def make(
        *, token: str = TOKEN, fetch_forecast: bool = False, emission_factor_type: str = "lifecycle"
    ) -> ElectricityMapsProvider:
        client = httpx.Client(transport=httpx.MockTransport(fake), timeout=1.0)
        provider = ElectricityMapsProvider(
            client=client,
            token=token,
            base_url=BASE,
            fetch_forecast=fetch_forecast,
            emission_factor_type=emission_factor_type,
        )
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.close()


@pytest.fixture
def slow_server() -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 that holds every request longer than the client's timeout."""
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            release.wait(5.0)  # never answers: the client gives up first; teardown releases us

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v3"
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


def real_provider(base_url: str, *, token: str = TOKEN) -> ElectricityMapsProvider:
    client = httpx.Client(timeout=0.15, trust_env=False)  # no proxy from the environment for 127.0.0.1
    # Loopback fakes speak plain HTTP: the opt-in is explicit, as a deployment would have to make it.
    return ElectricityMapsProvider(client=client, token=token, base_url=base_url, allow_insecure_http=True)


def fetch_error(provider: ElectricityMapsProvider, region: Region = DE) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        provider.fetch(region)
    return info.value


# --- success -------------------------------------------------------------------------------------


def test_latest_value_and_request_shape(fake: FakeElectricityMaps, make_provider: ProviderFactory) -> None:
    provider = make_provider()
    observation = provider.fetch(DE)

    assert observation == CarbonObservation(
        carbon_g_per_kwh=216.0, observed_at=datetime(2024, 3, 6, 19, tzinfo=UTC), forecast=()
    )
    assert provider.name == "electricitymaps"
    [request] = fake.requests
    assert str(request.url).startswith(f"{BASE}/carbon-intensity/latest?")
    assert dict(request.url.params) == {"zone": "DE", "emissionFactorType": "lifecycle"}
    assert request.headers["auth-token"] == TOKEN
    assert TOKEN not in str(request.url)


def test_emission_factor_type_is_passed(fake: FakeElectricityMaps, make_provider: ProviderFactory) -> None:
    make_provider(emission_factor_type="direct").fetch(DE)
    assert fake.requests[0].url.params["emissionFactorType"] == "direct"


def test_forecast_points_sorted(fake: FakeElectricityMaps, make_provider: ProviderFactory) -> None:
    observation = make_provider(fetch_forecast=True).fetch(DE)

    assert observation.carbon_g_per_kwh == 216.0
    assert [(p.at.hour, p.carbon_g_per_kwh) for p in observation.forecast] == [
        (20, 326.0),
        (21, 318.0),
        (22, 301.0),
    ]
    assert [r.url.path for r in fake.requests] == [
        "/v3/carbon-intensity/latest",
        "/v3/carbon-intensity/forecast",
    ]
    assert fake.requests[1].url.params["zone"] == "DE"


def test_forecast_null_points_are_skipped(fake: FakeElectricityMaps, make_provider: ProviderFactory) -> None:
    fake.forecast = json_reply(
        {
            "zone": "DE",
            "forecast": [
                {"carbonIntensity": None, "datetime": "2024-03-06T20:00:00Z"},
                {"carbonIntensity": 300.5, "datetime": "2024-03-06T21:00:00+01:00"},
            ],
        }
    )
    observation = make_provider(fetch_forecast=True).fetch(DE)
    assert [(p.at, p.carbon_g_per_kwh) for p in observation.forecast] == [
        (datetime(2024, 3, 6, 20, tzinfo=UTC), 300.5)
    ]


@pytest.mark.parametrize(
    "reply",
    [
        json_reply({"message": "forecast is not in your plan"}, status=403),
        json_reply({}, status=503),
        json_reply({}, status=429, headers={"retry-after": "60"}),
        Reply(body=b"<html>oops</html>"),
        json_reply({"zone": "DE", "forecast": [{"carbonIntensity": -5, "datetime": "2024-03-06T20:00:00Z"}]}),
        json_reply({"zone": "DE", "forecast": "soon"}),
        Reply(raises=httpx.ReadTimeout("timed out")),
        Reply(raises=httpx.ConnectError("connection refused")),
    ],
    ids=["403", "503", "429", "garbage", "negative", "shape", "timeout", "connect"],
)
def test_forecast_failure_keeps_latest(
    fake: FakeElectricityMaps,
    make_provider: ProviderFactory,
    caplog: pytest.LogCaptureFixture,
    reply: Reply,
) -> None:
    fake.forecast = reply
    caplog.set_level(logging.INFO, logger="core.signals.electricitymaps")

    observation = make_provider(fetch_forecast=True).fetch(DE)

    assert observation.carbon_g_per_kwh == 216.0
    assert observation.forecast == ()
    assert "electricitymaps zone DE forecast" in caplog.text


def test_forecast_not_asked_when_latest_fails(
    fake: FakeElectricityMaps, make_provider: ProviderFactory
) -> None:
    fake.latest = json_reply({}, status=500)
    assert fetch_error(make_provider(fetch_forecast=True)).kind is ProviderErrorKind.UNAVAILABLE
    assert len(fake.requests) == 1


@pytest.mark.parametrize("value", [0, 5000, 12.75])
def test_range_boundaries_accepted(
    fake: FakeElectricityMaps, make_provider: ProviderFactory, value: float
) -> None:
    fake.latest = json_reply({**LATEST_DE, "carbonIntensity": value})
    assert make_provider().fetch(DE).carbon_g_per_kwh == value


def test_zone_case_is_not_significant(fake: FakeElectricityMaps, make_provider: ProviderFactory) -> None:
    fake.latest = json_reply({**LATEST_DE, "zone": "de"})
    assert make_provider().fetch(DE).carbon_g_per_kwh == 216.0


# --- HTTP errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, ProviderErrorKind.AUTH),
        (403, ProviderErrorKind.AUTH),
        (404, ProviderErrorKind.NOT_FOUND),
        (500, ProviderErrorKind.UNAVAILABLE),
        (502, ProviderErrorKind.UNAVAILABLE),
        (503, ProviderErrorKind.UNAVAILABLE),
        (400, ProviderErrorKind.CONFIG),
        (301, ProviderErrorKind.CONFIG),
    ],
)
def test_status_classification(
    fake: FakeElectricityMaps, make_provider: ProviderFactory, status: int, kind: ProviderErrorKind
) -> None:
    fake.latest = json_reply({"error": "nope", "token": TOKEN}, status=status)
    err = fetch_error(make_provider())
    assert err.kind is kind
    assert err.message.startswith(f"electricitymaps zone DE: HTTP {status}")


def test_invalid_token_is_auth(make_provider: ProviderFactory) -> None:
    err = fetch_error(make_provider(token="wrong-token"))
    assert err.kind is ProviderErrorKind.AUTH
    assert str(err) == "auth: electricitymaps zone DE: HTTP 401"


def test_unknown_zone_is_not_found(make_provider: ProviderFactory) -> None:
    err = fetch_error(make_provider(), Region(name="mars-1", zone="XX-MARS"))
    assert err.kind is ProviderErrorKind.NOT_FOUND
    assert err.message == "electricitymaps zone XX-MARS: HTTP 404"


def test_region_without_zone_is_config(fake: FakeElectricityMaps, make_provider: ProviderFactory) -> None:
    err = fetch_error(make_provider(), Region(name="nowhere", zone=""))
    assert err.kind is ProviderErrorKind.CONFIG
    assert fake.requests == []


def test_429_retry_after_seconds(fake: FakeElectricityMaps, make_provider: ProviderFactory) -> None:
    fake.latest = json_reply({"error": "Too many requests"}, status=429, headers={"Retry-After": "120"})
    err = fetch_error(make_provider())
    assert err.kind is ProviderErrorKind.RATE_LIMITED
    assert err.retry_after_seconds == 120.0
    assert err.message == "electricitymaps zone DE: HTTP 429"


def test_429_retry_after_http_date(fake: FakeElectricityMaps, make_provider: ProviderFactory) -> None:
    when = datetime.now(UTC) + timedelta(seconds=120)
    fake.latest = json_reply({}, status=429, headers={"Retry-After": format_datetime(when, usegmt=True)})
    err = fetch_error(make_provider())
    assert err.kind is ProviderErrorKind.RATE_LIMITED
    assert err.retry_after_seconds is not None
    assert 110.0 <= err.retry_after_seconds <= 121.0


@pytest.mark.parametrize("header", ["Wed, 21 Oct 2015 07:28:00 GMT"])
def test_429_retry_after_in_the_past_is_zero(
    fake: FakeElectricityMaps, make_provider: ProviderFactory, header: str
) -> None:
    fake.latest = json_reply({}, status=429, headers={"Retry-After": header})
    assert fetch_error(make_provider()).retry_after_seconds == 0.0


@pytest.mark.parametrize(
    "headers", [{}, {"Retry-After": "soon"}, {"Retry-After": "-3"}, {"Retry-After": "nan"}]
)
def test_429_without_usable_retry_after(
    fake: FakeElectricityMaps, make_provider: ProviderFactory, headers: dict[str, str]
) -> None:
    fake.latest = json_reply({}, status=429, headers=headers)
    err = fetch_error(make_provider())
    assert err.kind is ProviderErrorKind.RATE_LIMITED
    assert err.retry_after_seconds is None


# --- transport errors (real sockets) -------------------------------------------------------------


def test_timeout_against_a_real_slow_server(slow_server: str) -> None:
    provider = real_provider(slow_server)
    try:
        started = time.monotonic()
        err = fetch_error(provider)
        elapsed = time.monotonic() - started
    finally:
        provider.close()
    assert err.kind is ProviderErrorKind.TIMEOUT
    assert err.message == "electricitymaps zone DE: timed out (ReadTimeout)"
    assert elapsed < 2.0


def test_connection_refused_is_unavailable() -> None:
    provider = real_provider(f"http://127.0.0.1:{closed_port()}/v3")
    try:
        err = fetch_error(provider)
    finally:
        provider.close()
    assert err.kind is ProviderErrorKind.UNAVAILABLE
    assert err.message.startswith("electricitymaps zone DE: connection failed (ConnectError: ")
    assert "refused" in err.message.lower()


# --- bodies we cannot read -----------------------------------------------------------------------

BAD_LATEST_BODIES: dict[str, bytes] = {
    "html": b"<html><body>502 Bad Gateway</body></html>",
    "empty": b"",
    "not-utf8": b"\xff\xfe\x00garbage",
    "truncated": b'{"zone": "DE", "carbonIntensity": 2',
    "deep-nesting": b"[" * 100_000 + b"]" * 100_000,
    "list": json.dumps([LATEST_DE]).encode(),
    "string": b'"216"',
    "no-data": json.dumps({"status": "no-data", "countryCode": "DE", "data": {}}).encode(),
    "null": json.dumps({**LATEST_DE, "carbonIntensity": None}).encode(),
    "missing": json.dumps({k: v for k, v in LATEST_DE.items() if k != "carbonIntensity"}).encode(),
    "negative": json.dumps({**LATEST_DE, "carbonIntensity": -1}).encode(),
    "absurd": json.dumps({**LATEST_DE, "carbonIntensity": 5000.5}).encode(),
    "nan": json.dumps({**LATEST_DE, "carbonIntensity": float("nan")}).encode(),
    "infinity": json.dumps({**LATEST_DE, "carbonIntensity": float("inf")}).encode(),
    "overflow-float": json.dumps(LATEST_DE)
    .replace('"carbonIntensity": 216', '"carbonIntensity": 1e999')
    .encode(),
    "huge-int": json.dumps({**LATEST_DE, "carbonIntensity": 10**400}).encode(),
    "number-as-string": json.dumps({**LATEST_DE, "carbonIntensity": "216"}).encode(),
    "bool": json.dumps({**LATEST_DE, "carbonIntensity": True}).encode(),
    "bad-datetime": json.dumps({**LATEST_DE, "datetime": "yesterday-ish"}).encode(),
    "missing-datetime": json.dumps({k: v for k, v in LATEST_DE.items() if k != "datetime"}).encode(),
    "datetime-number": json.dumps({**LATEST_DE, "datetime": 1709751600}).encode(),
    "other-zone": json.dumps({**LATEST_DE, "zone": "FR"}).encode(),
}


@pytest.mark.parametrize("body", BAD_LATEST_BODIES.values(), ids=BAD_LATEST_BODIES.keys())
def test_unreadable_body_is_bad_response(
    fake: FakeElectricityMaps, make_provider: ProviderFactory, body: bytes
) -> None:
    fake.latest = Reply(body=body)
    err = fetch_error(make_provider())
    assert err.kind is ProviderErrorKind.BAD_RESPONSE
    assert err.message.startswith("electricitymaps zone DE: ")
    assert len(err.message) < 100


# --- secrets -------------------------------------------------------------------------------------

SECRET_SCENARIOS: dict[str, Reply] = {
    "401": json_reply({"message": f"invalid token {TOKEN}"}, status=401),
    "403": json_reply({"message": f"token {TOKEN} lacks access"}, status=403),
    "404": json_reply({"message": TOKEN}, status=404),
    "429": json_reply({"token": TOKEN}, status=429, headers={"retry-after": "7", "x-echo": TOKEN}),
    "500": Reply(status=500, body=TOKEN.encode()),
    "503": Reply(status=503, body=TOKEN.encode(), headers={"retry-after": "soon"}),
    "garbage": Reply(body=f"<html>{TOKEN}</html>".encode()),
    "shape": json_reply([TOKEN]),
    "null": json_reply({**LATEST_DE, "carbonIntensity": None, "auth": TOKEN}),
    "bad-datetime": json_reply({**LATEST_DE, "datetime": TOKEN}),
    "mock-timeout": Reply(raises=httpx.ReadTimeout("timed out")),
    "mock-connect": Reply(raises=httpx.ConnectError("refused")),
}


def assert_secret_absent(secret: str, *texts: str) -> None:
    for text in texts:
        assert secret not in text


def error_texts(err: ProviderError) -> tuple[str, str, str]:
    return str(err), repr(err), "".join(traceback.format_exception(err))


@pytest.mark.parametrize("reply", SECRET_SCENARIOS.values(), ids=SECRET_SCENARIOS.keys())
def test_token_never_leaks(
    fake: FakeElectricityMaps, make_provider: ProviderFactory, caplog: pytest.LogCaptureFixture, reply: Reply
) -> None:
    caplog.set_level(logging.DEBUG)
    provider = make_provider(fetch_forecast=True)
    fake.forecast = reply  # a forecast failure is logged, not raised: check the log
    provider.fetch(DE)
    fake.latest = reply
    err = fetch_error(provider)
    assert_secret_absent(TOKEN, *error_texts(err), caplog.text, repr(provider))


def test_token_never_leaks_on_real_timeout_or_refusal(
    slow_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for base_url in (slow_server, f"http://127.0.0.1:{closed_port()}/v3"):
        provider = real_provider(base_url)
        try:
            err = fetch_error(provider)
        finally:
            provider.close()
        assert_secret_absent(TOKEN, *error_texts(err), repr(provider))
    assert_secret_absent(TOKEN, caplog.text)


# --- hostile sizes and plain HTTP ---------------------------------------------------------------


@pytest.mark.parametrize("declare_length", [False, True])
def test_oversized_body_is_refused_without_reading_it_all(declare_length: bool) -> None:
    with flood_server(declare_length=declare_length) as server:
        client = httpx.Client(timeout=5.0, trust_env=False)
        provider = ElectricityMapsProvider(
            client=client, token=TOKEN, base_url=f"{server.url}/v3", allow_insecure_http=True
        )
        try:
            err = fetch_error(provider)
        finally:
            provider.close()
        assert server.done.wait(5.0)
    assert err.kind is ProviderErrorKind.BAD_RESPONSE
    assert err.message.startswith("electricitymaps zone DE: response body exceeds")
    assert f"{MAX_RESPONSE_BYTES} bytes" in err.message
    # The client hung up early: the server wrote the cap plus what socket buffers held (~5 MiB here).
    assert server.sent_bytes < FLOOD_BYTES // 2


def test_declared_oversized_body_is_refused_before_reading() -> None:
    read_chunks: list[bytes] = []

    def body() -> Iterator[bytes]:
        for _ in range(1000):
            chunk = b" " * 65536
            read_chunks.append(chunk)
            yield chunk

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-length": str(10**9)}, content=body())

    provider = ElectricityMapsProvider(
        client=httpx.Client(transport=httpx.MockTransport(handler)), token=TOKEN, base_url=BASE
    )
    try:
        err = fetch_error(provider)
    finally:
        provider.close()
    assert err.kind is ProviderErrorKind.BAD_RESPONSE
    assert err.message == (
        f"electricitymaps zone DE: response body exceeds {MAX_RESPONSE_BYTES} bytes (Content-Length 1000000000)"
    )
    assert read_chunks == []


def test_body_at_the_cap_is_read(make_provider: ProviderFactory, fake: FakeElectricityMaps) -> None:
    padded = json.dumps(LATEST_DE).encode()
    fake.latest = Reply(body=padded + b" " * (MAX_RESPONSE_BYTES - len(padded)))
    assert make_provider().fetch(DE).carbon_g_per_kwh == 216.0


@pytest.mark.parametrize("url", ["http://127.0.0.1:{port}/v3", "HTTP://127.0.0.1:{port}/v3"])
def test_plain_http_is_refused_and_the_token_never_sent(url: str) -> None:
    with flood_server(declare_length=False) as server:
        base_url = url.format(port=server.url.rsplit(":", 1)[1])
        with pytest.raises(ProviderError) as info:
            ElectricityMapsProvider(client=httpx.Client(trust_env=False), token=TOKEN, base_url=base_url)
        with pytest.raises(ProviderError) as from_env:
            electricitymaps_from_env(
                {"ELECTRICITYMAPS_API_TOKEN": TOKEN, "ELECTRICITYMAPS_BASE_URL": base_url}
            )
        assert server.paths == []  # nothing, least of all the token, went over the wire
    for err in (info.value, from_env.value):
        assert err.kind is ProviderErrorKind.CONFIG
        assert "ELECTRICITYMAPS_BASE_URL" in err.message
        assert "carbon.electricitymaps.baseUrl" in err.message
        assert "ECOPULSE_ALLOW_INSECURE_PROVIDER_URLS=true" in err.message
        assert_secret_absent(TOKEN, *error_texts(err))


def test_plain_http_with_the_opt_in_works(fake: FakeElectricityMaps) -> None:
    env = {
        "ELECTRICITYMAPS_API_TOKEN": TOKEN,
        "ELECTRICITYMAPS_BASE_URL": "http://api.electricitymap.org/v3",
        "ECOPULSE_ALLOW_INSECURE_PROVIDER_URLS": "true",
    }
    provider = electricitymaps_from_env(env, client=httpx.Client(transport=httpx.MockTransport(fake)))
    try:
        assert provider.fetch(DE).carbon_g_per_kwh == 216.0
        assert fake.requests[0].url.scheme == "http"
    finally:
        provider.close()


@pytest.mark.parametrize("value", ["yes", "1", "on", "ture"])
def test_unreadable_opt_in_is_config(value: str) -> None:
    env = {"ELECTRICITYMAPS_API_TOKEN": TOKEN, "ECOPULSE_ALLOW_INSECURE_PROVIDER_URLS": value}
    with pytest.raises(ProviderError) as info:
        electricitymaps_from_env(env)
    assert info.value.kind is ProviderErrorKind.CONFIG
    assert "ECOPULSE_ALLOW_INSECURE_PROVIDER_URLS" in info.value.message


# --- builder -------------------------------------------------------------------------------------


@pytest.mark.parametrize("env", [{}, {"ELECTRICITYMAPS_API_TOKEN": "   "}])
def test_from_env_without_token_is_config(env: dict[str, str]) -> None:
    with pytest.raises(ProviderError) as info:
        electricitymaps_from_env(env)
    assert info.value.kind is ProviderErrorKind.CONFIG
    assert "ELECTRICITYMAPS_API_TOKEN" in info.value.message


def test_from_env_builds_a_working_provider(fake: FakeElectricityMaps) -> None:
    client = httpx.Client(transport=httpx.MockTransport(fake))
    provider = electricitymaps_from_env({"ELECTRICITYMAPS_API_TOKEN": f" {TOKEN} "}, client=client)
    try:
        assert provider.fetch(DE).carbon_g_per_kwh == 216.0
        assert TOKEN not in repr(provider)
    finally:
        provider.close()
    assert client.is_closed


def test_from_env_default_client_and_base_url() -> None:
    provider = electricitymaps_from_env(
        {
            "ELECTRICITYMAPS_API_TOKEN": TOKEN,
            "ELECTRICITYMAPS_BASE_URL": "https://api.electricitymaps.com/v3/",
        }
    )
    try:
        assert "https://api.electricitymaps.com/v3'" in repr(provider)
    finally:
        provider.close()


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
    lambda d: d.isoformat() + "Z"
)
latest_like = st.fixed_dictionaries(
    {
        "zone": st.sampled_from(["DE", "de", "FR"]) | json_values,
        "carbonIntensity": numbers | json_values,
        "datetime": instants | st.text(max_size=30) | json_values,
    }
)
forecast_like = st.fixed_dictionaries(
    {
        "forecast": st.lists(
            st.fixed_dictionaries(
                {"carbonIntensity": numbers | json_values, "datetime": instants | json_values}
            )
            | json_values,
            max_size=4,
        )
        | json_values
    }
)
bodies = st.builds(lambda v: json.dumps(v).encode(), json_values | latest_like | forecast_like) | st.binary(
    max_size=64
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(latest=bodies, forecast=bodies)
def test_any_body_yields_observation_or_bad_response(latest: bytes, forecast: bytes) -> None:
    fake = FakeElectricityMaps()
    fake.latest = Reply(body=latest)
    fake.forecast = Reply(body=forecast)
    provider = ElectricityMapsProvider(
        client=httpx.Client(transport=httpx.MockTransport(fake)),
        token=TOKEN,
        base_url=BASE,
        fetch_forecast=True,
    )
    try:
        observation = provider.fetch(DE)
    except ProviderError as err:
        assert err.kind is ProviderErrorKind.BAD_RESPONSE
        assert TOKEN not in str(err)
    else:
        assert 0.0 <= observation.carbon_g_per_kwh <= 5000.0
        assert observation.observed_at.tzinfo is not None
        assert all(0.0 <= p.carbon_g_per_kwh <= 5000.0 for p in observation.forecast)
    finally:
        provider.close()


def test_token_that_cannot_be_a_header_is_config(
    fake: FakeElectricityMaps, make_provider: ProviderFactory
) -> None:
    secret = "t\u00f6ken-5ecr3t"
    err = fetch_error(make_provider(token=secret))
    assert err.kind is ProviderErrorKind.CONFIG
    assert fake.requests == []
    for text in error_texts(err):
        assert secret not in text
        assert "5ecr3t" not in text


def test_production_builds_the_provider_as_the_env_builder_does() -> None:
    """build_provider (what the apps run) honours ELECTRICITYMAPS_BASE_URL and sends our user agent,
    as electricitymaps_from_env always did."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=LATEST_DE)

    settings = parse_config_text(
        "apiVersion: ecopulse.io/v1alpha1\nkind: EcoPulseConfiguration\n"
        "regions: [{name: europe-west3, zone: DE}]\nbaselineRegion: europe-west3\n"
        "carbon: {provider: electricitymaps}\n"
    ).carbon
    env = {"ELECTRICITYMAPS_API_TOKEN": TOKEN, "ELECTRICITYMAPS_BASE_URL": "https://em.example/v3"}
    provider = build_provider(settings, environ=env, transport=httpx.MockTransport(answer))
    try:
        assert provider.fetch(DE).carbon_g_per_kwh == 216.0
    finally:
        provider.close()
    (request,) = seen
    assert (request.url.host, request.url.path) == ("em.example", "/v3/carbon-intensity/latest")
    assert request.headers["user-agent"] == USER_AGENT
