"""AWS through botocore (the optional extra ``aws``): spot from EC2, on-demand from the Price List.

- spot: ``DescribeSpotPriceHistory`` in the region for the reference instance type and
  ``Linux/UNIX``, the latest price of each availability zone, then the median over the zones;
- on-demand: the Price List ``GetProducts`` (its endpoint is in us-east-1) for the instance type,
  region, Linux, shared tenancy, no pre-installed software, ``capacitystatus: Used``; the hourly
  ``USD`` of its OnDemand term.

Both prices are split per vCPU and GiB by the split rule (core.signals.prices.split).
Credentials come from botocore's default chain (environment, IRSA, EKS Pod Identity, instance
profile). Pages, time and response bytes are capped as for the HTTP providers.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from core.config import AwsPriceSettings
from core.model import Region
from core.signals.base import Clock, ProviderError, ProviderErrorKind, utc_now
from core.signals.http import allow_insecure_from_env, as_object, parse_instant, require_secure_url
from core.signals.prices.base import PriceFetch, RegionPrices, ResourcePrices
from core.signals.prices.split import reference_shape, split_vm_price

EC2_ENDPOINT_ENV = "AWS_ENDPOINT_URL_EC2"
PRICING_ENDPOINT_ENV = "AWS_ENDPOINT_URL_PRICING"
PRICING_REGION = "us-east-1"
MAX_PAGES = 20
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
MAX_SECONDS_PER_REGION = 60.0
TIMEOUT_SECONDS = 10.0
_THROTTLED = {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException"}
_AUTH = {
    "AuthFailure",
    "UnauthorizedOperation",
    "AccessDeniedException",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
}


class AwsPriceProvider:
    def __init__(
        self,
        *,
        session: Any,
        reference_vm: str,
        regions: Mapping[str, str],
        ec2_endpoint: str | None,
        pricing_endpoint: str | None,
        now: Clock = utc_now,
    ) -> None:
        from botocore.config import Config  # noqa: PLC0415 - botocore is an optional extra

        shape = reference_shape("aws", reference_vm)
        self._session = session
        self._vm = reference_vm
        self._vcpus, self._memory_gib = shape
        self._regions = dict(regions)
        self._ec2_endpoint = ec2_endpoint
        self._pricing_endpoint = pricing_endpoint
        self._now = now
        # One attempt per call: the refresher owns retries and back-off (Retry-After, throttling).
        self._config = Config(
            connect_timeout=TIMEOUT_SECONDS,
            read_timeout=TIMEOUT_SECONDS,
            retries={"total_max_attempts": 1, "mode": "standard"},
            user_agent_extra="eco-pulse",
        )
        self._pricing: Any = None

    @property
    def name(self) -> str:
        return "aws"

    def close(self) -> None:
        self._pricing = None

    def _client(self, service: str, region: str, endpoint: str | None) -> Any:
        client = self._session.create_client(
            service, region_name=region, endpoint_url=endpoint, config=self._config
        )
        client.meta.events.register("before-parse", _cap_body)
        return client

    def fetch(self, regions: Sequence[Region]) -> PriceFetch:
        result: dict[str, RegionPrices | ProviderError] = {}
        if self._pricing is None:
            self._pricing = self._client("pricing", PRICING_REGION, self._pricing_endpoint)
        for region in regions:
            cloud_region = self._regions.get(region.name, region.name)
            try:
                result[region.name] = self._fetch_region(cloud_region)
            except ProviderError as error:
                if error.kind in (ProviderErrorKind.RATE_LIMITED, ProviderErrorKind.AUTH):
                    raise
                result[region.name] = error
        return result

    def _fetch_region(self, cloud_region: str) -> RegionPrices:
        what = f"aws {cloud_region} {self._vm}"
        started = time.monotonic()
        on_demand = self._on_demand(cloud_region, what=what, started=started)
        spot = self._spot(cloud_region, what=what, started=started)
        split = self._split
        return RegionPrices(on_demand=split(on_demand), spot=split(spot) if spot is not None else None)

    def _split(self, price: float) -> ResourcePrices:
        return split_vm_price(price, vcpus=self._vcpus, memory_gib=self._memory_gib)

    def _pages(
        self, call: Any, kwargs: dict[str, Any], *, key: str, what: str, started: float
    ) -> list[dict[str, Any]]:
        """Every page of a paged call; a page without ``key`` is not an answer (botocore reads an
        unparseable body as an empty one)."""
        pages: list[dict[str, Any]] = []
        token: str | None = None
        for _ in range(MAX_PAGES):
            if time.monotonic() - started > MAX_SECONDS_PER_REGION:
                raise ProviderError(
                    ProviderErrorKind.TIMEOUT, f"{what}: paging took over {MAX_SECONDS_PER_REGION:g}s"
                )
            page = _call(call, {**kwargs, **({"NextToken": token} if token else {})}, what=what)
            if not isinstance(page.get(key), list):
                raise ProviderError(ProviderErrorKind.BAD_RESPONSE, f"{what}: no {key} in the answer")
            pages.append(page)
            token = page.get("NextToken") or None
            if not token:
                return pages
        raise ProviderError(ProviderErrorKind.BAD_RESPONSE, f"{what}: more than {MAX_PAGES} pages")

    def _on_demand(self, cloud_region: str, *, what: str, started: float) -> float:
        filters = [
            {"Type": "TERM_MATCH", "Field": field, "Value": value}
            for field, value in (
                ("instanceType", self._vm),
                ("regionCode", cloud_region),
                ("operatingSystem", "Linux"),
                ("tenancy", "Shared"),
                ("preInstalledSw", "NA"),
                ("capacitystatus", "Used"),
            )
        ]
        pages = self._pages(
            self._pricing.get_products,
            {"ServiceCode": "AmazonEC2", "Filters": filters, "FormatVersion": "aws_v1"},
            key="PriceList",
            what=f"{what} GetProducts",
            started=started,
        )
        prices = [
            price
            for page in pages
            for item in page.get("PriceList", [])
            if (price := on_demand_hourly_usd(item, vm=self._vm, region=cloud_region)) is not None
        ]
        if not prices:
            raise ProviderError(
                ProviderErrorKind.NOT_FOUND, f"{what}: no Linux on-demand price in the Price List"
            )
        return min(prices)

    def _spot(self, cloud_region: str, *, what: str, started: float) -> float | None:
        ec2 = self._client("ec2", cloud_region, self._ec2_endpoint)
        try:
            pages = self._pages(
                ec2.describe_spot_price_history,
                {
                    "InstanceTypes": [self._vm],
                    "ProductDescriptions": ["Linux/UNIX"],
                    "StartTime": self._now(),
                },
                key="SpotPriceHistory",
                what=f"{what} DescribeSpotPriceHistory",
                started=started,
            )
        finally:
            ec2.close()
        return spot_median_usd(
            [row for page in pages for row in page.get("SpotPriceHistory", [])], vm=self._vm
        )


def spot_median_usd(rows: Sequence[Mapping[str, object]], *, vm: str) -> float | None:
    """The median over availability zones of each zone's latest Linux/UNIX spot price."""
    latest: dict[str, tuple[datetime, float]] = {}
    for row in rows:
        if row.get("InstanceType") != vm or row.get("ProductDescription") != "Linux/UNIX":
            continue
        zone, raw = row.get("AvailabilityZone"), row.get("SpotPrice")
        stamp = row.get("Timestamp")
        at = stamp if isinstance(stamp, datetime) else parse_instant(stamp)
        if not isinstance(zone, str) or not isinstance(raw, str) or at is None:
            continue
        try:
            price = float(raw)
        except ValueError:
            continue
        if zone not in latest or at > latest[zone][0]:
            latest[zone] = (at, price)
    if not latest:
        return None
    return statistics.median(price for _, price in latest.values())


