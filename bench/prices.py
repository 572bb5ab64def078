"""A full price refresh per source: wall time and peak memory; and whether a refresh delays a review.

Each source is a local server speaking its protocol (tests/price_servers.py), run in a child
process so that serving costs this process nothing: Azure (one reference VM in 10 regions),
GCP (a 30,000-SKU catalogue, the size of Compute Engine's), AWS (10 regions through botocore) and
OpenCost's series for 1,000 nodes as Prometheus answers them.

Then the review path: parse + decide of bench/decide.py's reviews, one at a time, timed each,
with and without a refresher thread refreshing GCP's catalogue back to back in the same process
(the GIL is what a refresh could take from a review), in interleaved rounds.

    python bench/prices.py
"""

from __future__ import annotations

import gc
import importlib.util
import json
import multiprocessing
import os
import statistics
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [str(HERE.parent), *(p for p in sys.path if Path(p or ".").resolve() != HERE)]

from core.config import EcoPulseConfiguration, PricingSettings, parse_config_text
from core.signals.prices.providers import build_price_provider
from core.signals.prices.refresher import PriceRefresher
from core.signals.refresher import SignalCache, SignalRefresher
from tests import price_servers as ps
from tests.conftest import MOCK_CONFIG
from webhook.admission.mutate import PlacementMemo, decide
from webhook.admission.review import parse_review

REGIONS = [
    "eastus", "eastus2", "westus2", "centralus", "northeurope", "westeurope", "uksouth",
    "francecentral", "swedencentral", "japaneast",
]  # fmt: skip
AWS_REGIONS = [
    "us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1", "eu-north-1", "ap-south-1",
    "ap-northeast-1", "ap-southeast-1", "ca-central-1",
]  # fmt: skip
VM = "Standard_D2s_v5"
KEY = "bench-key"
ENV = {"ECOPULSE_ALLOW_INSECURE_PROVIDER_URLS": "true", "GCP_BILLING_API_KEY": KEY}
REVIEWS = 5_000


def _serve_in_child(make: Callable[[], ps.LocalServer], ready: object) -> None:
    state = make()
    with ps.serve(state, state.answer):  # type: ignore[attr-defined]
        ready.put(state.url)  # type: ignore[attr-defined]
        threading.Event().wait()


@contextmanager
def child_server(make: Callable[[], ps.LocalServer]) -> Iterator[str]:
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=_serve_in_child, args=(make, queue), daemon=True)
    process.start()
    try:
        yield str(queue.get(timeout=30))
    finally:
        process.terminate()
        process.join(5)


def azure() -> ps.LocalServer:
    server = ps.AzurePrices(vms={(r, VM): (0.096, 0.0192) for r in REGIONS})
    server.page_size = 100  # the API's own page size
    return server


def gcp() -> ps.LocalServer:
    regions = dict.fromkeys(
        ("us-central1", "europe-west1", "europe-west3"), (0.031611, 0.004237, 0.0076, 0.001)
    )
    return ps.GcpCatalog(api_key=KEY, regions=regions, page_size=250, filler=30_000)


def aws() -> ps.LocalServer:
    stamp = "2026-11-20T11:00:00.000Z"
    regions = AWS_REGIONS
    return ps.FakeAws(
        on_demand=dict.fromkeys(regions, 0.096),
        spot={r: [(f"{r}{z}", 0.03 + i / 1000, stamp) for i, z in enumerate("abcdef")] for r in regions},
        page_size=100,
    )


class OpenCostApi(ps.LocalServer):
    """Prometheus' /api/v1/query answering OpenCost's three series for 1,000 nodes in 10 regions."""

    def answer(
        self, handler: BaseHTTPRequestHandler, path: str, query: dict[str, list[str]], _: bytes
    ) -> None:
        series = query.get("query", [""])[0]
        on_demand = {"node_cpu_hourly_cost": "0.031611", "node_ram_hourly_cost": "0.004237"}
        spot = {
            "node_cpu_hourly_cost": "0.0117",
            "node_ram_hourly_cost": "0.0016",
            "kubecost_node_is_spot": "1",
        }
        result = [
            {
                "metric": {
                    "__name__": series,
                    "node": f"node-{n}",
                    "region": REGIONS[n % 10],
                    "instance": f"node-{n}",
                },
                "value": [1.7e9, (spot if n % 3 == 0 else on_demand).get(series, "0")],
            }
            for n in range(1000)
        ]
        ps.send_json(handler, {"status": "success", "data": {"resultType": "vector", "result": result}})


