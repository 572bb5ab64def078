"""EcoPulseConfiguration: the YAML a ConfigMap mounts, parsed once into frozen values.

Every error names the key it is about (``carbon.refreshSeconds: must be > 0``) and all of
them are reported together, so a bad ConfigMap is fixed in one edit. Unknown keys are errors:
a typo must not silently fall back to a default.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import TypeVar

from core.catalog import load_price_table, load_region_locations, load_region_zones, load_zone_rtt_ms
from core.model import PriceRates, Region
from core.yaml_input import YamlInputError, describe, load_yaml, not_a_string

API_VERSION = "ecopulse.io/v1alpha1"
KIND = "EcoPulseConfiguration"
# A ConfigMap is at most 1 MiB; anything bigger is not a config file.
MAX_CONFIG_BYTES = 1024 * 1024


class ConfigError(ValueError):
    """The configuration is invalid; ``problems`` holds one ``key: what is wrong`` line each."""

    def __init__(self, problems: list[str], *, source: str = "") -> None:
        self.problems = problems
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(where + "; ".join(problems))


class CarbonProviderName(StrEnum):
    MOCK = "mock"
    STATIC = "static"
    ELECTRICITYMAPS = "electricitymaps"
    WATTTIME = "watttime"
    TRACE = "trace"


class PlacementMode(StrEnum):
    PREFERRED = "preferred"
    REQUIRED = "required"


@dataclass(frozen=True, slots=True, kw_only=True)
class ElectricityMapsSettings:
    base_url: str = "https://api.electricitymap.org/v3"
    emission_factor_type: str = "lifecycle"
    forecast: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class WattTimeSettings:
    base_url: str = "https://api.watttime.org"
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

    path: str = ""
    intensity: str = "lifecycle"  # or direct: which column of the CSV
    start: datetime | None = None
    speedup: float = 1.0
    forecast_hours: int = 0  # > 0: the next hours of the trace as the forecast (a perfect one)
    wall_clock_start: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CarbonSettings:
    provider: CarbonProviderName = CarbonProviderName.STATIC
    mock_g_per_kwh: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    refresh_seconds: float = 300.0
    max_stale_seconds: float = 3600.0
    request_timeout_seconds: float = 10.0
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
    horizon_hours: float = 6.0
    carbon_price_usd_per_tonne: float = 100.0
    max_carbon_price_usd_per_tonne: float = 1000.0
    migration_cost_usd: float = 0.01
    # While a moved pod restarts, the old and the new copy both run (and the work waits).
    restart_downtime_seconds: float = 60.0
    egress_usd_per_gb: float = 0.02
    egress_usd_per_gb_overrides: Mapping[tuple[str, str], float] = field(
        default_factory=lambda: MappingProxyType({})
    )
    latency_penalty_usd_per_ms_hour: float = 0.0

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

    min_watts_per_vcpu: float = 0.74
    max_watts_per_vcpu: float = 3.5
    cpu_utilisation: float = 0.5
    watts_per_gib: float = 0.392
    pue: float = 1.135


@dataclass(frozen=True, slots=True, kw_only=True)
class PlacementSettings:
    mode: PlacementMode = PlacementMode.PREFERRED
    max_preferred_regions: int = 3
    required_region_count: int = 2
    # In required mode a region must beat the baseline by at least this much to be allowed.
    min_net_benefit_usd: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RebalancerSettings:
    interval_seconds: float = 300.0
    # Safe by default: acting needs an explicit `dryRun: false` in the configuration.
    dry_run: bool = True
    min_pod_age_seconds: float = 1800.0
    min_net_benefit_usd: float = 0.05
    max_evictions_per_cycle: int = 10
    max_evictions_per_namespace: int = 5
    max_evictions_per_node: int = 2
    max_evictions_per_workload: int = 1
    evict_local_storage_pods: bool = False
    evict_pvc_pods: bool = False
    eviction_grace_period_seconds: int | None = None
    # The robust rule (core.history, core.economics.robust_net_benefit_usd): a move must pay with its
    # carbon gap cut to the smallest of the last hold_hours hourly gaps, less gap_error_margin times
    # the gap's recent horizon error over history_window_hours. 0 and 0 turn it off.
    hold_hours: int = 2
    gap_error_margin: float = 1.0
    history_window_hours: int = 168


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetSettings:
    """``fleet``: placement across the member clusters of a Karmada fleet (``python -m fleet``)."""

    interval_seconds: float = 60.0
    # Safe by default: writing placements needs an explicit `dryRun: false` in the configuration.
    dry_run: bool = True
    # A move of a workload's replicas to another cluster must pay at least this much, net.
    min_net_benefit_usd: float = 0.05
    max_moves_per_pass: int = 10
    max_moves_per_namespace: int = 5
    # After a move, a policy stays where it went for this long (no bouncing back and forth).
    cooldown_seconds: float = 1800.0


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
# Parsing


T = TypeVar("T")


class _Reader:
    """Walks a parsed YAML document, collecting every problem with its dotted key."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, key: str, message: str) -> None:
        self.problems.append(f"{key}: {message}")

    def mapping(self, value: object, key: str) -> Mapping[str, object]:
        if value is None:
            return {}
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            self.fail(key, f"must be a mapping with string keys, got {_describe(value)}")
            return {}
        return value

    def only_keys(self, value: Mapping[str, object], key: str, allowed: set[str]) -> None:
        for unknown in sorted(set(value) - allowed):
            self.fail(_join(key, unknown), f"unknown key (allowed: {', '.join(sorted(allowed))})")

    def number(
        self,
        value: Mapping[str, object],
        key: str,
        name: str,
        default: float,
        *,
        minimum: float | None = None,
        exclusive_minimum: float | None = None,
        maximum: float | None = None,
    ) -> float:
        raw = value.get(name, default)
        full = _join(key, name)
        try:
            number = float(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else math.nan
        except OverflowError:  # an integer too large for a float
            number = math.nan
        if not math.isfinite(number):
            self.fail(full, f"must be a number, got {_describe(raw)}")
            return default
        if minimum is not None and number < minimum:
            self.fail(full, f"must be >= {minimum:g}, got {number:g}")
        if exclusive_minimum is not None and number <= exclusive_minimum:
            self.fail(full, f"must be > {exclusive_minimum:g}, got {number:g}")
        if maximum is not None and number > maximum:
            self.fail(full, f"must be <= {maximum:g}, got {number:g}")
        return number

    def integer(self, value: Mapping[str, object], key: str, name: str, default: int, *, minimum: int) -> int:
        raw = value.get(name, default)
        full = _join(key, name)
        if isinstance(raw, bool) or not isinstance(raw, int):
            self.fail(full, f"must be an integer, got {_describe(raw)}")
            return default
        if raw < minimum:
            self.fail(full, f"must be >= {minimum}, got {raw}")
        return raw

    def boolean(self, value: Mapping[str, object], key: str, name: str, default: bool) -> bool:
        raw = value.get(name, default)
        if not isinstance(raw, bool):
            self.fail(_join(key, name), f"must be true or false, got {_describe(raw)}")
            return default
        return raw

    def string(self, value: Mapping[str, object], key: str, name: str, default: str | None) -> str:
        raw = value.get(name, default)
        if not isinstance(raw, str) or not raw:
            self.fail(_join(key, name), not_a_string(raw))
            return default or ""
        return raw

    def choice(self, value: Mapping[str, object], key: str, name: str, enum: type[T], default: T) -> T:
        raw = value.get(name, default)
        try:
            return enum(raw)  # type: ignore[call-arg]
        except ValueError:
            allowed = ", ".join(str(member) for member in enum)  # type: ignore[attr-defined]
            self.fail(_join(key, name), f"must be one of {allowed}, got {_describe(raw)}")
            return default


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


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
            reader.fail(_join(key, name), "not one of the configured regions")
            continue
        result[name] = reader.number(values, key, name, 0.0, minimum=0.0, maximum=maximum)
    return result


def _parse_carbon(reader: _Reader, raw: Mapping[str, object], names: set[str]) -> CarbonSettings:
    key = "carbon"
    reader.only_keys(
        raw,
        key,
        {
            "provider",
            "mock",
            "refreshSeconds",
            "maxStaleSeconds",
            "requestTimeoutSeconds",
            "electricitymaps",
            "watttime",
            "trace",
        },
    )
    defaults = CarbonSettings()
    provider = reader.choice(raw, key, "provider", CarbonProviderName, defaults.provider)
    mock = _region_number_map(reader, raw.get("mock"), "carbon.mock", names, maximum=5000.0)
    if provider is CarbonProviderName.MOCK:
        for missing in sorted(names - set(mock)):
            reader.fail(f"carbon.mock.{missing}", "missing: the mock provider needs a value for every region")

    em_raw = reader.mapping(raw.get("electricitymaps"), "carbon.electricitymaps")
    reader.only_keys(em_raw, "carbon.electricitymaps", {"baseUrl", "emissionFactorType", "forecast"})
    em_defaults = ElectricityMapsSettings()
    factor = reader.string(
        em_raw, "carbon.electricitymaps", "emissionFactorType", em_defaults.emission_factor_type
    )
    if factor not in {"lifecycle", "direct"}:
        reader.fail(
            "carbon.electricitymaps.emissionFactorType",
            f"must be lifecycle or direct, got {_describe(factor)}",
        )
    electricitymaps = ElectricityMapsSettings(
        base_url=_url(reader, em_raw, "carbon.electricitymaps", "baseUrl", em_defaults.base_url),
        emission_factor_type=factor,
        forecast=reader.boolean(em_raw, "carbon.electricitymaps", "forecast", em_defaults.forecast),
    )

    wt_raw = reader.mapping(raw.get("watttime"), "carbon.watttime")
    reader.only_keys(wt_raw, "carbon.watttime", {"baseUrl", "regions"})
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
    watttime = WattTimeSettings(
        base_url=_url(reader, wt_raw, "carbon.watttime", "baseUrl", WattTimeSettings().base_url),
        regions=MappingProxyType(wt_regions),
    )

    trace = _parse_trace(
        reader,
        reader.mapping(raw.get("trace"), "carbon.trace"),
        required=provider is CarbonProviderName.TRACE,
    )

    refresh = reader.number(raw, key, "refreshSeconds", defaults.refresh_seconds, minimum=1.0)
    max_stale = reader.number(raw, key, "maxStaleSeconds", defaults.max_stale_seconds, minimum=1.0)
    if max_stale < refresh:
        reader.fail(
            "carbon.maxStaleSeconds", f"must be >= carbon.refreshSeconds ({refresh:g}), got {max_stale:g}"
        )
    return CarbonSettings(
        provider=provider,
        mock_g_per_kwh=MappingProxyType(mock),
        refresh_seconds=refresh,
        max_stale_seconds=max_stale,
        request_timeout_seconds=reader.number(
            raw,
            key,
            "requestTimeoutSeconds",
            defaults.request_timeout_seconds,
            exclusive_minimum=0.0,
            maximum=120.0,
        ),
        electricitymaps=electricitymaps,
        watttime=watttime,
        trace=trace,
    )


def _parse_trace(reader: _Reader, raw: Mapping[str, object], *, required: bool) -> TraceSettings:
    key = "carbon.trace"
    reader.only_keys(raw, key, {"path", "intensity", "start", "speedup", "forecastHours", "wallClockStart"})
    d = TraceSettings()
    path = d.path
    if "path" in raw:
        path = reader.string(raw, key, "path", None)
    elif required:
        reader.fail(
            f"{key}.path", "missing: the trace provider needs an hourly intensity CSV (.csv or .csv.gz)"
        )
    intensity = reader.string(raw, key, "intensity", d.intensity)
    if intensity not in {"lifecycle", "direct"}:
        reader.fail(f"{key}.intensity", f"must be lifecycle or direct, got {_describe(intensity)}")
    forecast_hours = reader.integer(raw, key, "forecastHours", d.forecast_hours, minimum=0)
    if forecast_hours > MAX_TRACE_FORECAST_HOURS:
        reader.fail(f"{key}.forecastHours", f"must be <= {MAX_TRACE_FORECAST_HOURS}, got {forecast_hours}")
    return TraceSettings(
        path=path,
        intensity=intensity,
        start=_instant(reader, raw, key, "start"),
        speedup=reader.number(
            raw, key, "speedup", d.speedup, exclusive_minimum=0.0, maximum=MAX_TRACE_SPEEDUP
        ),
        forecast_hours=forecast_hours,
        wall_clock_start=_instant(reader, raw, key, "wallClockStart"),
    )


def _instant(reader: _Reader, raw: Mapping[str, object], key: str, name: str) -> datetime | None:
    """An RFC 3339 time with an offset (YAML may already have made it a datetime), in UTC."""
    value = raw.get(name)
    if value is None:
        return None
    parsed: datetime | None = None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            parsed = None
    if parsed is None or parsed.tzinfo is None:
        reader.fail(
            _join(key, name),
            f"must be an RFC 3339 time with an offset, like 2022-06-01T00:00:00Z, got {_describe(value)}",
        )
        return None
    return parsed.astimezone(UTC)


def _url(reader: _Reader, raw: Mapping[str, object], key: str, name: str, default: str) -> str:
    url = reader.string(raw, key, name, default)
    if not url.startswith(("https://", "http://")):
        reader.fail(_join(key, name), f"must be an http(s) URL, got {_describe(url)}")
    return url.rstrip("/")


def _parse_economics(reader: _Reader, raw: Mapping[str, object], names: set[str]) -> EconomicsSettings:
    key = "economics"
    reader.only_keys(
        raw,
        key,
        {
            "horizonHours",
            "carbonPriceUsdPerTonne",
            "maxCarbonPriceUsdPerTonne",
            "migrationCostUsd",
            "restartDowntimeSeconds",
            "egressUsdPerGb",
            "egressUsdPerGbOverrides",
            "latencyPenaltyUsdPerMsHour",
        },
    )
    d = EconomicsSettings()
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
    return EconomicsSettings(
        horizon_hours=reader.number(
            raw, key, "horizonHours", d.horizon_hours, exclusive_minimum=0.0, maximum=8760.0
        ),
        carbon_price_usd_per_tonne=reader.number(
            raw, key, "carbonPriceUsdPerTonne", d.carbon_price_usd_per_tonne, minimum=0.0
        ),
        max_carbon_price_usd_per_tonne=reader.number(
            raw, key, "maxCarbonPriceUsdPerTonne", d.max_carbon_price_usd_per_tonne, minimum=0.0
        ),
        migration_cost_usd=reader.number(raw, key, "migrationCostUsd", d.migration_cost_usd, minimum=0.0),
        restart_downtime_seconds=reader.number(
            raw, key, "restartDowntimeSeconds", d.restart_downtime_seconds, minimum=0.0
        ),
        egress_usd_per_gb=reader.number(
            raw, key, "egressUsdPerGb", d.egress_usd_per_gb, minimum=0.0, maximum=10.0
        ),
        egress_usd_per_gb_overrides=MappingProxyType(overrides),
        latency_penalty_usd_per_ms_hour=reader.number(
            raw, key, "latencyPenaltyUsdPerMsHour", d.latency_penalty_usd_per_ms_hour, minimum=0.0
        ),
    )


def _parse_power(reader: _Reader, raw: Mapping[str, object]) -> PowerSettings:
    key = "power"
    reader.only_keys(raw, key, {"minWattsPerVcpu", "maxWattsPerVcpu", "cpuUtilisation", "wattsPerGib", "pue"})
    d = PowerSettings()
    low = reader.number(raw, key, "minWattsPerVcpu", d.min_watts_per_vcpu, minimum=0.0, maximum=1000.0)
    high = reader.number(raw, key, "maxWattsPerVcpu", d.max_watts_per_vcpu, minimum=0.0, maximum=1000.0)
    if high < low:
        reader.fail("power.maxWattsPerVcpu", f"must be >= power.minWattsPerVcpu ({low:g}), got {high:g}")
    return PowerSettings(
        min_watts_per_vcpu=low,
        max_watts_per_vcpu=high,
        cpu_utilisation=reader.number(
            raw, key, "cpuUtilisation", d.cpu_utilisation, minimum=0.0, maximum=1.0
        ),
        watts_per_gib=reader.number(raw, key, "wattsPerGib", d.watts_per_gib, minimum=0.0, maximum=100.0),
        pue=reader.number(raw, key, "pue", d.pue, minimum=1.0, maximum=3.0),
    )


def _parse_placement(reader: _Reader, raw: Mapping[str, object]) -> PlacementSettings:
    key = "placement"
    reader.only_keys(raw, key, {"mode", "maxPreferredRegions", "requiredRegionCount", "minNetBenefitUsd"})
    d = PlacementSettings()
    return PlacementSettings(
        mode=reader.choice(raw, key, "mode", PlacementMode, d.mode),
        max_preferred_regions=reader.integer(
            raw, key, "maxPreferredRegions", d.max_preferred_regions, minimum=1
        ),
        required_region_count=reader.integer(
            raw, key, "requiredRegionCount", d.required_region_count, minimum=1
        ),
        min_net_benefit_usd=reader.number(raw, key, "minNetBenefitUsd", d.min_net_benefit_usd),
    )


def _parse_rebalancer(reader: _Reader, raw: Mapping[str, object]) -> RebalancerSettings:
    key = "rebalancer"
    reader.only_keys(
        raw,
        key,
        {
            "intervalSeconds",
            "dryRun",
            "minPodAgeSeconds",
            "minNetBenefitUsd",
            "maxEvictionsPerCycle",
            "maxEvictionsPerNamespace",
            "maxEvictionsPerNode",
            "maxEvictionsPerWorkload",
            "evictLocalStoragePods",
            "evictPvcPods",
            "evictionGracePeriodSeconds",
            "holdHours",
            "gapErrorMargin",
            "historyWindowHours",
        },
    )
    d = RebalancerSettings()
    grace: int | None = None
    if "evictionGracePeriodSeconds" in raw:
        grace = reader.integer(raw, key, "evictionGracePeriodSeconds", 30, minimum=0)
    return RebalancerSettings(
        interval_seconds=reader.number(raw, key, "intervalSeconds", d.interval_seconds, minimum=1.0),
        dry_run=reader.boolean(raw, key, "dryRun", d.dry_run),
        min_pod_age_seconds=reader.number(raw, key, "minPodAgeSeconds", d.min_pod_age_seconds, minimum=0.0),
        min_net_benefit_usd=reader.number(raw, key, "minNetBenefitUsd", d.min_net_benefit_usd, minimum=0.0),
        max_evictions_per_cycle=reader.integer(
            raw, key, "maxEvictionsPerCycle", d.max_evictions_per_cycle, minimum=0
        ),
        max_evictions_per_namespace=reader.integer(
            raw, key, "maxEvictionsPerNamespace", d.max_evictions_per_namespace, minimum=0
        ),
        max_evictions_per_node=reader.integer(
            raw, key, "maxEvictionsPerNode", d.max_evictions_per_node, minimum=0
        ),
        max_evictions_per_workload=reader.integer(
            raw, key, "maxEvictionsPerWorkload", d.max_evictions_per_workload, minimum=0
        ),
        evict_local_storage_pods=reader.boolean(
            raw, key, "evictLocalStoragePods", d.evict_local_storage_pods
        ),
        evict_pvc_pods=reader.boolean(raw, key, "evictPvcPods", d.evict_pvc_pods),
        eviction_grace_period_seconds=grace,
        hold_hours=reader.integer(raw, key, "holdHours", d.hold_hours, minimum=0),
        gap_error_margin=reader.number(raw, key, "gapErrorMargin", d.gap_error_margin, minimum=0.0),
        history_window_hours=reader.integer(
            raw, key, "historyWindowHours", d.history_window_hours, minimum=1
        ),
    )


def _parse_fleet(reader: _Reader, raw: Mapping[str, object]) -> FleetSettings:
    key = "fleet"
    reader.only_keys(
        raw,
        key,
        {
            "intervalSeconds",
            "dryRun",
            "minNetBenefitUsd",
            "maxMovesPerPass",
            "maxMovesPerNamespace",
            "cooldownSeconds",
        },
    )
    d = FleetSettings()
    return FleetSettings(
        interval_seconds=reader.number(raw, key, "intervalSeconds", d.interval_seconds, minimum=1.0),
        dry_run=reader.boolean(raw, key, "dryRun", d.dry_run),
        min_net_benefit_usd=reader.number(raw, key, "minNetBenefitUsd", d.min_net_benefit_usd, minimum=0.0),
        max_moves_per_pass=reader.integer(raw, key, "maxMovesPerPass", d.max_moves_per_pass, minimum=0),
        max_moves_per_namespace=reader.integer(
            raw, key, "maxMovesPerNamespace", d.max_moves_per_namespace, minimum=0
        ),
        cooldown_seconds=reader.number(raw, key, "cooldownSeconds", d.cooldown_seconds, minimum=0.0),
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


EARTH_RADIUS_KM = 6371.0
# Light in fibre covers about 200 km per ms; real paths run about 1.5x the great circle.
FIBRE_KM_PER_MS = 200.0
ROUTE_INFLATION = 1.5
RTT_OVERHEAD_MS = 2.0


def estimated_rtt_ms(source: tuple[float, float], target: tuple[float, float]) -> float:
    """Round-trip estimate from (latitude, longitude) in degrees, for pairs with no measurement."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*source, *target))
    haversine = (
        math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    distance_km = 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(1.0, haversine)))
    return round(2 * distance_km * ROUTE_INFLATION / FIBRE_KM_PER_MS + RTT_OVERHEAD_MS, 1)


def load_config(path: Path) -> EcoPulseConfiguration:
    """Read and validate a configuration file; every failure is a ConfigError naming the file."""
    source = str(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as error:
        raise ConfigError([f"cannot read: {error.strerror or error}"], source=source) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError([f"larger than {MAX_CONFIG_BYTES} bytes"], source=source)
    return parse_config_text(data.decode("utf-8", errors="replace"), source=source)


def parse_config_text(text: str, *, source: str = "") -> EcoPulseConfiguration:
    try:
        document = load_yaml(text)
    except YamlInputError as error:
        raise ConfigError([error.problem], source=source) from None
    return parse_config(document, source=source)


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