def on_demand_hourly_usd(item: object, *, vm: str, region: str) -> float | None:
    """The hourly USD of one Price List product (a JSON string), if it is the one asked for."""
    try:
        document: object = json.loads(item) if isinstance(item, str) else item
    except ValueError:
        return None
    product = as_object(as_object(document) or {})
    if product is None:
        return None
    attributes = as_object((as_object(product.get("product")) or {}).get("attributes")) or {}
    if attributes.get("instanceType") != vm or attributes.get("regionCode", region) != region:
        return None
    if attributes.get("operatingSystem") != "Linux" or attributes.get("tenancy", "Shared") != "Shared":
        return None
    terms = as_object((as_object(product.get("terms")) or {}).get("OnDemand")) or {}
    for term in terms.values():
        for dimension in (as_object((as_object(term) or {}).get("priceDimensions")) or {}).values():
            entry = as_object(dimension) or {}
            if entry.get("unit") not in ("Hrs", "Hours"):
                continue
            usd = (as_object(entry.get("pricePerUnit")) or {}).get("USD")
            try:
                price = float(usd) if isinstance(usd, str) else None
            except ValueError:
                price = None
            if price is not None and price > 0:
                return price
    return None


def _cap_body(response_dict: Mapping[str, Any] | None = None, **_: Any) -> None:
    body = (response_dict or {}).get("body", b"")
    if isinstance(body, bytes | bytearray) and len(body) > MAX_RESPONSE_BYTES:
        raise ProviderError(
            ProviderErrorKind.BAD_RESPONSE, f"aws: response body exceeds {MAX_RESPONSE_BYTES} bytes"
        )