def config_for(provider: str, url: str) -> EcoPulseConfiguration:
    regions = {
        "azure": REGIONS,
        "gcp": ["us-central1", "europe-west1", "europe-west3"],
        "aws": AWS_REGIONS,
        "opencost": REGIONS,
    }[provider]
    section = {
        "azure": f"azure: {{baseUrl: '{url}{ps.AZURE_PATH}'}}",
        "gcp": f"gcp: {{baseUrl: '{url}/v1'}}",
        "aws": "aws: {}",
        "opencost": f"opencost: {{prometheusUrl: '{url}'}}",
    }[provider]
    regions_yaml = "".join(f"  - {{name: {r}, zone: DE}}\n" for r in regions)
    return parse_config_text(
        f"regions:\n{regions_yaml}pricing:\n  provider: {provider}\n  refreshSeconds: 60\n"
        f"  maxStaleSeconds: 600\n  maxChangeFactor: 100\n  {section}\n"
    )


def refresher_for(provider: str, url: str) -> PriceRefresher:
    env = dict(ENV)
    if provider == "aws":
        env |= {"AWS_ENDPOINT_URL_EC2": url, "AWS_ENDPOINT_URL_PRICING": url}
        os.environ.update(
            AWS_ACCESS_KEY_ID=ps.AWS_ACCESS_KEY,
            AWS_SECRET_ACCESS_KEY=ps.AWS_SECRET_KEY,
            AWS_CONFIG_FILE="/dev/null",
            AWS_SHARED_CREDENTIALS_FILE="/dev/null",
            AWS_EC2_METADATA_DISABLED="true",
        )

    def factory(settings: PricingSettings) -> object:
        return build_price_provider(settings, environ=env)

    return PriceRefresher(config=config_for(provider, url), provider_factory=factory)  # type: ignore[arg-type]


def measure(provider: str, make: Callable[[], ps.LocalServer]) -> None:
    with child_server(make) as url:
        refresher = refresher_for(provider, url)
        report = refresher.refresh_once()  # warm: imports, connections
        assert not report.failed, report.failed
        times = []
        for _ in range(5):
            started = time.perf_counter()
            refresher.refresh_once()
            times.append(time.perf_counter() - started)
        gc.collect()
        tracemalloc.start()
        refresher.refresh_once()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(
            f"{provider:<9} refresh {statistics.median(times) * 1000:8.1f} ms (median of 5), "
            f"peak {peak / 1024 / 1024:6.2f} MiB allocated, {len(report.priced)} regions priced"
        )


def review_latencies(stop_refreshing: threading.Event | None, url: str) -> list[float]:
    spec = importlib.util.spec_from_file_location("bench_webhook", HERE / "webhook.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    bodies = [json.dumps(module.distinct_review(i)).encode() for i in range(REVIEWS)]
    config = parse_config_text(MOCK_CONFIG)
    signals_refresher = SignalRefresher(
        config=config, cache=SignalCache(), prices=PriceRefresher(config=config)
    )
    signals_refresher.refresh_once()
    memo = PlacementMemo()
    gc.freeze()  # as the webhook does once started (webhook/server.py): its long-lived heap is not rescanned
    background = None
    if stop_refreshing is not None:
        prices = refresher_for("gcp", url)

        def loop() -> None:
            while not stop_refreshing.is_set():
                prices.refresh_once()

        background = threading.Thread(target=loop, daemon=True)
        background.start()
    latencies = []
    for body in bodies:
        started = time.perf_counter()
        decide(parse_review(body), signals=signals_refresher.snapshot(), config=config, memo=memo)
        latencies.append(time.perf_counter() - started)
    if stop_refreshing is not None and background is not None:
        stop_refreshing.set()
        background.join(30)
    return latencies


def main() -> int:
    if "--reviews-only" not in sys.argv:
        measure("azure", azure)
        measure("gcp", gcp)
        measure("aws", aws)
        measure("opencost", OpenCostApi)
    with child_server(gcp) as url:
        for round_ in range(3):
            for label, stop in (("idle", None), ("refreshing", threading.Event())):
                lat = sorted(review_latencies(stop, url))
                p50, p99 = lat[len(lat) // 2], lat[int(len(lat) * 0.99)]
                print(
                    f"round {round_ + 1} reviews, prices {label:<10}: p50 {p50 * 1e6:7.1f} us, "
                    f"p99 {p99 * 1e6:7.1f} us, max {lat[-1] * 1e3:6.2f} ms"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
