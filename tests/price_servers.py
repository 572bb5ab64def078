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
    stopped: bool = False

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
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


# --- Azure Retail Prices ------------------------------------------------------------------------

AZURE_PATH = "/api/retail/prices"


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
    rows = [
        azure_row(region=region, sku=sku, price=on_demand * 0.9, effective="2022-06-01T00:00:00Z"),
        azure_row(region=region, sku=sku, price=on_demand),
        azure_row(region=region, sku=sku, price=on_demand * 5, effective="2999-01-01T00:00:00Z"),
        azure_row(
            region=region, sku=sku, price=on_demand * 1.8, product="Virtual Machines Dsv5 Series Windows"
        ),
        azure_row(region=region, sku=sku, price=on_demand * 0.2, sku_name=f"{name} Low Priority"),
        azure_row(region=region, sku=sku, price=on_demand * 6000, type_="Reservation", unit="1 Year"),
        azure_row(region=region, sku=sku, price=on_demand * 0.01, type_="DevTestConsumption"),
    ]
    if spot is not None:
        rows.append(azure_row(region=region, sku=sku, price=spot, sku_name=f"{name} Spot"))
        rows.append(
            azure_row(
                region=region,
                sku=sku,
                price=spot * 2,
                sku_name=f"{name} Spot",
                product="Virtual Machines Dsv5 Series Windows",
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
        if skip + self.page_size < len(rows):
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