def _call(call: Any, kwargs: dict[str, Any], *, what: str) -> dict[str, Any]:
    from botocore.exceptions import (  # noqa: PLC0415 - botocore is an optional extra
        BotoCoreError,
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        ReadTimeoutError,
    )

    try:
        answer: dict[str, Any] = call(**kwargs)
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        message = f"{what}: {code or 'error'} (HTTP {status})"
        if code in _THROTTLED or status == 429:
            headers = error.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
            retry = _retry_after(headers.get("retry-after"))
            raise ProviderError(ProviderErrorKind.RATE_LIMITED, message, retry_after_seconds=retry) from None
        if code in _AUTH or status in (401, 403):
            raise ProviderError(ProviderErrorKind.AUTH, message) from None
        if status >= 500:
            raise ProviderError(ProviderErrorKind.UNAVAILABLE, message) from None
        if 300 <= status < 400:
            raise ProviderError(
                ProviderErrorKind.CONFIG, f"{message} (redirect: check the endpoint)"
            ) from None
        raise ProviderError(ProviderErrorKind.BAD_RESPONSE, message) from None
    except NoCredentialsError:
        raise ProviderError(ProviderErrorKind.AUTH, f"{what}: no AWS credentials found") from None
    except (ConnectTimeoutError, ReadTimeoutError):
        raise ProviderError(ProviderErrorKind.TIMEOUT, f"{what}: timed out") from None
    except EndpointConnectionError:
        raise ProviderError(ProviderErrorKind.UNAVAILABLE, f"{what}: connection failed") from None
    except BotoCoreError as error:  # an unparseable answer, among others
        raise ProviderError(ProviderErrorKind.BAD_RESPONSE, f"{what}: {type(error).__name__}") from None
    return answer


def _retry_after(value: object) -> float | None:
    from core.signals.http import parse_retry_after  # noqa: PLC0415

    return parse_retry_after(value if isinstance(value, str) else None, now=utc_now())


def aws_from_env(
    env: Mapping[str, str], *, settings: AwsPriceSettings, clock: Clock = utc_now
) -> AwsPriceProvider:
    """botocore's default session and credential chain; AWS_ENDPOINT_URL_EC2 / _PRICING point it elsewhere
    (https://, or http:// with ECOPULSE_ALLOW_INSECURE_PROVIDER_URLS=true, for local test servers)."""
    try:
        import botocore.session  # noqa: PLC0415 - botocore is an optional extra
    except ImportError:
        raise ProviderError(
            ProviderErrorKind.CONFIG, "aws: botocore is not installed (pip install 'eco-pulse[aws]')"
        ) from None
    allow_insecure = allow_insecure_from_env(env)
    endpoints: dict[str, str | None] = {}
    for variable in (EC2_ENDPOINT_ENV, PRICING_ENDPOINT_ENV):
        url = env.get(variable, "").strip() or None
        if url is not None:
            require_secure_url(url, provider="aws", setting=variable, allow_insecure=allow_insecure)
        endpoints[variable] = url
    return AwsPriceProvider(
        session=botocore.session.get_session(),
        reference_vm=settings.reference_vm,
        regions=settings.regions,
        ec2_endpoint=endpoints[EC2_ENDPOINT_ENV],
        pricing_endpoint=endpoints[PRICING_ENDPOINT_ENV],
        now=clock,
    )
