"""The price signal: the split rule, what a fetched price must pass, precedence, the refresher's
cache and fallback, driven by a fake clock against a local Azure Retail Prices server."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from core.catalog import load_price_table
from core.config import (
    ConfigError,
    EcoPulseConfiguration,
    PriceProviderName,
    PricingSettings,
    parse_config_text,
)
from core.model import PriceRates
from core.signals.base import ProviderError, ProviderErrorKind
from core.signals.prices.base import PriceProvider, RegionPrices, ResourcePrices
from core.signals.prices.providers import build_price_provider
from core.signals.prices.refresher import (
    FALLBACK_SOURCE,
    CachedPrices,
    PriceMetricsCollector,
    PriceRefresher,
    Refusal,
    judge,
    quote_for,
)
from core.signals.prices.split import VCPU_TO_GIB_PRICE_RATIO, load_vm_shapes, split_vm_price
from tests.price_servers import AzurePrices, Scripted, azure_prices
from tests.unit.test_refresher import START, FakeClock

VM = "Standard_D2s_v5"


def prices(
    vcpu: float, gib: float, spot_vcpu: float | None = None, spot_gib: float | None = None
) -> RegionPrices:
    spot = ResourcePrices(vcpu_hour_usd=spot_vcpu, gib_hour_usd=spot_gib) if spot_vcpu and spot_gib else None
    return RegionPrices(on_demand=ResourcePrices(vcpu_hour_usd=vcpu, gib_hour_usd=gib), spot=spot)


# --- the split rule ------------------------------------------------------------------------------


@given(
    price=st.floats(min_value=0.001, max_value=100.0),
    vcpus=st.integers(min_value=1, max_value=512),
    memory=st.floats(min_value=0.5, max_value=4096.0),
)
def test_the_split_adds_back_up_to_the_vm_price_at_the_bundled_ratio(
    price: float, vcpus: int, memory: float
) -> None:
    part = split_vm_price(price, vcpus=vcpus, memory_gib=memory)
    assert math.isclose(vcpus * part.vcpu_hour_usd + memory * part.gib_hour_usd, price, rel_tol=1e-9)
    assert math.isclose(part.vcpu_hour_usd / part.gib_hour_usd, VCPU_TO_GIB_PRICE_RATIO, rel_tol=1e-9)


def test_the_split_reproduces_the_bundled_table() -> None:
    # AWS m5.large in us-east-1 is $0.096/h (core/data/SOURCES.md): the bundled figures are its split.
    bundled = load_price_table()["us-east-1"]
    part = split_vm_price(0.096, vcpus=2, memory_gib=8)
    assert part.vcpu_hour_usd == pytest.approx(bundled.vcpu_hour_usd, rel=1e-5)
    assert part.gib_hour_usd == pytest.approx(bundled.gib_hour_usd, rel=1e-5)


def test_every_default_reference_vm_has_a_bundled_shape() -> None:
    settings = PricingSettings()
    shapes = load_vm_shapes()
    assert ("azure", settings.azure.reference_vm) in shapes
    assert ("aws", settings.aws.reference_vm) in shapes
    assert shapes[("azure", "Standard_D2s_v5")] == (2.0, 8.0)


# --- what a fetched price must pass --------------------------------------------------------------

GOOD = prices(0.04, 0.005, 0.015, 0.002)


@pytest.mark.parametrize(
    ("new", "last", "expected"),
    [
        (GOOD, None, None),
        (GOOD, GOOD, None),
        (prices(0.04, 0.005), GOOD, None),  # no spot this time: on-demand still judged
        (prices(math.nan, 0.005), None, Refusal.NOT_FINITE_POSITIVE),
        (prices(math.inf, 0.005), None, Refusal.NOT_FINITE_POSITIVE),
        (prices(0.04, 0.0), None, Refusal.NOT_FINITE_POSITIVE),
        (prices(0.04, -0.005), None, Refusal.NOT_FINITE_POSITIVE),
        (
            RegionPrices(on_demand=GOOD.on_demand, spot=ResourcePrices(vcpu_hour_usd=-1, gib_hour_usd=1)),
            None,
            Refusal.NOT_FINITE_POSITIVE,
        ),
        (prices(0.04, 0.005, 0.04, 0.002), None, Refusal.SPOT_NOT_BELOW_ON_DEMAND),
        (prices(0.04, 0.005, 0.015, 0.006), None, Refusal.SPOT_NOT_BELOW_ON_DEMAND),
        (prices(0.04 * 3, 0.005 * 3, 0.015, 0.002), GOOD, None),  # exactly the factor: allowed
        (prices(0.04 * 3.01, 0.005, 0.015, 0.002), GOOD, Refusal.CHANGED_TOO_MUCH),
        (prices(0.04 / 3.01, 0.005, 0.0001, 0.0001), GOOD, Refusal.CHANGED_TOO_MUCH),
        (prices(0.04, 0.005, 0.015 / 4, 0.002), GOOD, Refusal.CHANGED_TOO_MUCH),  # spot moved too much
    ],
)
def test_judge(new: RegionPrices, last: RegionPrices | None, expected: Refusal | None) -> None:
    assert judge(new, last, max_change_factor=3.0) == expected


# --- precedence ----------------------------------------------------------------------------------

BUNDLED = PriceRates(
    vcpu_hour_usd=1, gib_hour_usd=0.1, spot_vcpu_hour_usd=0.3, spot_gib_hour_usd=0.03, source="x"
)


def test_an_operators_entry_wins_over_a_fresh_live_price() -> None:
    configured = PriceRates(
        vcpu_hour_usd=9, gib_hour_usd=0.9, spot_vcpu_hour_usd=3, spot_gib_hour_usd=0.3, source="config"
    )
    cached = CachedPrices(prices=GOOD, fetched_at=START, source="azure")
    settings = PricingSettings(provider=PriceProviderName.AZURE)
    quote = quote_for("r", configured=configured, cached=cached, now=START, settings=settings)
    assert (quote.source, quote.rates.vcpu_hour_usd, quote.fetched_at) == ("config", 9, None)


def test_live_while_fresh_then_the_bundled_table() -> None:
    settings = PricingSettings(provider=PriceProviderName.AZURE, refresh_seconds=60, max_stale_seconds=600)
    cached = CachedPrices(prices=prices(0.04, 0.005), fetched_at=START, source="azure")
    fresh = quote_for(
        "r", configured=BUNDLED, cached=cached, now=START + timedelta(seconds=600), settings=settings
    )
    assert (fresh.source, fresh.rates.vcpu_hour_usd, fresh.age_seconds(START + timedelta(seconds=600))) == (
        "azure",
        0.04,
        600,
    )
    # No spot from the provider: spot stays the bundled one, and says so.
    assert (fresh.spot_source, fresh.rates.spot_vcpu_hour_usd) == ("static", 0.3)
    stale = quote_for(
        "r", configured=BUNDLED, cached=cached, now=START + timedelta(seconds=601), settings=settings
    )
    assert (stale.source, stale.rates) == (FALLBACK_SOURCE, BUNDLED)


# --- configuration -------------------------------------------------------------------------------

AZURE_CONFIG = """\
apiVersion: ecopulse.io/v1alpha1
kind: EcoPulseConfiguration
regions:
  - {name: eastus}
  - {name: westeurope}
  - {name: de-frankfurt, zone: DE}
