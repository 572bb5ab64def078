"""GcpPriceProvider against a local server speaking the Cloud Billing Catalog API."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from core.model import Region
from core.signals.base import ProviderError, ProviderErrorKind
from core.signals.prices.base import PriceFetch, RegionPrices, ResourcePrices
from core.signals.prices.gcp import GcpPriceProvider, gcp_from_env, money_usd
from tests.integration.flood_server import flood_server
from tests.price_servers import GcpCatalog, Scripted, gcp_catalog

KEY = "AIza-gcp-KEY-5ecr3t"
BELGIUM, IOWA = Region(name="europe-west1", zone="BE"), Region(name="us-central1", zone="US-MIDW-MISO")
FRANKFURT = Region(name="de-frankfurt", zone="DE")


@pytest.fixture
def server() -> Iterator[GcpCatalog]:
    regions = {
        "europe-west1": (0.034802, 0.004664, 0.008401, 0.001126),
        "us-central1": (0.031611, 0.004237, None, None),
        "europe-west3": (1.040849, 0.005458, 0.011, 0.0015),  # units and nanos both in use
    }
    with gcp_catalog(KEY, regions) as state:
        yield state


def fetch(base_url: str, *regions: Region, key: str = KEY) -> PriceFetch:
    provider = GcpPriceProvider(
        client=httpx.Client(timeout=5.0, trust_env=False),
        api_key=key,
        base_url=base_url,
        allow_insecure_http=True,
        machine_series="N2",
        regions={"de-frankfurt": "europe-west3"},
    )
    try:
        return provider.fetch(regions or (BELGIUM,))
    finally:
        provider.close()


def test_reads_on_demand_and_spot_core_and_ram_skus_across_pages(server: GcpCatalog) -> None:
    result = fetch(server.url + "/v1", BELGIUM, IOWA, FRANKFURT)
    assert result["europe-west1"] == RegionPrices(
        on_demand=ResourcePrices(vcpu_hour_usd=0.034802, gib_hour_usd=0.004664),
        spot=ResourcePrices(vcpu_hour_usd=0.008401, gib_hour_usd=0.001126),
    )
    iowa = result["us-central1"]
    assert isinstance(iowa, RegionPrices) and iowa.spot is None
    frankfurt = result["de-frankfurt"]
    assert isinstance(frankfurt, RegionPrices) and frankfurt.on_demand.vcpu_hour_usd == pytest.approx(
        1.040849
    )
    # 31 SKUs at 4 a page, one pass over the catalogue for every region; the key only in a header.
    assert len(server.requests) == 8
    for path, headers in server.requests:
        assert headers["x-goog-api-key"] == KEY and KEY not in path
        assert "currencyCode=USD" in path


def test_a_region_absent_from_the_catalogue_is_that_regions_error(server: GcpCatalog) -> None:
    result = fetch(server.url + "/v1", BELGIUM, Region(name="mars-north1", zone="DE"))
    assert isinstance(result["europe-west1"], RegionPrices)
    missing = result["mars-north1"]
    assert isinstance(missing, ProviderError) and missing.kind is ProviderErrorKind.NOT_FOUND


def test_a_wrong_key_is_auth_and_never_printed(server: GcpCatalog) -> None:
    with pytest.raises(ProviderError) as info:
        fetch(server.url + "/v1", key="wrong-key-123")
    assert info.value.kind is ProviderErrorKind.AUTH and "wrong-key-123" not in str(info.value)
    assert "wrong-key-123" not in repr(
        GcpPriceProvider(
            client=httpx.Client(),
            api_key="wrong-key-123",
            base_url="https://x",
            allow_insecure_http=False,
            machine_series="N2",
            regions={},
        )
    )


@pytest.mark.parametrize(
    ("status", "headers", "kind", "retry"),
    [
        (429, {"Retry-After": "30"}, ProviderErrorKind.RATE_LIMITED, 30.0),
        (503, {}, ProviderErrorKind.UNAVAILABLE, None),
        (301, {"Location": "https://evil.example/v1"}, ProviderErrorKind.CONFIG, None),
    ],
)
def test_errors_mid_paging_fail_the_round(
    server: GcpCatalog, status: int, headers: dict[str, str], kind: ProviderErrorKind, retry: float | None
) -> None:
    server.script.append(Scripted(status=200, body=b'{"skus": [], "nextPageToken": "4"}'))
    server.script.append(Scripted(status=status, headers=headers))
    with pytest.raises(ProviderError) as info:
        fetch(server.url + "/v1")
    assert info.value.kind is kind and info.value.retry_after_seconds == retry
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    "body", [b"not json", b'{"skus": {}}', b'{"skus": ["x"]}', b"[]", b'{"skus": [{"category": 5}]}']
)
def test_garbage(server: GcpCatalog, body: bytes) -> None:
    server.script.append(Scripted(status=200, body=body))
    try:
        result = fetch(server.url + "/v1")
    except ProviderError as error:
        assert error.kind is ProviderErrorKind.BAD_RESPONSE
    else:  # a page of SKUs that are none of ours prices nothing
        assert isinstance(result["europe-west1"], ProviderError)


def test_an_endless_catalogue_stops_at_the_page_cap(server: GcpCatalog) -> None:
    server.script.extend(
        Scripted(status=200, body=b'{"skus": [], "nextPageToken": "again"}') for _ in range(420)
    )
    with pytest.raises(ProviderError, match="more than 400 pages"):
        fetch(server.url + "/v1")
    assert len(server.requests) == 400


def test_an_oversized_page_is_cut_off() -> None:
    with flood_server(declare_length=False) as flood:
        with pytest.raises(ProviderError, match="exceeds") as info:
            fetch(flood.url + "/v1")
        assert flood.done.wait(5.0)
    assert info.value.kind is ProviderErrorKind.BAD_RESPONSE


@pytest.mark.parametrize(
    ("money", "usd"),
    [
        ({"currencyCode": "USD", "units": "0", "nanos": 31611000}, 0.031611),
        ({"units": "1", "nanos": 500000000}, 1.5),
        ({"nanos": 4237000}, 0.004237),
        ({"units": "x"}, None),
        ({"units": "0", "nanos": 1_000_000_000}, None),
        ({"units": "0", "nanos": True}, None),
    ],
)
def test_money(money: dict[str, object], usd: float | None) -> None:
    assert money_usd(money) == (pytest.approx(usd) if usd is not None else None)


def test_the_key_comes_from_the_environment() -> None:
    with pytest.raises(ProviderError, match="GCP_BILLING_API_KEY"):
        gcp_from_env({}, client=httpx.Client(), base_url="https://x", machine_series="N2", regions={})
