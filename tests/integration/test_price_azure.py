"""AzurePriceProvider against a local server speaking the Retail Prices API (tests/price_servers.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from core.model import Region
from core.signals.base import ProviderError, ProviderErrorKind
from core.signals.prices.azure import AzurePriceProvider, azure_from_env
from core.signals.prices.base import PriceFetch, RegionPrices
from core.signals.prices.split import split_vm_price
from tests.integration.flood_server import flood_server
from tests.price_servers import AZURE_PATH, AzurePrices, Scripted, azure_prices

VM = "Standard_D2s_v5"
EAST, WEST = Region(name="eastus", zone="US-MIDA-PJM"), Region(name="de-frankfurt", zone="DE")
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def server() -> Iterator[AzurePrices]:
    vms = {
        ("eastus", VM): (0.096, 0.0192),
        ("germanywestcentral", VM): (0.11, None),
        ("eastus", "Standard_D4s_v5"): (0.3, 0.1),
    }
    with azure_prices(vms) as state:
        yield state


def provider(base_url: str, *, regions: dict[str, str] | None = None) -> AzurePriceProvider:
    return AzurePriceProvider(
        client=httpx.Client(timeout=5.0, trust_env=False, follow_redirects=False),
        base_url=base_url,
        allow_insecure_http=True,
        reference_vm=VM,
        regions=regions or {"de-frankfurt": "germanywestcentral"},
        now=lambda: NOW,
    )


def fetch(base_url: str, *regions: Region) -> PriceFetch:
    p = provider(base_url)
    try:
        return p.fetch(regions or (EAST,))
    finally:
        p.close()


def test_pages_through_decoys_to_the_linux_price_in_effect_now(server: AzurePrices) -> None:
    result = fetch(server.url + AZURE_PATH, EAST, WEST)
    east = result["eastus"]
    assert isinstance(east, RegionPrices)
    assert east.on_demand == split_vm_price(0.096, vcpus=2, memory_gib=8)
    assert east.spot == split_vm_price(0.0192, vcpus=2, memory_gib=8)
    west = result["de-frankfurt"]
    assert isinstance(west, RegionPrices) and west.spot is None  # no spot row: none claimed
    assert west.on_demand == split_vm_price(0.11, vcpus=2, memory_gib=8)
    # 10 rows for eastus at 3 a page: 4 pages; the filter names the service, region and SKU.
    east_paths = [path for path, _ in server.requests if "eastus" in path]
    assert len(east_paths) == 4
    assert parse_qs(urlsplit(east_paths[0]).query)["$filter"] == [
        "serviceName eq 'Virtual Machines' and armRegionName eq 'eastus' and armSkuName eq 'Standard_D2s_v5'"
    ]


def test_one_region_without_rows_is_that_regions_error(server: AzurePrices) -> None:
    result = fetch(server.url + AZURE_PATH, EAST, Region(name="nowhere", zone="DE"))
    assert isinstance(result["eastus"], RegionPrices)
    error = result["nowhere"]
    assert isinstance(error, ProviderError) and error.kind is ProviderErrorKind.NOT_FOUND


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (500, ProviderErrorKind.UNAVAILABLE),
        (404, ProviderErrorKind.NOT_FOUND),
        (400, ProviderErrorKind.CONFIG),
    ],
)
def test_errors_are_classified_per_region(server: AzurePrices, status: int, kind: ProviderErrorKind) -> None:
    server.script.append(Scripted(status=status, body=b'{"Error": "secret detail"}'))
    result = fetch(server.url + AZURE_PATH, EAST, WEST)
    error = result["eastus"]
    assert isinstance(error, ProviderError) and error.kind is kind and "secret" not in str(error)
    assert isinstance(result["de-frankfurt"], RegionPrices)


def test_a_429_stops_the_round_with_its_retry_after(server: AzurePrices) -> None:
    server.script.append(Scripted(status=429, headers={"Retry-After": "120"}))
    with pytest.raises(ProviderError) as info:
        fetch(server.url + AZURE_PATH, EAST, WEST)
    assert info.value.kind is ProviderErrorKind.RATE_LIMITED and info.value.retry_after_seconds == 120
    assert len(server.requests) == 1


def test_a_redirect_to_another_host_is_not_followed(server: AzurePrices) -> None:
    with azure_prices({("eastus", VM): (9.0, 1.0)}) as elsewhere:
        server.script.append(Scripted(status=302, headers={"Location": elsewhere.url + AZURE_PATH}))
        error = fetch(server.url + AZURE_PATH)["eastus"]
        assert elsewhere.requests == []
    assert isinstance(error, ProviderError) and error.kind is ProviderErrorKind.CONFIG


def test_a_next_page_link_to_another_host_is_refused(server: AzurePrices) -> None:
    with azure_prices({("eastus", VM): (9.0, 1.0)}) as elsewhere:
        server.next_link_host = elsewhere.url
        error = fetch(server.url + AZURE_PATH)["eastus"]
        assert elsewhere.requests == []
    assert isinstance(error, ProviderError) and error.kind is ProviderErrorKind.BAD_RESPONSE
    assert "another host" in error.message


def test_endless_paging_stops_at_the_page_cap(server: AzurePrices) -> None:
    server.page_size = 1  # 10 rows, 10 pages: at the cap
    assert isinstance(fetch(server.url + AZURE_PATH)["eastus"], RegionPrices)
    server.requests.clear()
    server.endless = True
    error = fetch(server.url + AZURE_PATH)["eastus"]
    assert isinstance(error, ProviderError) and error.kind is ProviderErrorKind.BAD_RESPONSE
    assert "more than 10 pages" in error.message and len(server.requests) == 10


@pytest.mark.parametrize("declare_length", [True, False])
def test_an_oversized_body_is_cut_off(declare_length: bool) -> None:
    with flood_server(declare_length=declare_length) as flood:
        error = fetch(flood.url + AZURE_PATH)["eastus"]
        assert flood.done.wait(5.0)
    assert isinstance(error, ProviderError) and error.kind is ProviderErrorKind.BAD_RESPONSE
    assert "exceeds" in error.message


@pytest.mark.parametrize(
    "body",
    [
        b"<html>maintenance</html>",
        b'{"Items": "none"}',
        b'{"Items": [1, 2]}',
        b'[{"retailPrice": 1}]',
        b'{"Items": [], "NextPageLink": 7}',
        b"\xff\xfe",
    ],
)
def test_garbage_is_a_bad_response(server: AzurePrices, body: bytes) -> None:
    server.script.append(Scripted(status=200, body=body))
    error = fetch(server.url + AZURE_PATH)["eastus"]
    assert isinstance(error, ProviderError) and error.kind is ProviderErrorKind.BAD_RESPONSE


def test_plain_http_needs_the_explicit_opt_in(server: AzurePrices) -> None:
    with pytest.raises(ProviderError) as info:
        azure_from_env(
            {"AZURE_PRICES_BASE_URL": server.url + AZURE_PATH},
            client=httpx.Client(),
            base_url="https://prices.azure.com/api/retail/prices",
            reference_vm=VM,
            regions={},
        )
    assert info.value.kind is ProviderErrorKind.CONFIG and "ECOPULSE_ALLOW_INSECURE_PROVIDER_URLS" in str(
        info.value
    )
    assert server.requests == []
    allowed = azure_from_env(
        {"AZURE_PRICES_BASE_URL": server.url + AZURE_PATH, "ECOPULSE_ALLOW_INSECURE_PROVIDER_URLS": "true"},
        client=httpx.Client(),
        base_url="https://prices.azure.com/api/retail/prices",
        reference_vm=VM,
        regions={},
    )
    assert isinstance(allowed.fetch([EAST])["eastus"], RegionPrices)
    allowed.close()


def test_an_unknown_reference_vm_is_a_config_error() -> None:
    with pytest.raises(ProviderError, match=r"vm-shapes\.csv") as info:
        AzurePriceProvider(
            client=httpx.Client(),
            base_url="https://prices.azure.com/api/retail/prices",
            allow_insecure_http=False,
            reference_vm="Standard_Nonesuch",
            regions={},
        )
    assert info.value.kind is ProviderErrorKind.CONFIG
