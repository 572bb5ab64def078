"""EcoPulseConfiguration: the YAML a ConfigMap mounts, parsed once into frozen values.

Every error names the key it is about (``carbon.refreshSeconds: must be > 0``) and all of
them are reported together, so a bad ConfigMap is fixed in one edit. Unknown keys are errors:
a typo must not silently fall back to a default.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from core.catalog import load_price_table, load_region_locations, load_region_zones, load_zone_rtt_ms
from core.config_reader import Reader, join, read_settings, setting, settings_rows
from core.latency import EARTH_RADIUS_KM, FIBRE_KM_PER_MS, ROUTE_INFLATION, RTT_OVERHEAD_MS, estimated_rtt_ms
from core.model import PriceRates, Region
from core.yaml_input import (
    InputProblems,
    describe,
    load_yaml_file,
    load_yaml_text,
    not_a_string,
)

__all__ = [
    "API_VERSION",
    "DEFAULT_CONFIG_YAML",
    "EARTH_RADIUS_KM",
    "ELECTRICITYMAPS_FORECAST_HOURS",
    "FIBRE_KM_PER_MS",
    "KIND",
    "MAX_CONFIG_BYTES",
    "MAX_TRACE_FORECAST_HOURS",
    "MAX_TRACE_SPEEDUP",
    "ROUTE_INFLATION",
    "RTT_OVERHEAD_MS",
    "SETTINGS_SECTIONS",
    "WATTTIME_FORECAST_HOURS",
    "AwsPriceSettings",
    "AzurePriceSettings",
    "CarbonProviderName",
    "CarbonSettings",
    "ConfigError",
    "DeferralSettings",
    "EcoPulseConfiguration",
    "EconomicsSettings",
    "ElectricityMapsSettings",
    "FleetSettings",
    "GcpPriceSettings",
    "OpenCostPriceSettings",
    "PlacementMode",
    "PlacementSettings",
    "PowerSettings",
    "PriceProviderName",
    "PricingSettings",
    "RebalancerSettings",
    "TraceSettings",
    "WattTimeSettings",
    "default_config",
    "estimated_rtt_ms",
    "load_config",
    "parse_config",
    "parse_config_text",
    "settings_table",
]

API_VERSION = "ecopulse.io/v1alpha1"
KIND = "EcoPulseConfiguration"
# A ConfigMap is at most 1 MiB; anything bigger is not a config file.
MAX_CONFIG_BYTES = 1024 * 1024


class ConfigError(InputProblems):
    """The configuration is invalid; ``problems`` holds one ``key: what is wrong`` line each."""


class CarbonProviderName(StrEnum):
    MOCK = "mock"
    STATIC = "static"
    ELECTRICITYMAPS = "electricitymaps"
    WATTTIME = "watttime"
    TRACE = "trace"


class PlacementMode(StrEnum):
    PREFERRED = "preferred"
    REQUIRED = "required"


# Each setting is declared once, on its field (core.config_reader.setting): default, unit, one-line
# doc, bounds. The YAML key is the field name in camelCase; reading, checking and the settings table
# (docs/configuration.md) follow from the declaration. Fields without one are read by hand below.


@dataclass(frozen=True, slots=True, kw_only=True)
class ElectricityMapsSettings:
    base_url: str = setting(
        "https://api.electricitymap.org/v3",
        kind="url",
        doc="API base URL (env ELECTRICITYMAPS_BASE_URL overrides it); token: env ELECTRICITYMAPS_API_TOKEN",
    )
    emission_factor_type: str = setting(
        "lifecycle", choices=("lifecycle", "direct"), doc="which intensity the API is asked for"
    )
    forecast: bool = setting(False, doc="also fetch the 24 h forecast")


@dataclass(frozen=True, slots=True, kw_only=True)
class WattTimeSettings:
    base_url: str = setting(
        "https://api.watttime.org",
        kind="url",
        doc="API base URL (env WATTTIME_BASE_URL overrides it); env WATTTIME_USERNAME, WATTTIME_PASSWORD",
    )
    # our region name -> WattTime balancing-authority code (e.g. CAISO_NORTH)
    regions: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


# How far ahead each forecasting provider sees: Electricity Maps' forecast endpoint answers its
# default horizon, 24 h; WattTime is asked for 24 h (core.signals.watttime.DEFAULT_HORIZON_HOURS).
ELECTRICITYMAPS_FORECAST_HOURS = 24
WATTTIME_FORECAST_HOURS = 24
MAX_TRACE_FORECAST_HOURS = 168
MAX_TRACE_SPEEDUP = 1_000_000.0


@dataclass(frozen=True, slots=True, kw_only=True)
class TraceSettings:
    """``carbon.trace``: replay an hourly intensity CSV (the simulator's format) as if it were live.

    Wall-clock time maps to trace time linearly: at ``wall_clock_start`` (None: the process start)
    the replay is at ``start`` (None: the trace's first hour) and it advances ``speedup`` trace
    hours per wall hour, wrapping round to the first hour after the last.
    """

    path: str = setting(
        "",
        doc="hourly CSV(.gz) in the simulator's format; each region reads its zone",
        default_doc="required",
    )
    intensity: str = setting("lifecycle", choices=("lifecycle", "direct"), doc="which column of the CSV")
    start: datetime | None = setting(
        None,
        kind="instant",
        doc="the trace instant the replay is at when the process starts (at wallClockStart if set)",
        default_doc="first row",
    )
    speedup: float = setting(
        1.0,
        exclusive_minimum=0.0,
        maximum=MAX_TRACE_SPEEDUP,
        doc="trace hours per wall hour (3600: a trace hour per wall second); wraps round",
    )
    forecast_hours: int = setting(
        0,
        unit="h",
        minimum=0,
        maximum=MAX_TRACE_FORECAST_HOURS,
        doc="> 0: the next trace hours as the forecast, a perfect one no real provider gives",
    )
    wall_clock_start: datetime | None = setting(
        None,
        kind="instant",
        doc="the wall-clock instant mapped to start; give every app the same",
        default_doc="process start",
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class CarbonSettings:
    provider: CarbonProviderName = setting(
        CarbonProviderName.STATIC,
        doc="mock (forced values), static (bundled 2022 annual means), electricitymaps, watttime, trace",
    )
    mock_g_per_kwh: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    refresh_seconds: float = setting(
        300.0, unit="s", minimum=1.0, doc="how often the background refresher fetches"
    )
    max_stale_seconds: float = setting(
        3600.0,
        unit="s",
        minimum=1.0,
        doc="how long the last good value is served after failures (≥ refreshSeconds); then unknown",
    )
    request_timeout_seconds: float = setting(
        10.0, unit="s", exclusive_minimum=0.0, maximum=120.0, doc="per provider request"
    )
    electricitymaps: ElectricityMapsSettings = field(default_factory=ElectricityMapsSettings)
    watttime: WattTimeSettings = field(default_factory=WattTimeSettings)
    trace: TraceSettings = field(default_factory=TraceSettings)

    @property
    def forecast_hours(self) -> int:
        """How many hours ahead the configured provider forecasts (0: the current value only)."""
        if self.provider is CarbonProviderName.TRACE:
            return self.trace.forecast_hours
        if self.provider is CarbonProviderName.ELECTRICITYMAPS and self.electricitymaps.forecast:
            return ELECTRICITYMAPS_FORECAST_HOURS
        if self.provider is CarbonProviderName.WATTTIME:
            return WATTTIME_FORECAST_HOURS
        return 0


@dataclass(frozen=True, slots=True, kw_only=True)
class EconomicsSettings:
    horizon_hours: float = setting(
        6.0, unit="h", exclusive_minimum=0.0, maximum=8760.0, doc="horizon of every comparison"
    )
    carbon_price_usd_per_tonne: float = setting(
        100.0, unit="USD/tCO2eq", minimum=0.0, doc="price of a tonne of CO2eq, capped by the next"
    )
    max_carbon_price_usd_per_tonne: float = setting(
        1000.0, unit="USD/tCO2eq", minimum=0.0, doc="cap on carbonPriceUsdPerTonne"
    )
    migration_cost_usd: float = setting(0.01, unit="USD", minimum=0.0, doc="per move (rebalancer, fleet)")
    # While a moved pod restarts, the old and the new copy both run (and the work waits).
    restart_downtime_seconds: float = setting(
        60.0, unit="s", minimum=0.0, doc="a move's restart, priced at the pod's hourly cost"
    )
    egress_usd_per_gb: float = setting(
        0.02,
        unit="USD/GB",
        minimum=0.0,
        maximum=10.0,
        doc="between regions; egressUsdPerGbOverrides: [{from, to, usdPerGb, bothWays}] per pair",
    )
    egress_usd_per_gb_overrides: Mapping[tuple[str, str], float] = field(
        default_factory=lambda: MappingProxyType({})
    )
    latency_penalty_usd_per_ms_hour: float = setting(
        0.0, unit="USD/(ms·h)", minimum=0.0, doc="soft latency cost"
    )

    @property
    def effective_carbon_price_usd_per_tonne(self) -> float:
        return min(self.carbon_price_usd_per_tonne, self.max_carbon_price_usd_per_tonne)

    def egress_price_usd_per_gb(self, source_region: str, target_region: str) -> float:
        if source_region == target_region:
            return 0.0
        override = self.egress_usd_per_gb_overrides.get((source_region, target_region))
        return self.egress_usd_per_gb if override is None else override


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerSettings:
    """The power model; defaults are the Cloud Carbon Footprint coefficients for AWS (see README)."""

    min_watts_per_vcpu: float = setting(0.74, unit="W", minimum=0.0, maximum=1000.0, doc="a vCPU at idle")
    max_watts_per_vcpu: float = setting(
        3.5, unit="W", minimum=0.0, maximum=1000.0, doc="a vCPU at full load (≥ minWattsPerVcpu)"
    )
    cpu_utilisation: float = setting(0.5, minimum=0.0, maximum=1.0, doc="the load requests are counted at")
    watts_per_gib: float = setting(0.392, unit="W", minimum=0.0, maximum=100.0, doc="a GiB of memory")
    pue: float = setting(1.135, minimum=1.0, maximum=3.0, doc="power usage effectiveness of the data centre")


@dataclass(frozen=True, slots=True, kw_only=True)
class PlacementSettings:
    mode: PlacementMode = setting(
        PlacementMode.PREFERRED, doc="preferred (weighted soft affinity) or required (a hard region set)"
    )
    max_preferred_regions: int = setting(3, minimum=1, doc="regions in the preferred terms")
    required_region_count: int = setting(2, minimum=1, doc="regions in the required set")
    # In required mode a region must beat the baseline by at least this much to be allowed.
    min_net_benefit_usd: float = setting(
        0.0, unit="USD", doc="required mode: a region must beat the baseline by this much"
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class RebalancerSettings:
    interval_seconds: float = setting(300.0, unit="s", minimum=1.0, doc="between cycles")
    # Safe by default: acting needs an explicit `dryRun: false` in the configuration.
    dry_run: bool = setting(True, doc="decide and report, evict nothing (the API server still checks)")
    min_pod_age_seconds: float = setting(
        1800.0, unit="s", minimum=0.0, doc="younger pods stay (also the cooldown against bouncing)"
    )
    min_net_benefit_usd: float = setting(0.05, unit="USD", minimum=0.0, doc="a move must pay at least this")
    max_evictions_per_cycle: int = setting(10, minimum=0, doc="evictions per cycle")
    max_evictions_per_namespace: int = setting(5, minimum=0, doc="evictions per namespace per cycle")
    max_evictions_per_node: int = setting(2, minimum=0, doc="evictions per node per cycle")
    max_evictions_per_workload: int = setting(1, minimum=0, doc="evictions per workload per cycle")
    evict_local_storage_pods: bool = setting(False, doc="move pods with emptyDir or hostPath volumes")
    evict_pvc_pods: bool = setting(False, doc="move pods with PersistentVolumeClaims")
    eviction_grace_period_seconds: int | None = setting(
        None,
        kind="integer",
        unit="s",
        minimum=0,
        doc="the evicted pod's grace period",
        default_doc="the pod's own",
    )
    # The robust rule (core.history, core.economics.robust_net_benefit_usd): a move must pay with its
    # carbon gap cut to the smallest of the last hold_hours hourly gaps, less gap_error_margin times
    # the gap's recent horizon error over history_window_hours. 0 and 0 turn it off.
    hold_hours: int = setting(
        2, unit="h", minimum=0, doc="the greener region must have been greener this many hours (0: off)"
    )
    gap_error_margin: float = setting(
        2.0, minimum=0.0, doc="times the gap's recent horizon error, taken off the predicted gap (0: off)"
    )
    history_window_hours: int = setting(
        168, unit="h", minimum=1, doc="how much grid history the robust rule reads"
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetSettings:
    """``fleet``: placement across the member clusters of a Karmada fleet (``python -m fleet``)."""

    interval_seconds: float = setting(60.0, unit="s", minimum=1.0, doc="between passes")
    # Safe by default: writing placements needs an explicit `dryRun: false` in the configuration.
    dry_run: bool = setting(True, doc="decide and report, write no placement")
    # A move of a workload's replicas to another cluster must pay at least this much, net.
    min_net_benefit_usd: float = setting(
        0.05, unit="USD", minimum=0.0, doc="a move of a workload's replicas must pay at least this"
    )
    max_moves_per_pass: int = setting(10, minimum=0, doc="placement changes per pass")
    max_moves_per_namespace: int = setting(5, minimum=0, doc="placement changes per namespace per pass")
    # After a move, a policy stays where it went for this long (no bouncing back and forth).
    cooldown_seconds: float = setting(
        1800.0, unit="s", minimum=0.0, doc="after a move, a policy stays where it went"
    )
    # A move whose new replicas are not all available within this long is rolled back.
    move_timeout_seconds: float = setting(
        600.0, unit="s", exclusive_minimum=0.0, doc="a move not available within this long is rolled back"
    )
    # A move settles only after its new copy has stayed available this long in a member Karmada kept
    # Ready throughout: at least Karmada's failure detection lag (docs/fleet.md), 40 s by default.
    move_stability_seconds: float = setting(
        60.0, unit="s", minimum=0.0, doc="the new copy stays available this long before the old one goes"
    )


class PriceProviderName(StrEnum):
    STATIC = "static"
    AZURE = "azure"
    GCP = "gcp"
    AWS = "aws"
    OPENCOST = "opencost"


@dataclass(frozen=True, slots=True, kw_only=True)
class AzurePriceSettings:
    """``pricing.azure``: the Azure Retail Prices API (no credentials)."""

    base_url: str = setting(
        "https://prices.azure.com/api/retail/prices",
        kind="url",
        doc="API URL (env AZURE_PRICES_BASE_URL overrides it)",
    )
    reference_vm: str = setting("Standard_D2s_v5", doc="the VM whose hourly price is split per vCPU and GiB")
    # our region name -> armRegionName (default: the region's own name)
    regions: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True, kw_only=True)
class GcpPriceSettings:
    """``pricing.gcp``: the Cloud Billing Catalog API (an API key, env GCP_BILLING_API_KEY)."""

    base_url: str = setting(
        "https://cloudbilling.googleapis.com/v1",
        kind="url",
        doc="API base URL (env GCP_BILLING_BASE_URL overrides it); API key: env GCP_BILLING_API_KEY",
    )
    machine_series: str = setting("N2", doc="the machine series whose per-core and per-GiB SKUs are read")
    regions: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True, kw_only=True)
class AwsPriceSettings:
    """``pricing.aws``: EC2 spot history and the Price List API through botocore (extra ``aws``)."""

    reference_vm: str = setting("m5.large", doc="the instance type whose hourly price is split")
    regions: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenCostPriceSettings:
    """``pricing.opencost``: the node cost series OpenCost exports, read from the Prometheus scraping it."""

    prometheus_url: str = setting(
        "https://prometheus:9090",
        kind="url",
        doc="Prometheus base URL (env OPENCOST_PROMETHEUS_URL overrides it)",
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class PricingSettings:
    """``pricing``: where prices come from (core.signals.prices); per-region ``prices:`` entries win."""

    provider: PriceProviderName = setting(
        PriceProviderName.STATIC, doc="static (the bundled table), azure, gcp, aws, opencost"
    )
    refresh_seconds: float = setting(21600.0, unit="s", minimum=5.0, doc="how often prices are fetched")
    max_stale_seconds: float = setting(
        172800.0,
        unit="s",
        minimum=5.0,
        doc="a region's last good price is served this long (≥ refreshSeconds); then the bundled table",
    )
    request_timeout_seconds: float = setting(
        10.0, unit="s", exclusive_minimum=0.0, maximum=120.0, doc="per provider request"
    )
    max_change_factor: float = setting(
        3.0,
        exclusive_minimum=1.0,
        maximum=100.0,
        doc="a price that moved more than this factor since the last good one is refused",
    )
    azure: AzurePriceSettings = field(default_factory=AzurePriceSettings)
    gcp: GcpPriceSettings = field(default_factory=GcpPriceSettings)
    aws: AwsPriceSettings = field(default_factory=AwsPriceSettings)
    opencost: OpenCostPriceSettings = field(default_factory=OpenCostPriceSettings)

    def cloud_region(self, region: str) -> str:
        """The provider's name for one of our regions (``regions`` maps it; default: the same)."""
        mapping = {
            PriceProviderName.AZURE: self.azure.regions,
            PriceProviderName.GCP: self.gcp.regions,
            PriceProviderName.AWS: self.aws.regions,
        }.get(self.provider, MappingProxyType({}))
        return mapping.get(region, region)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeferralSettings:
    """``deferral``: deferrable Jobs held for a green hour (docs/deferral.md).

    The webhook holds only while the rebalancer releases: ``rebalancer.dryRun: false`` and its
    Lease fresh. Both apps must read the same file (one ConfigMap).
    """

    enabled: bool = setting(True, doc="hold Jobs that ask for a deadline when waiting pays")
    safety_margin_seconds: float = setting(
        900.0,
        unit="s",
        minimum=0.0,
        doc="release-by = deadline − expected runtime − this (cover rebalancer.intervalSeconds)",
    )
    min_benefit_usd: float = setting(
        0.001,
        unit="USD",
        minimum=0.0,
        doc="a wait must beat starting now by this much, net (carbon value, price, egress, latency)",
    )
    confidence_z: float = setting(
        0.0,
        minimum=0.0,
        doc="a wait's saving is counted less the forecast's recent mean overstatement and this many "
        "standard errors of it (0: the mean alone, or the forecast as given while no record is known)",
    )
    lease_tolerance_seconds: float = setting(
        30.0,
        unit="s",
        minimum=0.0,
        doc="how long past its Lease's expiry the rebalancer still counts as releasing (clock skew)",
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class EcoPulseConfiguration:
    regions: tuple[Region, ...]
    baseline_region: str
    carbon: CarbonSettings = field(default_factory=CarbonSettings)
    economics: EconomicsSettings = field(default_factory=EconomicsSettings)
    power: PowerSettings = field(default_factory=PowerSettings)
    placement: PlacementSettings = field(default_factory=PlacementSettings)
    rebalancer: RebalancerSettings = field(default_factory=RebalancerSettings)
    fleet: FleetSettings = field(default_factory=FleetSettings)
    pricing: PricingSettings = field(default_factory=PricingSettings)
    deferral: DeferralSettings = field(default_factory=DeferralSettings)
    # resolved: bundled table overlaid with the file's `prices`, one entry per region
    prices: Mapping[str, PriceRates] = field(default_factory=lambda: MappingProxyType({}))
    # resolved: the file's `latencyMs` over the bundled zone RTT matrix, both directions
    latency_ms: Mapping[tuple[str, str], float] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def region_names(self) -> tuple[str, ...]:
        return tuple(region.name for region in self.regions)

    @property
    def known_regions(self) -> frozenset[str]:
        """The region names as a set, built once per configuration (request paths ask for it)."""
        return _region_set(self.regions)

    def region(self, name: str) -> Region | None:
        for region in self.regions:
            if region.name == name:
                return region
        return None

    def latency_between_ms(self, source_region: str, target_region: str) -> float | None:
        if source_region == target_region:
            return 0.0
        return self.latency_ms.get((source_region, target_region))


@functools.lru_cache(maxsize=64)
def _region_set(regions: tuple[Region, ...]) -> frozenset[str]:
    return frozenset(region.name for region in regions)


# ---------------------------------------------------------------------------------------------
# Parsing: the declared settings by core.config_reader; what is not a plain value, by hand.

_Reader = Reader


def _describe(value: object) -> str:
    return describe(value)


_TOP_KEYS = {
    "apiVersion",
    "kind",
    "metadata",
    "regions",
    "baselineRegion",
    "carbon",
    "economics",
    "power",
    "prices",
    "placement",
    "latencyMs",
    "rebalancer",
    "fleet",
    "pricing",
    "deferral",
}


def parse_config(document: object, *, source: str = "") -> EcoPulseConfiguration:
    """Validate a parsed YAML document and build the configuration, or raise ConfigError."""
    reader = _Reader()
    top = reader.mapping(document, "(top level)")
    if not top and document is not None and reader.problems:
        raise ConfigError(reader.problems, source=source)
    reader.only_keys(top, "", _TOP_KEYS)
    if top.get("apiVersion", API_VERSION) != API_VERSION:
        reader.fail("apiVersion", f"must be {API_VERSION}, got {_describe(top.get('apiVersion'))}")
    if top.get("kind", KIND) != KIND:
        reader.fail("kind", f"must be {KIND}, got {_describe(top.get('kind'))}")

    regions = _parse_regions(reader, top.get("regions"))
    names = {region.name for region in regions}
    baseline = top.get("baselineRegion", regions[0].name if regions else None)
    if not isinstance(baseline, str) or baseline not in names:
        reader.fail("baselineRegion", f"must name one of the regions, got {_describe(baseline)}")
        baseline = regions[0].name if regions else ""

    carbon = _parse_carbon(reader, reader.mapping(top.get("carbon"), "carbon"), names)
    economics = _parse_economics(reader, reader.mapping(top.get("economics"), "economics"), names)
    power = _parse_power(reader, reader.mapping(top.get("power"), "power"))
    placement = _parse_placement(reader, reader.mapping(top.get("placement"), "placement"))
    rebalancer = _parse_rebalancer(reader, reader.mapping(top.get("rebalancer"), "rebalancer"))
    fleet = _parse_fleet(reader, reader.mapping(top.get("fleet"), "fleet"))
    pricing = _parse_pricing(reader, reader.mapping(top.get("pricing"), "pricing"), names)
    deferral = DeferralSettings(
        **read_settings(reader, reader.mapping(top.get("deferral"), "deferral"), "deferral", DeferralSettings)
    )
    prices = _parse_prices(reader, reader.mapping(top.get("prices"), "prices"), regions)
    latency = _parse_latency(reader, reader.mapping(top.get("latencyMs"), "latencyMs"), regions)

    if reader.problems:
        raise ConfigError(reader.problems, source=source)
    return EcoPulseConfiguration(
        regions=regions,
        baseline_region=baseline,
        carbon=carbon,
        economics=economics,
        power=power,
        placement=placement,
        rebalancer=rebalancer,
        fleet=fleet,
        pricing=pricing,
        deferral=deferral,
        prices=MappingProxyType(prices),
        latency_ms=MappingProxyType(latency),
    )


def _parse_regions(reader: _Reader, raw: object) -> tuple[Region, ...]:
    if not isinstance(raw, list) or not raw:
        reader.fail("regions", f"must be a non-empty list of {{name, zone}}, got {_describe(raw)}")
        return ()
    known_zones = load_region_zones()
    regions: list[Region] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        key = f"regions[{index}]"
        entry = reader.mapping(item, key)
        if not entry:
            if not reader.problems or not reader.problems[-1].startswith(key):
                reader.fail(key, "must be a mapping with name and zone")
            continue
        reader.only_keys(entry, key, {"name", "zone"})
        name = reader.string(entry, key, "name", None)
        if not name:
            continue
        if name in seen:
            reader.fail(f"{key}.name", f"duplicate region {_describe(name)}")
            continue
        seen.add(name)
        zone_raw = entry.get("zone", known_zones.get(name))
        if "zone" in entry and not isinstance(zone_raw, str):
            reader.fail(f"{key}.zone", not_a_string(zone_raw))
            continue
        if not isinstance(zone_raw, str) or not zone_raw:
            reader.fail(
                f"{key}.zone",
                f"no grid zone known for region {_describe(name)}: set zone (an Electricity Maps id)",
            )
            continue
        regions.append(Region(name=name, zone=zone_raw))
    return tuple(regions)


def _region_number_map(
    reader: _Reader, raw: object, key: str, names: set[str], *, maximum: float | None = None
) -> dict[str, float]:
    values = reader.mapping(raw, key)
    result: dict[str, float] = {}
    for name in values:
        if name not in names:
            reader.fail(join(key, name), "not one of the configured regions")
            continue
        result[name] = reader.number(values, key, name, 0.0, minimum=0.0, maximum=maximum)
    return result


def _parse_carbon(reader: _Reader, raw: Mapping[str, object], names: set[str]) -> CarbonSettings:
    key = "carbon"
    values = read_settings(
        reader, raw, key, CarbonSettings, also=frozenset({"mock", "electricitymaps", "watttime", "trace"})
    )
    defaults = CarbonSettings()
    provider = values.get("provider", defaults.provider)
    mock = _region_number_map(reader, raw.get("mock"), "carbon.mock", names, maximum=5000.0)
    if provider is CarbonProviderName.MOCK:
        for missing in sorted(names - set(mock)):
            reader.fail(f"carbon.mock.{missing}", "missing: the mock provider needs a value for every region")

    em_raw = reader.mapping(raw.get("electricitymaps"), "carbon.electricitymaps")
    electricitymaps = ElectricityMapsSettings(
        **read_settings(reader, em_raw, "carbon.electricitymaps", ElectricityMapsSettings)
    )

    wt_raw = reader.mapping(raw.get("watttime"), "carbon.watttime")
    wt_values = read_settings(
        reader, wt_raw, "carbon.watttime", WattTimeSettings, also=frozenset({"regions"})
    )
    wt_regions_raw = reader.mapping(wt_raw.get("regions"), "carbon.watttime.regions")
    wt_regions: dict[str, str] = {}
    for name in wt_regions_raw:
        if name not in names:
            reader.fail(f"carbon.watttime.regions.{name}", "not one of the configured regions")
            continue
        wt_regions[name] = reader.string(wt_regions_raw, "carbon.watttime.regions", name, None)
    if provider is CarbonProviderName.WATTTIME:
        for missing in sorted(names - set(wt_regions)):
            reader.fail(
                f"carbon.watttime.regions.{missing}", "missing: map every region to a WattTime region code"
            )
    watttime = WattTimeSettings(**wt_values, regions=MappingProxyType(wt_regions))

    trace = _parse_trace(
        reader,
        reader.mapping(raw.get("trace"), "carbon.trace"),
        required=provider is CarbonProviderName.TRACE,
    )

    refresh = values.get("refresh_seconds", defaults.refresh_seconds)
    max_stale = values.get("max_stale_seconds", defaults.max_stale_seconds)
    if max_stale < refresh:
        reader.fail(
            "carbon.maxStaleSeconds", f"must be >= carbon.refreshSeconds ({refresh:g}), got {max_stale:g}"
        )
    return CarbonSettings(
        **values,
        mock_g_per_kwh=MappingProxyType(mock),
        electricitymaps=electricitymaps,
        watttime=watttime,
        trace=trace,
    )


def _parse_trace(reader: _Reader, raw: Mapping[str, object], *, required: bool) -> TraceSettings:
    key = "carbon.trace"
    values = read_settings(reader, raw, key, TraceSettings)
    if "path" not in raw and required:
        reader.fail(
            f"{key}.path", "missing: the trace provider needs an hourly intensity CSV (.csv or .csv.gz)"
        )
    return TraceSettings(**values)


def _parse_economics(reader: _Reader, raw: Mapping[str, object], names: set[str]) -> EconomicsSettings:
    values = read_settings(
        reader, raw, "economics", EconomicsSettings, also=frozenset({"egressUsdPerGbOverrides"})
    )
    overrides: dict[tuple[str, str], float] = {}
    raw_overrides = raw.get("egressUsdPerGbOverrides", [])
    if not isinstance(raw_overrides, list):
        reader.fail("economics.egressUsdPerGbOverrides", "must be a list of {from, to, usdPerGb}")
        raw_overrides = []
    for index, item in enumerate(raw_overrides):
        item_key = f"economics.egressUsdPerGbOverrides[{index}]"
        entry = reader.mapping(item, item_key)
        reader.only_keys(entry, item_key, {"from", "to", "usdPerGb", "bothWays"})
        source = reader.string(entry, item_key, "from", None)
        target = reader.string(entry, item_key, "to", None)
        for end, value in (("from", source), ("to", target)):
            if value and value not in names:
                reader.fail(f"{item_key}.{end}", f"{_describe(value)} is not one of the configured regions")
        price = reader.number(entry, item_key, "usdPerGb", 0.0, minimum=0.0, maximum=10.0)
        overrides[(source, target)] = price
        if reader.boolean(entry, item_key, "bothWays", True):
            overrides.setdefault((target, source), price)
    return EconomicsSettings(**values, egress_usd_per_gb_overrides=MappingProxyType(overrides))


def _parse_power(reader: _Reader, raw: Mapping[str, object]) -> PowerSettings:
    power = PowerSettings(**read_settings(reader, raw, "power", PowerSettings))
    low, high = power.min_watts_per_vcpu, power.max_watts_per_vcpu
    if high < low:
        reader.fail("power.maxWattsPerVcpu", f"must be >= power.minWattsPerVcpu ({low:g}), got {high:g}")
    return power


def _parse_placement(reader: _Reader, raw: Mapping[str, object]) -> PlacementSettings:
    return PlacementSettings(**read_settings(reader, raw, "placement", PlacementSettings))


def _parse_rebalancer(reader: _Reader, raw: Mapping[str, object]) -> RebalancerSettings:
    return RebalancerSettings(**read_settings(reader, raw, "rebalancer", RebalancerSettings))


def _parse_fleet(reader: _Reader, raw: Mapping[str, object]) -> FleetSettings:
    return FleetSettings(**read_settings(reader, raw, "fleet", FleetSettings))


def _parse_pricing(reader: _Reader, raw: Mapping[str, object], names: set[str]) -> PricingSettings:
    key = "pricing"
    values = read_settings(
        reader, raw, key, PricingSettings, also=frozenset({"azure", "gcp", "aws", "opencost"})
    )
    defaults = PricingSettings()
    refresh = values.get("refresh_seconds", defaults.refresh_seconds)
    if values.get("max_stale_seconds", defaults.max_stale_seconds) < refresh:
        reader.fail(f"{key}.maxStaleSeconds", f"must be >= pricing.refreshSeconds ({refresh:g})")

    def cloud(name: str, cls: type, with_regions: bool) -> dict[str, Any]:
        section = reader.mapping(raw.get(name), f"{key}.{name}")
        also = frozenset({"regions"}) if with_regions else frozenset()
        read = read_settings(reader, section, f"{key}.{name}", cls, also=also)
        if with_regions:
            regions_key = f"{key}.{name}.regions"
            mapping = reader.mapping(section.get("regions"), regions_key)
            regions: dict[str, str] = {}
            for region in mapping:
                if region not in names:
                    reader.fail(join(regions_key, region), "not one of the configured regions")
                    continue
                regions[region] = reader.string(mapping, regions_key, region, None)
            read["regions"] = MappingProxyType(regions)
        return read

    return PricingSettings(
        **values,
        azure=AzurePriceSettings(**cloud("azure", AzurePriceSettings, True)),
        gcp=GcpPriceSettings(**cloud("gcp", GcpPriceSettings, True)),
        aws=AwsPriceSettings(**cloud("aws", AwsPriceSettings, True)),
        opencost=OpenCostPriceSettings(**cloud("opencost", OpenCostPriceSettings, False)),
    )


_PRICE_KEYS = {
    "vcpuHour": "vcpu_hour_usd",
    "gibHour": "gib_hour_usd",
    "spotVcpuHour": "spot_vcpu_hour_usd",
    "spotGibHour": "spot_gib_hour_usd",
}


def _parse_prices(
    reader: _Reader, raw: Mapping[str, object], regions: tuple[Region, ...]
) -> dict[str, PriceRates]:
    bundled = load_price_table()
    names = {region.name for region in regions}
    for name in raw:
        if name not in names:
            reader.fail(f"prices.{name}", "not one of the configured regions")
    result: dict[str, PriceRates] = {}
    for region in regions:
        base = bundled.get(region.name)
        override = reader.mapping(raw.get(region.name), f"prices.{region.name}")
        key = f"prices.{region.name}"
        reader.only_keys(override, key, set(_PRICE_KEYS))
        if base is None and set(override) != set(_PRICE_KEYS):
            missing = ", ".join(sorted(set(_PRICE_KEYS) - set(override)))
            reader.fail(key, f"no bundled prices for region {_describe(region.name)}: set {missing}")
            continue
        values = {
            attr: reader.number(override, key, yaml_key, getattr(base, attr, 0.0), minimum=0.0, maximum=100.0)
            for yaml_key, attr in _PRICE_KEYS.items()
        }
        source = "config" if override else (base.source if base else "")
        if base is not None and override and set(override) != set(_PRICE_KEYS):
            source = f"config over {base.source}"
        result[region.name] = PriceRates(source=source, **values)
    return result


def _parse_latency(
    reader: _Reader, raw: Mapping[str, object], regions: tuple[Region, ...]
) -> dict[tuple[str, str], float]:
    names = {region.name for region in regions}
    result: dict[tuple[str, str], float] = {}
    # Bundled fallbacks, weakest last: the measured RTT between the regions' grid zones (GCP
    # inter-region data), else an estimate from the regions' bundled locations.
    zone_rtt = load_zone_rtt_ms()
    locations = load_region_locations()
    for source in regions:
        for target in regions:
            if source.name == target.name:
                continue
            rtt = zone_rtt.get((source.zone, target.zone))
            if rtt is None and source.name in locations and target.name in locations:
                rtt = estimated_rtt_ms(locations[source.name], locations[target.name])
            if rtt is not None:
                result[(source.name, target.name)] = rtt
    explicit: dict[tuple[str, str], float] = {}
    for source_name in raw:
        if source_name not in names:
            reader.fail(f"latencyMs.{source_name}", "not one of the configured regions")
            continue
        row = reader.mapping(raw[source_name], f"latencyMs.{source_name}")
        for target_name in row:
            if target_name not in names:
                reader.fail(f"latencyMs.{source_name}.{target_name}", "not one of the configured regions")
                continue
            explicit[(source_name, target_name)] = reader.number(
                row, f"latencyMs.{source_name}", target_name, 0.0, minimum=0.0, maximum=10_000.0
            )
    # A pair given one way holds both ways unless the file says otherwise.
    for (source_name, target_name), value in explicit.items():
        result[(source_name, target_name)] = value
        if (target_name, source_name) not in explicit:
            result[(target_name, source_name)] = value
    return result


def load_config(path: Path) -> EcoPulseConfiguration:
    """Read and validate a configuration file; every failure is a ConfigError naming the file."""
    document = load_yaml_file(path, error=ConfigError, max_bytes=MAX_CONFIG_BYTES)
    return parse_config(document, source=str(path))


def parse_config_text(text: str, *, source: str = "") -> EcoPulseConfiguration:
    return parse_config(load_yaml_text(text, error=ConfigError, source=source), source=source)


DEFAULT_CONFIG_YAML = """\
apiVersion: ecopulse.io/v1alpha1
kind: EcoPulseConfiguration
regions:
  - {name: us-east-1, zone: US-MIDA-PJM}
  - {name: eu-west-1, zone: IE}
  - {name: eu-north-1, zone: SE-SE3}
baselineRegion: us-east-1
carbon:
  provider: static
"""


def default_config() -> EcoPulseConfiguration:
    """The embedded default: three AWS regions and the bundled annual averages, no API key needed."""
    return parse_config_text(DEFAULT_CONFIG_YAML, source="<embedded default>")


# The sections whose declared settings the table in docs/configuration.md lists, in its order.
SETTINGS_SECTIONS: tuple[tuple[str, type], ...] = (
    ("carbon", CarbonSettings),
    ("carbon.electricitymaps", ElectricityMapsSettings),
    ("carbon.watttime", WattTimeSettings),
    ("carbon.trace", TraceSettings),
    ("economics", EconomicsSettings),
    ("power", PowerSettings),
    ("placement", PlacementSettings),
    ("rebalancer", RebalancerSettings),
    ("fleet", FleetSettings),
    ("pricing", PricingSettings),
    ("pricing.azure", AzurePriceSettings),
    ("pricing.gcp", GcpPriceSettings),
    ("pricing.aws", AwsPriceSettings),
    ("pricing.opencost", OpenCostPriceSettings),
    ("deferral", DeferralSettings),
)


def settings_table() -> str:
    """The Markdown table of every declared setting (docs/configuration.md holds it; a test compares)."""
    rows = [row for prefix, cls in SETTINGS_SECTIONS for row in settings_rows(prefix, cls)]
    header = "| key | type | default | unit | allowed | meaning |\n|---|---|---|---|---|---|\n"
    return header + "\n".join(rows) + "\n"
