"""The signal cache and refresher, driven by a fake clock and a fake Electricity Maps server."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from core.config import CarbonSettings, EcoPulseConfiguration, parse_config_text
from core.model import Region
from core.signals.base import CarbonProvider, ProviderError, ProviderErrorKind
from core.signals.providers import MockProvider, StaticProvider, build_provider
from core.signals.refresher import SignalCache, SignalRefresher

START = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@dataclass
class FakeClock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class FakeElectricityMaps:
    """Speaks carbon-intensity/latest; ``status`` and ``retry_after`` script its next answers."""

    values: dict[str, float]
    status: int = 200
    retry_after: str | None = None
    requests: list[str] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        zone = request.url.params["zone"]
        self.requests.append(zone)
        assert request.headers["auth-token"] == "secret-token"
        if self.status != 200:
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            return httpx.Response(self.status, headers=headers, json={"message": "no"})
        return httpx.Response(
            200,
            json={
                "zone": zone,
                "carbonIntensity": self.values[zone],
                "datetime": "2026-11-20T12:00:00.000Z",
                "updatedAt": "2026-11-20T11:48:27.926Z",
                "emissionFactorType": "lifecycle",
                "isEstimated": True,
            },
        )


CONFIG = """\
apiVersion: ecopulse.io/v1alpha1
kind: EcoPulseConfiguration
regions:
  - {name: us-east-1, zone: US-MIDA-PJM}
  - {name: eu-north-1, zone: SE-SE3}
baselineRegion: us-east-1
carbon:
  provider: electricitymaps
  refreshSeconds: 300
  maxStaleSeconds: 900
