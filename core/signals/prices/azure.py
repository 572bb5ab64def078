"""Azure Retail Prices API (no credentials): one reference VM's hourly price per region, split.

``GET {baseUrl}?$filter=serviceName eq 'Virtual Machines' and armRegionName eq '<r>' and
armSkuName eq '<vm>'``, following ``NextPageLink`` on the same host only. Of the rows, only
``type == "Consumption"`` and ``unitOfMeasure == "1 Hour"`` count; Windows products and
"Low Priority" SKUs are dropped; a ``skuName`` ending " Spot" is the spot price, any other the
on-demand one; of several, the one in effect now (the latest ``effectiveStartDate`` not in the future).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from urllib.parse import urlsplit

import httpx

from core.model import Region
from core.signals.base import Clock, ProviderError, ProviderErrorKind, utc_now
from core.signals.http import (
    HttpProvider,
    as_finite_number,
    as_object,
    as_str,
    bad_response,
    endpoint_from_env,
    error_for_status,
    object_items,
    parse_instant,
    read_json,
    send,
)
from core.signals.prices.base import PriceFetch, RegionPrices, ResourcePrices
from core.signals.prices.split import reference_shape, split_vm_price

BASE_URL_ENV = "AZURE_PRICES_BASE_URL"
# One region and one SKU make one page (a few dozen rows) today; 10 pages is a wide margin, and
# a server that pages without end (or in a loop) stops there.
MAX_PAGES = 10
MAX_PAGE_BYTES = 2 * 1024 * 1024
MAX_SECONDS_PER_REGION = 60.0


class AzurePriceProvider(HttpProvider):
    def __init__(
        self,
        *,
        client: httpx.Client,
        base_url: str,
        allow_insecure_http: bool,
        reference_vm: str,
        regions: Mapping[str, str],
        now: Clock | None = None,
    ) -> None:
        super().__init__(
            name="azure",
            client=client,
            base_url=base_url,
            base_url_setting="pricing.azure.baseUrl",
            allow_insecure_http=allow_insecure_http,
            now=now,
        )
        shape = reference_shape("azure", reference_vm)
        self._vm = reference_vm
        self._vcpus, self._memory_gib = shape
        self._regions = dict(regions)
        self._host = _origin(self._base_url)

    def _describe(self) -> str:
        return f"reference_vm={self._vm!r}"

    def fetch(self, regions: Sequence[Region]) -> PriceFetch:
        result: dict[str, RegionPrices | ProviderError] = {}
        for region in regions:
            try:
                result[region.name] = self._fetch_region(self._regions.get(region.name, region.name))
            except ProviderError as error:
                if error.kind in (ProviderErrorKind.RATE_LIMITED, ProviderErrorKind.AUTH):
                    raise  # the rest of the round would be refused the same way
                result[region.name] = error
        return result

    def _fetch_region(self, arm_region: str) -> RegionPrices:
        what = f"azure prices {arm_region} {self._vm}"
        query = (
            f"serviceName eq 'Virtual Machines' and armRegionName eq '{arm_region}' "
            f"and armSkuName eq '{self._vm}'"
        )
        url: str | None = self._base_url
        params: dict[str, str] | None = {"$filter": query}
        rows: list[dict[str, object]] = []
        started = time.monotonic()
        for _ in range(MAX_PAGES):
            if url is None:
                break
            if time.monotonic() - started > MAX_SECONDS_PER_REGION:
                raise ProviderError(
                    ProviderErrorKind.TIMEOUT, f"{what}: paging took over {MAX_SECONDS_PER_REGION:g}s"
                )
            reply = send(self._client, url, what=what, params=params, max_bytes=MAX_PAGE_BYTES)
            error = error_for_status(reply, what=what, now=self._now())
            if error is not None:
                raise error
            body = as_object(read_json(reply, what=what))
            if body is None:
                raise bad_response(what, "body is not an object")
            rows.extend(object_items(body, "Items", what=what))
            url, params = self._next_page(body.get("NextPageLink"), what=what), None
        else:
            if url is not None:
                raise bad_response(what, f"more than {MAX_PAGES} pages")
        return self._prices(rows, arm_region=arm_region, what=what)

    def _next_page(self, link: object, *, what: str) -> str | None:
        if link is None or link == "":
            return None
        text = as_str(link)
        if text is None:
            raise bad_response(what, "NextPageLink is not a string")
        if _origin(text) != self._host:
            raise bad_response(what, "NextPageLink points to another host; not followed")
        return text

    def _prices(self, rows: list[dict[str, object]], *, arm_region: str, what: str) -> RegionPrices:
        chosen = vm_prices_in_effect(rows, arm_region=arm_region, vm=self._vm, now=self._now())
        on_demand, spot = chosen.get(False), chosen.get(True)
        if on_demand is None:
            raise ProviderError(ProviderErrorKind.NOT_FOUND, f"{what}: no Linux on-demand hourly price")
        split = self._split
        return RegionPrices(on_demand=split(on_demand[1]), spot=split(spot[1]) if spot is not None else None)

    def _split(self, price: float) -> ResourcePrices:
        return split_vm_price(price, vcpus=self._vcpus, memory_gib=self._memory_gib)


def vm_prices_in_effect(
    rows: list[dict[str, object]], *, arm_region: str, vm: str, now: datetime
) -> dict[bool, tuple[datetime, float]]:
    """{is spot: (effective from, USD per hour)} of the rows that price the VM now, the latest of each.
    The one reading of the rows: the provider and hack/regenerate-prices.py both use it."""
    best: dict[bool, tuple[datetime, float]] = {}
    for row in rows:
        chosen = azure_row_price(row, arm_region=arm_region, vm=vm, now=now)
        if chosen is None:
            continue
        spot, effective, price = chosen
        if spot not in best or effective > best[spot][0]:
            best[spot] = (effective, price)
    return best


def azure_row_price(
    row: Mapping[str, object], *, arm_region: str, vm: str, now: datetime
) -> tuple[bool, datetime, float] | None:
    """(is spot, effective from, USD per hour) for a row that prices the VM now; None for any other row."""
    if row.get("type") != "Consumption" or row.get("unitOfMeasure") != "1 Hour":
        return None
    if row.get("armRegionName") != arm_region or row.get("armSkuName") != vm:
        return None
    if row.get("currencyCode", "USD") != "USD":
        return None
    product = as_str(row.get("productName")) or ""
    sku = as_str(row.get("skuName")) or ""
    if "Windows" in product or sku.endswith(" Low Priority"):
        return None
    effective = parse_instant(row.get("effectiveStartDate"))
    price = as_finite_number(row.get("retailPrice"))
    if effective is None or price is None or effective > now:
        return None
    return sku.endswith(" Spot"), effective, price


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def azure_from_env(
    env: Mapping[str, str],
    *,
    client: httpx.Client,
    base_url: str,
    reference_vm: str,
    regions: Mapping[str, str],
    now: Clock = utc_now,
) -> AzurePriceProvider:
    endpoint = endpoint_from_env(env, base_url_env=BASE_URL_ENV, base_url=base_url)
    return AzurePriceProvider(
        client=client,
        base_url=endpoint.base_url,
        allow_insecure_http=endpoint.allow_insecure_http,
        reference_vm=reference_vm,
        regions=regions,
        now=now,
    )