baselineRegion: eastus
prices:
  de-frankfurt: {vcpuHour: 0.05, gibHour: 0.006, spotVcpuHour: 0.02, spotGibHour: 0.002}
pricing:
  provider: azure
  refreshSeconds: 60
  maxStaleSeconds: 600
  azure:
    baseUrl: BASE
    referenceVm: Standard_D2s_v5
    regions: {westeurope: westeurope}
"""


def test_the_pricing_section_is_read_and_checked() -> None:
    config = parse_config_text(AZURE_CONFIG.replace("BASE", "https://prices.example/api"))
    assert config.pricing.provider == "azure"
    assert config.pricing.cloud_region("eastus") == "eastus"
    assert parse_config_text("regions: [{name: eastus}]").pricing.provider == "static"
    with pytest.raises(ConfigError) as error:
        parse_config_text(
            "regions: [{name: eastus}]\npricing: {provider: ibm, refreshSeconds: 1, maxStaleSeconds: 100,"
            " azure: {regions: {nowhere: x}, colour: red}}"
        )
    text = str(error.value)
    for expected in ("pricing.provider", "pricing.refreshSeconds", "pricing.azure.regions.nowhere", "colour"):
        assert expected in text
    with pytest.raises(ConfigError, match=r"pricing.maxStaleSeconds"):
        parse_config_text("regions: [{name: eastus}]\npricing: {refreshSeconds: 600, maxStaleSeconds: 60}")


# --- the refresher against a local Azure server --------------------------------------------------


@pytest.fixture
def azure() -> Iterator[AzurePrices]:
    with azure_prices({("eastus", VM): (0.096, 0.0192), ("westeurope", VM): (0.11, 0.022)}) as server:
        yield server


def refresher_for(server: AzurePrices, clock: FakeClock) -> tuple[PriceRefresher, EcoPulseConfiguration]:
    config = parse_config_text(AZURE_CONFIG.replace("BASE", server.url + "/api/retail/prices"))
    env = {"ECOPULSE_ALLOW_INSECURE_PROVIDER_URLS": "true"}
    refresher = PriceRefresher(
        config=config,
        clock=clock,
        provider_factory=lambda s: build_price_provider(s, environ=env, clock=clock),
    )
    return refresher, config


def test_live_prices_with_their_source_and_age_and_the_operators_entry_untouched(azure: AzurePrices) -> None:
    clock = FakeClock()
    refresher, _ = refresher_for(azure, clock)
    report = refresher.refresh_once()
    assert report.priced == ["eastus", "westeurope"] and not report.failed
    clock.advance(30)
    quotes = refresher.quotes(clock.now)
    east = quotes["eastus"]
    expected = split_vm_price(0.096, vcpus=2, memory_gib=8)
    assert east.rates.vcpu_hour_usd == pytest.approx(expected.vcpu_hour_usd)
    assert east.rates.spot_gib_hour_usd == pytest.approx(
        split_vm_price(0.0192, vcpus=2, memory_gib=8).gib_hour_usd
    )
    assert (east.source, east.spot_source, east.age_seconds(clock.now)) == ("azure", "azure", 30)
    assert quotes["de-frankfurt"].source == "config"
    assert quotes["de-frankfurt"].rates.vcpu_hour_usd == 0.05
    # The operator's region is never asked for.
    assert not any("de-frankfurt" in path for path, _ in azure.requests)
    # Reading never fetches.
    asked = len(azure.requests)
    for _ in range(20):
        refresher.quotes(clock.now)
    assert len(azure.requests) == asked


def test_one_bad_region_keeps_its_last_good_price_and_never_drops_the_others(azure: AzurePrices) -> None:
    clock = FakeClock()
    refresher, _ = refresher_for(azure, clock)
    refresher.refresh_once()
    before = refresher.quotes(clock.now)["westeurope"]
    azure.vms[("westeurope", VM)] = (0.11 * 10, 0.022)  # a tenfold jump: refused
    azure.vms[("eastus", VM)] = (0.1, 0.02)
    clock.advance(60)
    failures = (
        REGISTRY.get_sample_value(
            "ecopulse_price_refresh_failures_total", {"source": "azure", "reason": "changed-too-much"}
        )
        or 0.0
    )
    report = refresher.refresh_once()
    assert report.priced == ["eastus"] and "changed-too-much" in report.failed["westeurope"]
    assert (
        REGISTRY.get_sample_value(
            "ecopulse_price_refresh_failures_total", {"source": "azure", "reason": "changed-too-much"}
        )
        == failures + 1
    )
    quotes = refresher.quotes(clock.now)
    assert quotes["westeurope"].rates == before.rates and quotes["westeurope"].fetched_at == START
    assert quotes["eastus"].fetched_at == clock.now
    # Spot at or above on-demand is refused the same way.
    azure.vms[("westeurope", VM)] = (0.11, 0.2)
    clock.advance(60)
    assert "spot-not-below-on-demand" in refresher.refresh_once().failed["westeurope"]


def test_a_server_down_keeps_the_last_good_prices_then_falls_back_counted(azure: AzurePrices) -> None:
    clock = FakeClock()
    refresher, config = refresher_for(azure, clock)
    refresher.refresh_once()
    azure.script.extend(Scripted(status=503) for _ in range(50))
    fallbacks = (
        REGISTRY.get_sample_value("ecopulse_price_fallbacks_total", {"source": "azure", "region": "eastus"})
        or 0.0
    )
    clock.advance(599)
    refresher.refresh_once()
    assert refresher.quotes(clock.now)["eastus"].source == "azure"
    clock.advance(2)
    refresher.refresh_once()
    east = refresher.quotes(clock.now)["eastus"]
    assert (east.source, east.rates) == (FALLBACK_SOURCE, config.prices["eastus"])
    assert (
        REGISTRY.get_sample_value("ecopulse_price_fallbacks_total", {"source": "azure", "region": "eastus"})
        == fallbacks + 1
    )
    refresher.refresh_once()  # counted once per fall, not per round
    assert (
        REGISTRY.get_sample_value("ecopulse_price_fallbacks_total", {"source": "azure", "region": "eastus"})
        == fallbacks + 1
    )


@pytest.mark.parametrize(("retry_after", "expected_seconds"), [("7200", 7200.0), (None, 60.0)])
def test_a_429_backs_off_honouring_retry_after(
    azure: AzurePrices, retry_after: str | None, expected_seconds: float
) -> None:
    clock = FakeClock()
    refresher, _ = refresher_for(azure, clock)
    azure.script.append(Scripted(status=429, headers={"Retry-After": retry_after} if retry_after else {}))
    report = refresher.refresh_once()
    assert set(report.failed) == {"eastus", "westeurope"}
    assert len(azure.requests) == 1  # the round stopped: the next region would be refused too
    clock.advance(expected_seconds - 1)
    assert refresher.refresh_once().skipped_backoff
    clock.advance(1)
    assert refresher.refresh_once().priced == ["eastus", "westeurope"]


def test_static_fetches_nothing_and_names_the_bundled_table() -> None:
    config = parse_config_text("regions: [{name: us-east-1}, {name: eu-west-1}]")

    def factory(settings: PricingSettings) -> PriceProvider | None:
        assert settings.provider == "static"
        return build_price_provider(settings)

    refresher = PriceRefresher(config=config, provider_factory=factory)
    assert refresher.refresh_once().priced == []
    quote = refresher.quotes(START)["us-east-1"]
    assert (quote.source, quote.rates, quote.fetched_at) == ("static", config.prices["us-east-1"], None)


def test_an_unbuildable_provider_keeps_the_bundled_table_and_refuses_the_reload() -> None:
    config = parse_config_text("regions: [{name: europe-west1}]\npricing: {provider: gcp}")
    refresher = PriceRefresher(config=config, provider_factory=lambda s: build_price_provider(s, environ={}))
    assert "GCP_BILLING_API_KEY" in refresher.refresh_once().failed["europe-west1"]
    assert refresher.quotes(START)["europe-west1"].source == FALLBACK_SOURCE
    static = PriceRefresher(config=parse_config_text("regions: [{name: europe-west1}]"))
    problems = static.check_config(config)
    assert problems and "GCP_BILLING_API_KEY" in problems[0]


def test_the_price_gauge_names_region_capacity_resource_and_source(azure: AzurePrices) -> None:
    clock = FakeClock()
    refresher, _ = refresher_for(azure, clock)
    refresher.refresh_once()
    families = {family.name: family for family in PriceMetricsCollector(refresher).collect()}
    samples = {
        (s.labels["region"], s.labels["capacity_type"], s.labels["resource"], s.labels["source"]): s.value
        for s in families["ecopulse_price_usd_per_hour"].samples
    }
    assert samples[("eastus", "spot", "memory_gib", "azure")] == pytest.approx(
        split_vm_price(0.0192, vcpus=2, memory_gib=8).gib_hour_usd
    )
    assert ("de-frankfurt", "on-demand", "vcpu", "config") in samples
    assert len(samples) == 3 * 2 * 2
    ages = {s.labels["region"]: s.value for s in families["ecopulse_price_age_seconds"].samples}
    assert ages == {"eastus": 0.0, "westeurope": 0.0}


def test_a_provider_error_for_one_region_is_that_regions_only() -> None:
    class HalfBroken:
        name = "azure"

        def fetch(self, regions: object) -> dict[str, RegionPrices | ProviderError]:
            return {"eastus": GOOD, "westeurope": ProviderError(ProviderErrorKind.NOT_FOUND, "no rows")}

        def close(self) -> None:
            return None

    config = parse_config_text(AZURE_CONFIG.replace("BASE", "https://prices.example/api"))
    refresher = PriceRefresher(config=config, provider_factory=lambda s: HalfBroken())
    report = refresher.refresh_once()
    assert report.priced == ["eastus"] and "no rows" in report.failed["westeurope"]
    assert refresher.quotes(START)["westeurope"].source == FALLBACK_SOURCE
