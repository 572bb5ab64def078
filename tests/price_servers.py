"""Local servers that speak the real price APIs' wire protocols, for the provider tests and e2e.

Each is a real HTTP server on 127.0.0.1 (a thread), scripted through its attributes: prices,
page size, the next answers' status and Retry-After, a redirect, an oversized or garbage body.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

Handler = Callable[[BaseHTTPRequestHandler, str, dict[str, list[str]], bytes], None]


@dataclass
class Scripted:
    """What the next requests get instead of a normal answer (first in, first out)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass
class LocalServer:
    url: str = ""
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    script: list[Scripted] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    def stop(self) -> None:
        """Take the server down (connections refused from now on), as an outage would."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def next_scripted(self) -> Scripted | None:
        with self.lock:
            return self.script.pop(0) if self.script else None


def send_json(handler: BaseHTTPRequestHandler, body: object, status: int = 200) -> None:
    data = json.dumps(body).encode()
    send_bytes(handler, data, status=status, content_type="application/json")


def send_bytes(
    handler: BaseHTTPRequestHandler,
    data: bytes,
    *,
    status: int = 200,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> None:
    handler.send_response(status)
    handler.send_header("content-type", content_type)
    handler.send_header("content-length", str(len(data)))
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(data)


@contextmanager
def serve(state: LocalServer, answer: Handler) -> Iterator[LocalServer]:
    """Serve ``answer`` for GET and POST; a scripted reply, when there is one, goes first."""

    class RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            state.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
            scripted = state.next_scripted()
            if scripted is not None:
                send_bytes(self, scripted.body, status=scripted.status, headers=scripted.headers)
                return
            parts = urlsplit(self.path)
            answer(self, parts.path, parse_qs(parts.query), body)

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), RequestHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_port}"
    state.server = server
    try:
        yield state
    finally:
        state.stop()


# --- Azure Retail Prices ------------------------------------------------------------------------

AZURE_PATH = "/api/retail/prices"
LATER = "2025-06-01T00:00:00Z"


def azure_row(
    *,
    region: str,
    sku: str,
    price: float,
    sku_name: str | None = None,
    product: str = "Virtual Machines Dsv5 Series",
    type_: str = "Consumption",
    unit: str = "1 Hour",
    effective: str = "2024-01-01T00:00:00Z",
) -> dict[str, object]:
    """One Items row as the API returns it (field names and casing as documented)."""
    return {
        "currencyCode": "USD",
        "tierMinimumUnits": 0.0,
        "retailPrice": price,
        "unitPrice": price,
        "armRegionName": region,
        "location": region,
        "effectiveStartDate": effective,
        "meterId": f"meter-{sku}-{sku_name}",
        "meterName": sku_name or sku.removeprefix("Standard_").replace("_", " "),
        "productId": "DZH318Z0BQ4L",
        "skuId": "DZH318Z0BQ4L/00TG",
        "productName": product,
        "skuName": sku_name or sku.removeprefix("Standard_").replace("_", " "),
        "serviceName": "Virtual Machines",
        "serviceId": "DZH313Z7MMC8",
        "serviceFamily": "Compute",
        "unitOfMeasure": unit,
        "type": type_,
        "isPrimaryMeterRegion": True,
        "armSkuName": sku,
    }


def azure_rows(region: str, sku: str, *, on_demand: float, spot: float | None) -> list[dict[str, object]]:
    """The rows the real API returns for one VM in one region: Linux and Windows, on-demand, spot,
    low priority, reservations, and an announced future price: all but two are decoys."""
    name = sku.removeprefix("Standard_").replace("_", " ")
    windows = "Virtual Machines Dsv5 Series Windows"
    # The decoys are newer than the real rows: only the rules keep them out.
    rows = [
        azure_row(region=region, sku=sku, price=on_demand * 0.9, effective="2022-06-01T00:00:00Z"),
        azure_row(region=region, sku=sku, price=on_demand),
        azure_row(region=region, sku=sku, price=on_demand * 5, effective="2999-01-01T00:00:00Z"),
        azure_row(region=region, sku=sku, price=on_demand * 1.8, product=windows, effective=LATER),
        azure_row(
            region=region, sku=sku, price=on_demand * 0.2, sku_name=f"{name} Low Priority", effective=LATER
        ),
        azure_row(
            region=region,
            sku=sku,
            price=on_demand * 6000,
            type_="Reservation",
            unit="1 Year",
            effective=LATER,
        ),
        azure_row(
            region=region, sku=sku, price=on_demand * 0.01, type_="DevTestConsumption", effective=LATER
        ),
        azure_row(region=region, sku=sku, price=on_demand * 100, unit="1/Month", effective=LATER),
    ]
    if spot is not None:
        rows.append(azure_row(region=region, sku=sku, price=spot, sku_name=f"{name} Spot"))
        rows.append(
            azure_row(
                region=region,
                sku=sku,
                price=spot * 2,
                sku_name=f"{name} Spot",
                product=windows,
                effective=LATER,
            )
        )
    return rows


@dataclass
class AzurePrices(LocalServer):
    """The Azure Retail Prices API: ``$filter`` on serviceName, armRegionName and armSkuName,
    ``NextPageLink`` paging with ``$skip`` (page size ``page_size``; the real one is 100 or 1000)."""

    # (armRegionName, armSkuName) -> (on-demand $/h, spot $/h or None)
    vms: dict[tuple[str, str], tuple[float, float | None]] = field(default_factory=dict)
    page_size: int = 3
    next_link_host: str | None = None  # a NextPageLink to another host (a decoy)
    endless: bool = False  # a NextPageLink on every page, rows or not

    def answer(
        self, handler: BaseHTTPRequestHandler, path: str, query: dict[str, list[str]], _: bytes
    ) -> None:
        if path != AZURE_PATH:
            send_json(handler, {"Error": {"Code": "NotFound"}}, status=404)
            return
        wanted = _azure_filter(query.get("$filter", [""])[0])
        rows: list[dict[str, object]] = []
        for (region, sku), (on_demand, spot) in sorted(self.vms.items()):
            if wanted.get("armRegionName", region) == region and wanted.get("armSkuName", sku) == sku:
                rows.extend(azure_rows(region, sku, on_demand=on_demand, spot=spot))
        skip = int(query.get("$skip", ["0"])[0])
        page = rows[skip : skip + self.page_size]
        next_link = None
        if skip + self.page_size < len(rows) or self.endless:
            host = self.next_link_host or self.url
            filter_text = query.get("$filter", [""])[0].replace(" ", "%20").replace("'", "%27")
            next_link = f"{host}{AZURE_PATH}?$filter={filter_text}&$skip={skip + self.page_size}"
        send_json(
            handler,
            {
                "BillingCurrency": "USD",
                "CustomerEntityId": "Default",
                "CustomerEntityType": "Retail",
                "Items": page,
                "NextPageLink": next_link,
                "Count": len(page),
            },
        )


def _azure_filter(text: str) -> dict[str, str]:
    """``a eq 'x' and b eq 'y'`` -> {a: x, b: y} (the only OData the provider sends)."""
    found: dict[str, str] = {}
    for clause in text.split(" and "):
        key, _, value = clause.strip().partition(" eq ")
        found[key.strip()] = value.strip().strip("'")
    return found


@contextmanager
def azure_prices(vms: dict[tuple[str, str], tuple[float, float | None]]) -> Iterator[AzurePrices]:
    state = AzurePrices(vms=dict(vms))
    with serve(state, state.answer):
        yield state


# --- GCP Cloud Billing Catalog -------------------------------------------------------------------

GCP_SKUS_PATH = "/v1/services/6F81-5844-456A/skus"
GCP_REGION_NAMES = {"europe-west1": "Belgium", "us-central1": "Americas", "europe-west3": "Frankfurt"}


def gcp_sku(
    description: str,
    *,
    regions: list[str],
    usd: float,
    usage_type: str = "OnDemand",
    group: str = "N2Standard",
    unit: str = "h",
    family: str = "Compute",
) -> dict[str, object]:
    """One SKU as the catalogue lists it; the price as google.type.Money (units + nanos)."""
    units = int(usd)
    nanos = round((usd - units) * 1e9)
    return {
        "name": f"services/6F81-5844-456A/skus/{abs(hash((description, usage_type))) % 10**12:012X}",
        "skuId": f"{abs(hash((description, usage_type))) % 10**12:012X}",
        "description": description,
        "category": {
            "serviceDisplayName": "Compute Engine",
            "resourceFamily": family,
            "resourceGroup": group,
            "usageType": usage_type,
        },
        "serviceRegions": regions,
        "pricingInfo": [
            {
                "summary": "",
                "pricingExpression": {
                    "usageUnit": unit,
                    "displayQuantity": 1,
                    "tieredRates": [
                        {
                            "startUsageAmount": 0,
                            "unitPrice": {"currencyCode": "USD", "units": str(units), "nanos": nanos},
                        }
                    ],
                    "usageUnitDescription": "hour" if unit == "h" else "gibibyte hour",
                    "baseUnit": "s" if unit == "h" else "By.s",
                    "baseUnitConversionFactor": 3600 if unit == "h" else 3865470566400,
                    "baseUnitDescription": "second" if unit == "h" else "byte second",
                },
                "aggregationInfo": {
                    "aggregationLevel": "ACCOUNT",
                    "aggregationInterval": "DAILY",
                    "aggregationCount": 1,
                },
                "currencyConversionRate": 1,
                "effectiveTime": "2026-11-20T09:00:00.000Z",
            }
        ],
        "serviceProviderName": "Google",
        "geoTaxonomy": {"type": "REGIONAL", "regions": regions},
    }


def gcp_skus(
    region: str, *, core: float, ram: float, spot_core: float | None, spot_ram: float | None
) -> list[dict[str, object]]:
    """A region's N2 SKUs as the catalogue has them, among decoys: N2D, custom, sole tenancy,
    commitments, another family, and the price of another unit."""
    where = GCP_REGION_NAMES.get(region, region)
    skus = [
        gcp_sku(f"N2 Instance Core running in {where}", regions=[region], usd=core),
        gcp_sku(f"N2 Instance Ram running in {where}", regions=[region], usd=ram, unit="GiBy.h"),
        gcp_sku(f"N2D AMD Instance Core running in {where}", regions=[region], usd=core * 0.8),
        gcp_sku(f"N2 Custom Instance Core running in {where}", regions=[region], usd=core * 1.05),
        gcp_sku(f"N2 Sole Tenancy Instance Core running in {where}", regions=[region], usd=core * 1.1),
        gcp_sku(
            f"Commitment v1: N2 Cpu in {where} for 1 Year",
            regions=[region],
            usd=core * 0.6,
            usage_type="Commit1Yr",
        ),
        gcp_sku(
            f"N2 Instance Core running in {where}", regions=[region], usd=core * 0.6, usage_type="Commit1Yr"
        ),
        gcp_sku(f"N2 Instance Ram running in {where}", regions=[region], usd=ram * 9, unit="GiBy.mo"),
        gcp_sku(
            f"Storage PD Capacity in {where}", regions=[region], usd=0.04, family="Storage", unit="GiBy.mo"
        ),
    ]
    if spot_core is not None and spot_ram is not None:
        skus += [
            gcp_sku(
                f"Spot Preemptible N2 Instance Core running in {where}",
                regions=[region],
                usd=spot_core,
                usage_type="Preemptible",
            ),
            gcp_sku(
                f"Spot Preemptible N2 Instance Ram running in {where}",
                regions=[region],
                usd=spot_ram,
                usage_type="Preemptible",
                unit="GiBy.h",
            ),
        ]
    return skus


@dataclass
class GcpCatalog(LocalServer):
    """``GET /v1/services/6F81-5844-456A/skus``: the API key in the X-Goog-Api-Key header (or ``key``),
    ``pageSize`` and ``pageToken`` paging (here ``page_size`` SKUs a page at most)."""

    api_key: str = ""
    # region -> (core, ram, spot core, spot ram) USD per hour
    regions: dict[str, tuple[float, float, float | None, float | None]] = field(default_factory=dict)
    page_size: int = 4
    filler: int = 0  # decoy SKUs of other series, as many as the real catalogue has

    def answer(
        self, handler: BaseHTTPRequestHandler, path: str, query: dict[str, list[str]], _: bytes
    ) -> None:
        key = handler.headers.get("x-goog-api-key") or query.get("key", [""])[0]
        if key != self.api_key:
            send_json(
                handler,
                {"error": {"code": 403, "message": "API key not valid.", "status": "PERMISSION_DENIED"}},
                status=403,
            )
            return
        if path != GCP_SKUS_PATH:
            send_json(handler, {"error": {"code": 404, "status": "NOT_FOUND"}}, status=404)
            return
        skus: list[dict[str, object]] = []
        for region, (core, ram, spot_core, spot_ram) in sorted(self.regions.items()):
            skus += gcp_skus(region, core=core, ram=ram, spot_core=spot_core, spot_ram=spot_ram)
        if self.filler:
            filler = gcp_sku("E2 Instance Core running in Elsewhere", regions=["elsewhere1"], usd=0.02)
            skus += [filler] * self.filler  # the same decoy again and again: cheap to serve
        size = min(self.page_size, int(query.get("pageSize", ["5000"])[0]))
        start = int(query.get("pageToken", ["0"])[0] or 0)
        body: dict[str, object] = {"skus": skus[start : start + size], "nextPageToken": ""}
        if start + size < len(skus):
            body["nextPageToken"] = str(start + size)
        send_json(handler, body)


@contextmanager
def gcp_catalog(
    api_key: str, regions: dict[str, tuple[float, float, float | None, float | None]]
) -> Iterator[GcpCatalog]:
    state = GcpCatalog(api_key=api_key, regions=dict(regions))
    with serve(state, state.answer):
        yield state


# --- AWS: EC2 (Query protocol, XML) and the Price List API (JSON 1.1) ----------------------------

AWS_ACCESS_KEY = "AKIDECOPULSETEST0001"
AWS_SECRET_KEY = "eco/pulse+SECRET/key/for/the/fake/aws0001"  # a test credential


def verify_sigv4(handler: BaseHTTPRequestHandler, body: bytes, *, service: str) -> str | None:
    """None when the request carries a valid SigV4 signature for ``service``, else why not.

    The signature is recomputed with botocore's own signer (SigV4Auth) from the headers the
    request says it signed, its timestamp and the shared secret, and compared with the one sent.
    """
    authorization = handler.headers.get("authorization", "")
    algorithm, _, rest = authorization.partition(" ")
    if algorithm != "AWS4-HMAC-SHA256":
        return "not signed with AWS4-HMAC-SHA256"
    fields = dict(part.strip().split("=", 1) for part in rest.split(",") if "=" in part)
    access_key, date, region, signed_service, terminator = fields.get("Credential", "////").split("/", 4)
    if access_key != AWS_ACCESS_KEY or signed_service != service or terminator != "aws4_request":
        return f"wrong credential scope {fields.get('Credential')}"
    timestamp = handler.headers.get("x-amz-date", "")
    if timestamp[:8] != date:
        return "x-amz-date and the credential scope disagree"
    signed_headers = fields.get("SignedHeaders", "").split(";")
    request = AWSRequest(
        method=handler.command,
        url=f"http://{handler.headers.get('host')}{handler.path}",
        data=body,
        headers={name: handler.headers.get(name, "") for name in signed_headers},
    )
    request.context["timestamp"] = timestamp
    signer = SigV4Auth(Credentials(AWS_ACCESS_KEY, AWS_SECRET_KEY), service, region)
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    if expected != fields.get("Signature"):
        return "signature mismatch"
    return None


@dataclass
class FakeAws(LocalServer):
    """One endpoint for both services (a test points AWS_ENDPOINT_URL_EC2 and _PRICING at it):
    EC2 ``DescribeSpotPriceHistory`` (form-encoded POST, XML answer, ``NextToken`` paging) and
    Price List ``GetProducts`` (``X-Amz-Target``, JSON 1.1, price list items as JSON strings)."""

    # region -> on-demand $/h of the instance type
    on_demand: dict[str, float] = field(default_factory=dict)
    # region -> [(zone, $/h, ISO timestamp)] spot history, newest last
    spot: dict[str, list[tuple[str, float, str]]] = field(default_factory=dict)
    instance_type: str = "m5.large"
    page_size: int = 2
    bad_signatures: list[str] = field(default_factory=list)

    def answer(
        self, handler: BaseHTTPRequestHandler, path: str, query: dict[str, list[str]], body: bytes
    ) -> None:
        target = handler.headers.get("x-amz-target", "")
        service = "pricing" if target.startswith("AWSPriceListService.") else "ec2"
        problem = verify_sigv4(handler, body, service=service)
        if problem is not None:
            self.bad_signatures.append(problem)
            if service == "pricing":
                send_json(handler, {"__type": "InvalidSignatureException", "message": problem}, status=403)
            else:
                send_bytes(
                    handler, _ec2_error("SignatureDoesNotMatch", problem), status=403, content_type="text/xml"
                )
            return
        if service == "pricing":
            self._get_products(handler, json.loads(body or b"{}"))
        else:
            self._spot_history(handler, {k: v[0] for k, v in parse_qs(body.decode()).items()})

    def _get_products(self, handler: BaseHTTPRequestHandler, request: dict[str, object]) -> None:
        filters = {
            str(f["Field"]): str(f["Value"])
            for f in request.get("Filters", [])  # type: ignore[attr-defined]
            if isinstance(f, dict)
        }
        items: list[str] = []
        for region, price in sorted(self.on_demand.items()):
            for os_name, tenancy, factor in (
                ("Linux", "Shared", 1.0),
                ("Windows", "Shared", 1.9),
                ("Linux", "Dedicated", 1.3),
            ):
                product = {
                    "product": {
                        "productFamily": "Compute Instance",
                        "attributes": {
                            "instanceType": self.instance_type,
                            "regionCode": region,
                            "operatingSystem": os_name,
                            "tenancy": tenancy,
                            "preInstalledSw": "NA",
                            "capacitystatus": "Used",
                            "vcpu": "2",
                            "memory": "8 GiB",
                        },
                        "sku": f"SKU{region}{os_name}{tenancy}",
                    },
                    "serviceCode": "AmazonEC2",
                    "terms": {
                        "OnDemand": {
                            f"SKU.{region}.JRTCKXETXF": {
                                "priceDimensions": {
                                    f"SKU.{region}.JRTCKXETXF.6YS6EN2CT7": {
                                        "unit": "Hrs",
                                        "pricePerUnit": {"USD": f"{price * factor:.10f}"},
                                        "description": f"${price * factor} per On Demand {os_name} {self.instance_type}",
                                    }
                                },
                                "effectiveDate": "2026-11-01T00:00:00Z",
                            }
                        },
                        "Reserved": {
                            "x": {
                                "priceDimensions": {
                                    "y": {"unit": "Hrs", "pricePerUnit": {"USD": "0.0100000000"}}
                                }
                            }
                        },
                    },
                    "version": "20261101000000",
                    "publicationDate": "2026-11-01T00:00:00Z",
                }
                attributes = {
                    "instanceType": self.instance_type,
                    "regionCode": region,
                    "operatingSystem": os_name,
                }
                attributes |= {"tenancy": tenancy, "preInstalledSw": "NA", "capacitystatus": "Used"}
                # The API's TERM_MATCH filters, as the real one applies them.
                if all(attributes.get(k) == v for k, v in filters.items()):
                    items.append(json.dumps(product))
        start = int(str(request.get("NextToken") or 0))
        answer: dict[str, object] = {
            "FormatVersion": "aws_v1",
            "PriceList": items[start : start + self.page_size],
        }
        if start + self.page_size < len(items):
            answer["NextToken"] = str(start + self.page_size)
        send_bytes(handler, json.dumps(answer).encode(), content_type="application/x-amz-json-1.1")

    def _spot_history(self, handler: BaseHTTPRequestHandler, form: dict[str, str]) -> None:
        if form.get("Action") != "DescribeSpotPriceHistory":
            send_bytes(handler, _ec2_error("InvalidAction", "no"), status=400, content_type="text/xml")
            return
        region = handler.headers.get("authorization", "").split("/")[2]
        rows = [
            (zone, price, at, product)
            for zone, price, at in self.spot.get(region, [])
            for product in ("Linux/UNIX", "Windows", "SUSE Linux")
            if form.get("ProductDescription.1", product) == product
        ]
        start = int(form.get("NextToken") or 0)
        page = rows[start : start + self.page_size]
        items = "".join(
            f"<item><instanceType>{self.instance_type}</instanceType><productDescription>{product}</productDescription>"
            f"<spotPrice>{price * (1 if product == 'Linux/UNIX' else 3):.6f}</spotPrice><timestamp>{at}</timestamp>"
            f"<availabilityZone>{zone}</availabilityZone></item>"
            for zone, price, at, product in page
        )
        token = (
            f"<nextToken>{start + self.page_size}</nextToken>"
            if start + self.page_size < len(rows)
            else "<nextToken/>"
        )
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<DescribeSpotPriceHistoryResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
            f"<requestId>59dbff89-35bd-4eac-99ed-be587EXAMPLE</requestId><spotPriceHistorySet>{items}</spotPriceHistorySet>"
            f"{token}</DescribeSpotPriceHistoryResponse>"
        )
        send_bytes(handler, xml.encode(), content_type="text/xml;charset=UTF-8")


def _ec2_error(code: str, message: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{code}</Code>'
        f"<Message>{message}</Message></Error></Errors><RequestID>ea966190-f9aa-478e-9ede-example</RequestID></Response>"
    ).encode()


@contextmanager
def fake_aws(on_demand: dict[str, float], spot: dict[str, list[tuple[str, float, str]]]) -> Iterator[FakeAws]:
    state = FakeAws(on_demand=dict(on_demand), spot=dict(spot))
    with serve(state, state.answer):
        yield state


# --- OpenCost's node cost series, for a real Prometheus to scrape ---------------------------------


@dataclass
class OpenCostNode:
    name: str
    region: str
    cpu_hour_usd: float
    ram_gib_hour_usd: float
    spot: bool
    instance_type: str = "m5.large"


@dataclass
class OpenCostExporter(LocalServer):
    """``GET /metrics``: node_cpu_hourly_cost, node_ram_hourly_cost and kubecost_node_is_spot, named,
    helped and labelled as OpenCost exports them (instance, node, instance_type, region, provider_id,
    arch, uid), plus node_total_hourly_cost as a decoy."""

    nodes: list[OpenCostNode] = field(default_factory=list)

    def answer(
        self, handler: BaseHTTPRequestHandler, path: str, query: dict[str, list[str]], _: bytes
    ) -> None:
        if path != "/metrics":
            send_bytes(handler, b"404 page not found\n", status=404, content_type="text/plain")
            return
        families: dict[str, tuple[str, Callable[[OpenCostNode], float]]] = {
            "node_cpu_hourly_cost": (
                "node_cpu_hourly_cost hourly cost for each cpu on this node",
                lambda n: n.cpu_hour_usd,
            ),
            "node_ram_hourly_cost": (
                "node_ram_hourly_cost hourly cost for each gb of ram on this node",
                lambda n: n.ram_gib_hour_usd,
            ),
            "node_total_hourly_cost": (
                "node_total_hourly_cost Total node cost per hour",
                lambda n: 2 * n.cpu_hour_usd + 8 * n.ram_gib_hour_usd,
            ),
            "kubecost_node_is_spot": (
                "kubecost_node_is_spot Cloud provider info about node preemptibility",
                lambda n: 1.0 if n.spot else 0.0,
            ),
        }
        lines: list[str] = []
        for name, (help_text, value) in families.items():
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
            for node in self.nodes:
                labels = (
                    f'arch="amd64",instance="{node.name}",instance_type="{node.instance_type}",node="{node.name}",'
                    f'provider_id="aws:///{node.region}a/i-{abs(hash(node.name)) % 10**17:017x}",'
                    f'region="{node.region}",uid="{abs(hash(node.name)) % 10**8:08d}"'
                )
                lines.append(f"{name}{{{labels}}} {value(node)!r}")
        send_bytes(
            handler,
            ("\n".join(lines) + "\n").encode(),
            content_type="text/plain; version=0.0.4; charset=utf-8",
        )


@contextmanager
def opencost_exporter(nodes: list[OpenCostNode]) -> Iterator[OpenCostExporter]:
    state = OpenCostExporter(nodes=list(nodes))
    with serve(state, state.answer):
        yield state
