"""OpenCost's node prices, read from the Prometheus that scrapes it.

OpenCost exports per node ``node_cpu_hourly_cost`` (USD per vCPU-hour), ``node_ram_hourly_cost``
(USD per GiB-hour) and ``kubecost_node_is_spot`` (1 on spot), labelled ``node`` and ``region``
among others. Three instant queries (``GET {url}/api/v1/query``) join on ``node``; a region's
price per capacity type is the median over its nodes. Only regions where the cluster has nodes
have prices: the others are NOT_FOUND and keep the bundled table.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Mapping, Sequence

import httpx

from core.model import Region
from core.signals.base import Clock, ProviderError, ProviderErrorKind, utc_now
from core.signals.http import (
    HttpProvider,
    as_list,
    as_object,
    as_str,
    bad_response,
    endpoint_from_env,
    object_items,
)
from core.signals.prices.base import PriceFetch, RegionPrices, ResourcePrices

URL_ENV = "OPENCOST_PROMETHEUS_URL"
CPU_SERIES = "node_cpu_hourly_cost"
RAM_SERIES = "node_ram_hourly_cost"
SPOT_SERIES = "kubecost_node_is_spot"


class OpenCostPriceProvider(HttpProvider):
    def __init__(
        self, *, client: httpx.Client, base_url: str, allow_insecure_http: bool, now: Clock | None = None
    ) -> None:
        super().__init__(
            name="opencost",
            client=client,
            base_url=base_url,
            base_url_setting="pricing.opencost.prometheusUrl",
            allow_insecure_http=allow_insecure_http,
            now=now,
        )

    def _query(self, series: str) -> dict[str, tuple[str, float]]:
        """node -> (region, value) of one series' latest samples."""
        what = f"opencost {series}"
        body = as_object(
            self._read_json(self._send("/api/v1/query", what=what, params={"query": series}), what=what)
        )
        if body is None or body.get("status") != "success":
            raise bad_response(what, "status is not success")
        data = as_object(body.get("data")) or {}
        if data.get("resultType") != "vector":
            raise bad_response(what, "resultType is not vector")
        values: dict[str, tuple[str, float]] = {}
        for sample in object_items(data, "result", what=what):
            labels = as_object(sample.get("metric")) or {}
            node, region = as_str(labels.get("node")), as_str(labels.get("region"))
            point = as_list(sample.get("value")) or []
            if not node or not region or len(point) != 2 or not isinstance(point[1], str):
                continue  # a sample without the labels OpenCost always sets is not one of its nodes
            try:
                value = float(point[1])
            except ValueError:
                continue
            values[node] = (region, value)
        return values

    def fetch(self, regions: Sequence[Region]) -> PriceFetch:
        cpu, ram, spot = self._query(CPU_SERIES), self._query(RAM_SERIES), self._query(SPOT_SERIES)
        # (region, is spot) -> [(vcpu-hour, GiB-hour)] per node
        by_place: dict[tuple[str, bool], list[tuple[float, float]]] = {}
        for node, (place, vcpu_hour) in cpu.items():
            memory = ram.get(node)
            if memory is None:
                continue
            is_spot = spot.get(node, (place, 0.0))[1] >= 1.0
            by_place.setdefault((place, is_spot), []).append((vcpu_hour, memory[1]))

        def median(place: tuple[str, bool]) -> ResourcePrices | None:
            nodes = by_place.get(place)
            if not nodes:
                return None
            return ResourcePrices(
                vcpu_hour_usd=statistics.median(n[0] for n in nodes),
                gib_hour_usd=statistics.median(n[1] for n in nodes),
            )

        result: dict[str, RegionPrices | ProviderError] = {}
        for region in regions:
            on_demand = median((region.name, False))
            if on_demand is None:
                result[region.name] = ProviderError(
                    ProviderErrorKind.NOT_FOUND, f"opencost: no on-demand node in region {region.name}"
                )
                continue
            result[region.name] = RegionPrices(on_demand=on_demand, spot=median((region.name, True)))
        return result


def opencost_from_env(
    env: Mapping[str, str] | None = None, *, client: httpx.Client, base_url: str, now: Clock = utc_now
) -> OpenCostPriceProvider:
    source = os.environ if env is None else env
    endpoint = endpoint_from_env(source, base_url_env=URL_ENV, base_url=base_url)
    return OpenCostPriceProvider(
        client=client, base_url=endpoint.base_url, allow_insecure_http=endpoint.allow_insecure_http, now=now
    )