"""


def em_refresher(
    server: FakeElectricityMaps, clock: FakeClock, config: EcoPulseConfiguration | None = None
) -> SignalRefresher:
    def factory(settings: CarbonSettings) -> CarbonProvider:
        return build_provider(
            settings,
            environ={"ELECTRICITYMAPS_API_TOKEN": "secret-token"},
            transport=httpx.MockTransport(server),
            clock=clock,
        )

    return SignalRefresher(
        config=config or parse_config_text(CONFIG), cache=SignalCache(), clock=clock, provider_factory=factory
    )


def test_fetches_every_region_and_serves_from_the_cache() -> None:
    server = FakeElectricityMaps({"US-MIDA-PJM": 420, "SE-SE3": 25})
    clock = FakeClock()
    refresher = em_refresher(server, clock)
    report = refresher.refresh_once()
    assert report.fetched == ["us-east-1", "eu-north-1"]
    snapshot = refresher.snapshot()
    assert snapshot.provider == "electricitymaps"
    assert snapshot.carbon["eu-north-1"].carbon_g_per_kwh == 25
    assert snapshot.carbon["eu-north-1"].observed_at == datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    # Reading never calls the provider.
    calls = len(server.requests)
    for _ in range(10):
        refresher.snapshot()
    assert len(server.requests) == calls


def test_last_good_value_is_served_stale_until_max_stale_then_unknown() -> None:
    server = FakeElectricityMaps({"US-MIDA-PJM": 420, "SE-SE3": 25})
    clock = FakeClock()
    refresher = em_refresher(server, clock)
    refresher.refresh_once()
    server.status = 503
    clock.advance(600)
    report = refresher.refresh_once()
    assert set(report.failed) == {"us-east-1", "eu-north-1"}
    assert refresher.snapshot().carbon["eu-north-1"].carbon_g_per_kwh == 25  # stale but within 900 s
    clock.advance(300)
    assert refresher.snapshot().carbon["eu-north-1"].age_seconds(clock.now) == 900
    assert "eu-north-1" in refresher.snapshot().carbon
    clock.advance(1)
    assert refresher.snapshot().carbon == {}  # unknown: do nothing


@pytest.mark.parametrize(("retry_after", "expected_seconds"), [("1200", 1200.0), (None, 300.0), ("5", 300.0)])
def test_a_429_backs_off_and_stops_the_round(retry_after: str | None, expected_seconds: float) -> None:
    server = FakeElectricityMaps({"US-MIDA-PJM": 420, "SE-SE3": 25}, status=429, retry_after=retry_after)
    clock = FakeClock()
    refresher = em_refresher(server, clock)
    refresher.refresh_once()
    assert server.requests == ["US-MIDA-PJM"]  # the second region was not asked: it would be refused too
    assert refresher.backoff_until == START + timedelta(seconds=expected_seconds)
    clock.advance(expected_seconds - 1)
    assert refresher.refresh_once().skipped_backoff
    assert len(server.requests) == 1
    server.status = 200
    clock.advance(1)
    assert refresher.refresh_once().fetched == ["us-east-1", "eu-north-1"]


def test_repeated_rate_limits_back_off_exponentially_up_to_an_hour() -> None:
    server = FakeElectricityMaps({"US-MIDA-PJM": 420, "SE-SE3": 25}, status=429)
    clock = FakeClock()
    refresher = em_refresher(server, clock)
    waits = []
    for _ in range(6):
        refresher.refresh_once()
        assert refresher.backoff_until is not None
        waits.append((refresher.backoff_until - clock.now).total_seconds())
        clock.now = refresher.backoff_until
    assert waits == [300, 600, 1200, 2400, 3600, 3600]


def test_bad_credentials_back_off_too() -> None:
    server = FakeElectricityMaps({"US-MIDA-PJM": 420, "SE-SE3": 25}, status=401)
    clock = FakeClock()
    refresher = em_refresher(server, clock)
    report = refresher.refresh_once()
    assert "auth" in report.failed["us-east-1"]
    assert refresher.backoff_until is not None


def test_missing_token_is_reported_per_region_and_nothing_is_fresh() -> None:
    clock = FakeClock()
    refresher = SignalRefresher(
        config=parse_config_text(CONFIG),
        cache=SignalCache(),
        clock=clock,
        provider_factory=lambda settings: build_provider(settings, environ={}),
    )
    report = refresher.refresh_once()
    assert "ELECTRICITYMAPS_API_TOKEN" in report.failed["us-east-1"]
    assert refresher.snapshot().carbon == {}


def test_config_change_rebuilds_the_provider_and_forgets_old_values() -> None:
    mock = CONFIG.replace(
        "provider: electricitymaps", "provider: mock\n  mock: {us-east-1: 400, eu-north-1: 20}"
    )
    clock = FakeClock()
    refresher = SignalRefresher(config=parse_config_text(mock), cache=SignalCache(), clock=clock)
    refresher.refresh_once()
    assert refresher.snapshot().carbon["us-east-1"].carbon_g_per_kwh == 400
    refresher.update_config(parse_config_text(mock.replace("us-east-1: 400", "us-east-1: 10")))
    assert refresher.snapshot().carbon == {}  # nothing from the old grid lingers
    refresher.refresh_once()
    assert refresher.snapshot().carbon["us-east-1"].carbon_g_per_kwh == 10


def test_a_provider_bug_is_contained() -> None:
    class Broken:
        name = "broken"

        def fetch(self, region: object) -> object:
            raise ZeroDivisionError

        def close(self) -> None:
            return None

    clock = FakeClock()
    factory: Callable[[CarbonSettings], CarbonProvider] = lambda _: Broken()  # type: ignore[assignment,return-value]  # noqa: E731
    refresher = SignalRefresher(
        config=parse_config_text(CONFIG), cache=SignalCache(), clock=clock, provider_factory=factory
    )
    report = refresher.refresh_once()
    assert report.failed == {
        "us-east-1": "internal: ZeroDivisionError",
        "eu-north-1": "internal: ZeroDivisionError",
    }


def test_static_provider_reads_the_bundled_annual_means() -> None:
    provider = StaticProvider(clock=FakeClock())
    config = parse_config_text(CONFIG)
    assert provider.fetch(config.regions[1]).carbon_g_per_kwh == pytest.approx(23.43, abs=0.01)


def test_mock_provider_serves_the_forced_grid() -> None:
    provider = MockProvider({"us-east-1": 450.0}, clock=FakeClock())
    config = parse_config_text(CONFIG)
    assert provider.fetch(config.regions[0]).carbon_g_per_kwh == 450.0


@pytest.mark.parametrize(
    ("provider", "known", "unknown", "message"),
    [
        # mock is keyed by the region's name, static by its grid zone: the other name never matches
        (
            MockProvider({"us-east-1": 450.0}, clock=FakeClock()),
            Region(name="us-east-1", zone="DE"),
            Region(name="DE", zone="us-east-1"),
            "mock: no value for region DE",
        ),
        (
            StaticProvider({"DE": 380.0}, clock=FakeClock()),
            Region(name="eu-central-1", zone="DE"),
            Region(name="DE", zone="XX"),
            "static: no annual mean for zone XX",
        ),
    ],
)
def test_table_providers_name_what_they_lack(
    provider: MockProvider | StaticProvider, known: Region, unknown: Region, message: str
) -> None:
    observation = provider.fetch(known)
    assert observation.observed_at == START
    assert observation.forecast == ()
    with pytest.raises(ProviderError) as caught:
        provider.fetch(unknown)
    assert caught.value.kind is ProviderErrorKind.NOT_FOUND
    assert caught.value.message == message
    assert provider.name == message.partition(":")[0]
    provider.close()
