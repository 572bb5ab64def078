"""GCP Cloud Billing Catalog: a machine series' per-core and per-GiB SKUs per region.

``GET {baseUrl}/services/6F81-5844-456A/skus?currencyCode=USD`` (Compute Engine), the API key in
the ``X-Goog-Api-Key`` header (never in the URL, where logs and proxies keep it), following
``nextPageToken``. A SKU counts when its category is ``resourceFamily: Compute`` with
``usageType`` ``OnDemand`` (on-demand) or ``Preemptible`` (spot), its description names the series'
"Instance Core" (usage unit ``h``) or "Instance Ram" (``GiBy.h``), and it serves the region. Its
price is the first tier of the latest pricing info: ``units + nanos / 1e9`` USD. No split needed.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping, Sequence

import httpx

from core.model import Region
from core.signals.base import Clock, ProviderError, ProviderErrorKind, utc_now
from core.signals.http import (
    HttpProvider,
    Secret,
    as_finite_number,
    as_list,
    as_object,
    as_str,
    bad_response,
    endpoint_from_env,
    error_for_status,
    object_items,
    read_json,
    send,
)
from core.signals.prices.base import PriceFetch, RegionPrices, ResourcePrices

COMPUTE_ENGINE_SERVICE = "6F81-5844-456A"
API_KEY_ENV = "GCP_BILLING_API_KEY"
BASE_URL_ENV = "GCP_BILLING_BASE_URL"
# The Compute Engine catalogue is some 30,000 SKUs. Pages of 250 (about 300 KiB) keep each JSON
# parse, which holds the GIL, to a few milliseconds: a refresh must never hold up a review for long
# (bench/prices.py: pages of 1,000 let a review wait up to 60 ms, of 250 about 15 ms).
PAGE_SIZE = 250
MAX_PAGES = 400
MAX_PAGE_BYTES = 4 * 1024 * 1024
MAX_SECONDS = 300.0
_USAGE = {"OnDemand": False, "Preemptible": True}
_UNITS = {"core": "h", "ram": "GiBy.h"}


class GcpPriceProvider(HttpProvider):
    def __init__(
        self,
        *,
        client: httpx.Client,
        api_key: str,
        base_url: str,
        allow_insecure_http: bool,
        machine_series: str,
        regions: Mapping[str, str],
        now: Clock | None = None,
    ) -> None:
        super().__init__(
            name="gcp",
            client=client,
            base_url=base_url,
            base_url_setting="pricing.gcp.baseUrl",
            allow_insecure_http=allow_insecure_http,
            now=now,
        )
        self._key = Secret(api_key)
        self._series = machine_series
        # "N2 Instance Core running in Americas", "Spot Preemptible N2 Instance Ram running in Belgium"
        self._pattern = re.compile(
            rf"^(?:Spot Preemptible |Preemptible )?{re.escape(machine_series)} "
            r"Instance (Core|Ram) running in ",
            re.IGNORECASE,
        )
        self._regions = dict(regions)

    def _describe(self) -> str:
        return f"machine_series={self._series!r}"

    def fetch(self, regions: Sequence[Region]) -> PriceFetch:
        wanted = {self._regions.get(r.name, r.name): r.name for r in regions}
        # (cloud region, spot, "core"|"ram") -> USD per hour
        found: dict[tuple[str, bool, str], float] = {}
        what = f"gcp catalog {self._series}"
        token = ""
        started = time.monotonic()
        for _ in range(MAX_PAGES):
            if time.monotonic() - started > MAX_SECONDS:
                raise ProviderError(ProviderErrorKind.TIMEOUT, f"{what}: paging took over {MAX_SECONDS:g}s")
            params = {"currencyCode": "USD", "pageSize": str(PAGE_SIZE)}
            if token:
                params["pageToken"] = token
            reply = send(
                self._client,
                f"{self._base_url}/services/{COMPUTE_ENGINE_SERVICE}/skus",
                what=what,
                params=params,
                headers={"X-Goog-Api-Key": self._key.reveal()},
                max_bytes=MAX_PAGE_BYTES,
            )
            error = error_for_status(reply, what=what, now=self._now())
            if error is not None:
                raise error
            body = as_object(read_json(reply, what=what))
            if body is None:
                raise bad_response(what, "body is not an object")
            for sku in object_items(body, "skus", what=what) if "skus" in body else iter(()):
                self._collect(sku, wanted=wanted, found=found)
            token = as_str(body.get("nextPageToken")) or ""
            if not token:
                break
        else:
            raise bad_response(what, f"more than {MAX_PAGES} pages")
        result: dict[str, RegionPrices | ProviderError] = {}
        for cloud_region, ours in wanted.items():
            core, ram = found.get((cloud_region, False, "core")), found.get((cloud_region, False, "ram"))
            if core is None or ram is None:
                result[ours] = ProviderError(
                    ProviderErrorKind.NOT_FOUND, f"{what}: no on-demand core and RAM SKUs in {cloud_region}"
                )
                continue
            spot_core, spot_ram = (
                found.get((cloud_region, True, "core")),
                found.get((cloud_region, True, "ram")),
            )
            spot = (
                ResourcePrices(vcpu_hour_usd=spot_core, gib_hour_usd=spot_ram)
                if spot_core is not None and spot_ram is not None
                else None
            )
            result[ours] = RegionPrices(
                on_demand=ResourcePrices(vcpu_hour_usd=core, gib_hour_usd=ram), spot=spot
            )
        return result

    def _collect(
        self,
        sku: Mapping[str, object],
        *,
        wanted: Mapping[str, str],
        found: dict[tuple[str, bool, str], float],
    ) -> None:
        category = as_object(sku.get("category")) or {}
        if category.get("resourceFamily") != "Compute":
            return
        usage = as_str(category.get("usageType")) or ""
        if usage not in _USAGE:
            return
        matched = self._pattern.match(as_str(sku.get("description")) or "")
        if matched is None:
            return
        part = matched.group(1).lower()
        regions = [
            r for r in (as_list(sku.get("serviceRegions")) or []) if isinstance(r, str) and r in wanted
        ]
        if not regions:
            return
        price = gcp_unit_price(sku, usage_unit=_UNITS[part])
        if price is None:
            return
        for region in regions:
            found[(region, _USAGE[usage], part)] = price


def gcp_unit_price(sku: Mapping[str, object], *, usage_unit: str) -> float | None:
    """USD per unit of the latest pricing info's first tier; None when absent or in other units."""
    infos = [i for i in (as_object(x) for x in as_list(sku.get("pricingInfo")) or []) if i is not None]
    if not infos:
        return None
    latest = max(infos, key=lambda info: as_str(info.get("effectiveTime")) or "")
    expression = as_object(latest.get("pricingExpression")) or {}
    if expression.get("usageUnit") != usage_unit:
        return None
    tiers = [t for t in (as_object(x) for x in as_list(expression.get("tieredRates")) or []) if t is not None]
    if not tiers:
        return None
    first = min(tiers, key=lambda tier: as_finite_number(tier.get("startUsageAmount")) or 0.0)
    money = as_object(first.get("unitPrice")) or {}
    if money.get("currencyCode", "USD") != "USD":
        return None
    return money_usd(money)


