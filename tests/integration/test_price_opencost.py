"""OpenCostPriceProvider through the real Prometheus (Debian's, `make prometheus`) scraping a small
exporter that serves OpenCost's node cost series exactly as OpenCost names and labels them."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from core.model import Region
from core.signals.base import ProviderError, ProviderErrorKind
from core.signals.prices.base import PriceFetch, RegionPrices, ResourcePrices
from core.signals.prices.opencost import OpenCostPriceProvider, opencost_from_env
from tests.price_servers import OpenCostExporter, OpenCostNode, Scripted, opencost_exporter, serve

NODES = [
    OpenCostNode(
        name="ip-10-0-1-1", region="us-east-1", cpu_hour_usd=0.031611, ram_gib_hour_usd=0.004237, spot=False
    ),
    OpenCostNode(
        name="ip-10-0-1-2", region="us-east-1", cpu_hour_usd=0.033, ram_gib_hour_usd=0.0045, spot=False
    ),
    OpenCostNode(
        name="ip-10-0-1-3", region="us-east-1", cpu_hour_usd=0.035, ram_gib_hour_usd=0.0047, spot=False
    ),
    OpenCostNode(
        name="ip-10-0-2-1", region="us-east-1", cpu_hour_usd=0.0117, ram_gib_hour_usd=0.0016, spot=True
    ),
    OpenCostNode(
        name="ip-10-1-0-1", region="eu-north-1", cpu_hour_usd=0.029, ram_gib_hour_usd=0.0039, spot=False
    ),
]
VIRGINIA, STOCKHOLM = Region(name="us-east-1", zone="US-MIDA-PJM"), Region(name="eu-north-1", zone="SE-SE3")
IRELAND = Region(name="eu-west-1", zone="IE")


@pytest.fixture(scope="module")
def exporter() -> Iterator[OpenCostExporter]:
    with opencost_exporter(NODES) as state:
        yield state


@pytest.fixture(scope="module")
def prometheus(exporter: OpenCostExporter, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: run `make prometheus` (hack/install-prometheus.sh)")
    root = tmp_path_factory.mktemp("prometheus")
    config = {
        "global": {"scrape_interval": "1s"},
        # As OpenCost's documentation says to scrape it: its instance and node labels kept.
        "scrape_configs": [
            {
                "job_name": "opencost",
                "honor_labels": True,
                "static_configs": [{"targets": [exporter.url.removeprefix("http://")]}],
            }
        ],
    }
    (root / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = _free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={root / 'prometheus.yml'}",
            f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(root / "prometheus.log").open("wb"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_series(url, root / "prometheus.log")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_series(url: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(
                f"{url}/api/v1/query?query=count(kubecost_node_is_spot)", timeout=2
            ) as answer:
                if b'"5"' in answer.read():
                    return
        except OSError:
            pass
        time.sleep(0.3)
    pytest.fail(f"prometheus never scraped the exporter: {log.read_text()[-2000:]}")


def fetch(url: str, *regions: Region) -> PriceFetch:
    provider = OpenCostPriceProvider(
        client=httpx.Client(timeout=5.0, trust_env=False), base_url=url, allow_insecure_http=True
    )
    try:
        return provider.fetch(regions)
    finally:
        provider.close()


def test_the_median_node_price_per_region_and_capacity_type_through_prometheus(prometheus: str) -> None:
    result = fetch(prometheus, VIRGINIA, STOCKHOLM, IRELAND)
    assert result["us-east-1"] == RegionPrices(
        on_demand=ResourcePrices(vcpu_hour_usd=0.033, gib_hour_usd=0.0045),
        spot=ResourcePrices(vcpu_hour_usd=0.0117, gib_hour_usd=0.0016),
    )
    assert result["eu-north-1"] == RegionPrices(
        on_demand=ResourcePrices(vcpu_hour_usd=0.029, gib_hour_usd=0.0039)
    )
    # No node in eu-west-1: no price claimed; the bundled table stays.
    missing = result["eu-west-1"]
    assert isinstance(missing, ProviderError) and missing.kind is ProviderErrorKind.NOT_FOUND


@pytest.mark.parametrize(
    ("scripted", "kind"),
    [
        (Scripted(status=503), ProviderErrorKind.UNAVAILABLE),
        (Scripted(status=429, headers={"Retry-After": "10"}), ProviderErrorKind.RATE_LIMITED),
        (
            Scripted(status=307, headers={"Location": "http://elsewhere.example/api/v1/query"}),
            ProviderErrorKind.CONFIG,
        ),
        (Scripted(status=200, body=b"<html>"), ProviderErrorKind.BAD_RESPONSE),
        (
            Scripted(status=200, body=b'{"status": "error", "error": "bad_data"}'),
            ProviderErrorKind.BAD_RESPONSE,
        ),
        (
            Scripted(
                status=200, body=b'{"status": "success", "data": {"resultType": "matrix", "result": []}}'
            ),
            ProviderErrorKind.BAD_RESPONSE,
        ),
    ],
)
def test_errors_fail_the_round(scripted: Scripted, kind: ProviderErrorKind) -> None:
    state = OpenCostExporter()
    with serve(state, lambda handler, *_: None) as server:
        server.script.append(scripted)
        with pytest.raises(ProviderError) as info:
            fetch(server.url, VIRGINIA)
    assert info.value.kind is kind


def test_plain_http_needs_the_opt_in() -> None:
    with pytest.raises(ProviderError, match="ECOPULSE_ALLOW_INSECURE_PROVIDER_URLS"):
        opencost_from_env({}, client=httpx.Client(), base_url="http://prometheus:9090")