def money_usd(money: Mapping[str, object]) -> float | None:
    """google.type.Money: ``units`` (an int64, as a JSON string) plus ``nanos`` (10^-9 units)."""
    units_raw = money.get("units", "0")
    try:
        units = (
            int(units_raw) if isinstance(units_raw, str | int) and not isinstance(units_raw, bool) else None
        )
    except ValueError:
        return None
    nanos = money.get("nanos", 0)
    if units is None or isinstance(nanos, bool) or not isinstance(nanos, int) or abs(nanos) >= 1_000_000_000:
        return None
    return units + nanos / 1e9


def gcp_from_env(
    env: Mapping[str, str] | None = None,
    *,
    client: httpx.Client,
    base_url: str,
    machine_series: str,
    regions: Mapping[str, str],
    now: Clock = utc_now,
) -> GcpPriceProvider:
    """GCP_BILLING_API_KEY (required, from a Secret), GCP_BILLING_BASE_URL (optional override)."""
    source = os.environ if env is None else env
    key = source.get(API_KEY_ENV, "").strip()
    if not key:
        raise ProviderError(ProviderErrorKind.CONFIG, f"gcp: {API_KEY_ENV} is not set")
    endpoint = endpoint_from_env(source, base_url_env=BASE_URL_ENV, base_url=base_url)
    return GcpPriceProvider(
        client=client,
        api_key=key,
        base_url=endpoint.base_url,
        allow_insecure_http=endpoint.allow_insecure_http,
        machine_series=machine_series,
        regions=regions,
        now=now,
    )
