"""The bundled offline catalog: list prices, region -> grid zone and location, zone intensity, zone RTT.

The data ships inside the ``core`` package (``core/data/``; where every figure comes from is in
``core/data/SOURCES.md``) and is read with :mod:`importlib.resources`, so it works from a wheel or a
zip as well as from a checkout. Each file is parsed into typed values at once and checked: a malformed
bundled file raises :class:`CatalogError` naming the file and the entry, never a ``KeyError`` later.

Every ``load_*`` function is cached and returns the same object on every call: treat it as read-only.
The ``parse_*`` functions do the work on a text and are what the loaders cache.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Final

from core.model import PriceRates

DATA_PACKAGE: Final = "core"
DATA_DIR: Final = "data"
PRICES_FILE: Final = "prices.json"
REGIONS_FILE: Final = "regions.json"
ZONE_INTENSITY_FILE: Final = "zone-intensity.csv"
ZONE_RTT_FILE: Final = "zone-rtt-ms.csv"

CLOUDS: Final = frozenset({"aws", "gcp", "azure"})

_PRICE_FIELDS: Final = {
    "vcpuHour": "vcpu_hour_usd",
    "gibHour": "gib_hour_usd",
    "spotVcpuHour": "spot_vcpu_hour_usd",
    "spotGibHour": "spot_gib_hour_usd",
}
_PRICE_KEYS: Final = frozenset({*_PRICE_FIELDS, "cloud", "source"})
_REGION_KEYS: Final = frozenset({"cloud", "zone", "latitude", "longitude"})
_INTENSITY_HEADER: Final = ["zone", "carbon_g_per_kwh", "year"]
_RTT_HEADER: Final = ["from_zone", "to_zone", "rtt_ms"]


class CatalogError(ValueError):
    """A bundled data file is missing or malformed; the message names the file and the entry."""


# --- reading -----------------------------------------------------------------------------------


def read_data_file(name: str) -> str:
    """The text of one bundled file under ``core/data``."""
    try:
        return resources.files(DATA_PACKAGE).joinpath(DATA_DIR).joinpath(name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{name}: cannot read the bundled file: {exc}") from exc


# --- typed checks (JSON arrives as ``object``; nothing untyped leaves these helpers) ---------------


def _json_object(value: object, where: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise CatalogError(f"{where}: expected an object, got {_describe(value)}")
    result: dict[str, object] = {}
    for key, item in value.items():
        if not isinstance(key, str):  # pragma: no cover - JSON object keys are always strings
            raise CatalogError(f"{where}: key {key!r} is not a string")
        result[key] = item
    return result


def _exact_keys(entry: dict[str, object], where: str, expected: frozenset[str]) -> None:
    missing = expected - entry.keys()
    unknown = entry.keys() - expected
    if missing:
        raise CatalogError(f"{where}: missing {', '.join(sorted(missing))}")
    if unknown:
        raise CatalogError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")


def _string(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise CatalogError(f"{where}: expected a non-empty string, got {_describe(value)}")
    return value


def _number(value: object, where: str, *, minimum: float, maximum: float, exclusive_min: bool) -> float:
    # bool is an int subclass; true/false is never a price or a coordinate.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CatalogError(f"{where}: expected a number, got {_describe(value)}")
    number = float(value)
    too_low = number <= minimum if exclusive_min else number < minimum
    if not math.isfinite(number) or too_low or number > maximum:
        bound = ">" if exclusive_min else ">="
        raise CatalogError(f"{where}: must be {bound} {minimum:g} and <= {maximum:g}, got {value!r}")
    return number


def _csv_number(text: str, where: str, *, minimum: float, maximum: float, exclusive_min: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise CatalogError(f"{where}: expected a number, got {text!r}") from None
    return _number(value, where, minimum=minimum, maximum=maximum, exclusive_min=exclusive_min)


def _describe(value: object) -> str:
    if value is None:
        return "null"
    return f"{type(value).__name__} {value!r}"[:80]


def _load_json(text: str, name: str) -> dict[str, object]:
    try:
        raw: object = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CatalogError(f"{name}: not valid JSON: {exc}") from exc
    document = _json_object(raw, name)
    if not document:
        raise CatalogError(f"{name}: is empty")
    return document


def _csv_rows(text: str, name: str, header: list[str]) -> list[tuple[int, list[str]]]:
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or rows[0] != header:
        found = rows[0] if rows else "nothing"
        raise CatalogError(f"{name}: header must be {','.join(header)}, got {found}")
    body: list[tuple[int, list[str]]] = []
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise CatalogError(f"{name}:{line}: expected {len(header)} fields, got {len(row)}")
        body.append((line, [cell.strip() for cell in row]))
    if not body:
        raise CatalogError(f"{name}: has no rows")
    return body


def _region_entries(
    text: str, name: str, keys: frozenset[str]
) -> Iterator[tuple[str, str, dict[str, object], str]]:
    """``(region, where, entry, cloud)`` for each entry of a ``{region: {...}}`` file, checked the one
    way every such file is: an object with exactly ``keys``, among them a known ``cloud``."""
    for region, raw in _load_json(text, name).items():
        where = f"{name}: {region}"
        entry = _json_object(raw, where)
        _exact_keys(entry, where, keys)
        cloud = _string(entry["cloud"], f"{where}.cloud")
        if cloud not in CLOUDS:
            raise CatalogError(f"{where}.cloud: must be one of {', '.join(sorted(CLOUDS))}, got {cloud!r}")
        yield region, where, entry, cloud


# --- parsers -----------------------------------------------------------------------------------


def parse_price_table(text: str, name: str = PRICES_FILE) -> dict[str, PriceRates]:
    """``{region: {vcpuHour, gibHour, spotVcpuHour, spotGibHour, cloud, source}}`` -> PriceRates."""
    table: dict[str, PriceRates] = {}
    for region, where, entry, _cloud in _region_entries(text, name, _PRICE_KEYS):
        rates = {
            attr: _number(entry[key], f"{where}.{key}", minimum=0.0, maximum=100.0, exclusive_min=True)
            for key, attr in _PRICE_FIELDS.items()
        }
        table[region] = PriceRates(
            vcpu_hour_usd=rates["vcpu_hour_usd"],
            gib_hour_usd=rates["gib_hour_usd"],
            spot_vcpu_hour_usd=rates["spot_vcpu_hour_usd"],
            spot_gib_hour_usd=rates["spot_gib_hour_usd"],
            source=_string(entry["source"], f"{where}.source"),
        )
    return table


@dataclass(frozen=True, slots=True, kw_only=True)
class CatalogRegion:
    """One bundled region: its cloud, the Electricity Maps zone it draws from, and where it is."""

    cloud: str
    zone: str
    latitude: float
    longitude: float


def parse_regions(text: str, name: str = REGIONS_FILE) -> dict[str, CatalogRegion]:
    """``{region: {cloud, zone, latitude, longitude}}`` -> CatalogRegion."""
    regions: dict[str, CatalogRegion] = {}
    for region, where, entry, cloud in _region_entries(text, name, _REGION_KEYS):
        regions[region] = CatalogRegion(
            cloud=cloud,
            zone=_string(entry["zone"], f"{where}.zone"),
            latitude=_number(
                entry["latitude"], f"{where}.latitude", minimum=-90, maximum=90, exclusive_min=False
            ),
            longitude=_number(
                entry["longitude"], f"{where}.longitude", minimum=-180, maximum=180, exclusive_min=False
            ),
        )
    return regions


def parse_zone_intensity(text: str, name: str = ZONE_INTENSITY_FILE) -> dict[str, float]:
    """``zone,carbon_g_per_kwh,year`` -> {zone: gCO2eq/kWh}."""
    intensity: dict[str, float] = {}
    for line, (zone, cell, year) in _csv_rows(text, name, _INTENSITY_HEADER):
        where = f"{name}:{line}"
        if not zone:
            raise CatalogError(f"{where}: empty zone")
        if zone in intensity:
            raise CatalogError(f"{where}: duplicate zone {zone!r}")
        if not year.isdigit():
            raise CatalogError(f"{where}: year must be an integer, got {year!r}")
        intensity[zone] = _csv_number(
            cell, f"{where} ({zone})", minimum=0.0, maximum=5000.0, exclusive_min=True
        )
    return intensity


def parse_zone_rtt_ms(text: str, name: str = ZONE_RTT_FILE) -> dict[tuple[str, str], float]:
    """``from_zone,to_zone,rtt_ms`` -> {(from, to): ms}, symmetric: a missing direction is filled in.

    Both directions given with different values is an error: the bundled matrix is symmetric.
    """
    rtt: dict[tuple[str, str], float] = {}
    for line, (source, target, cell) in _csv_rows(text, name, _RTT_HEADER):
        where = f"{name}:{line}"
        if not source or not target:
            raise CatalogError(f"{where}: empty zone")
        if (source, target) in rtt:
            raise CatalogError(f"{where}: duplicate pair {source} -> {target}")
        rtt[(source, target)] = _csv_number(
            cell, f"{where} ({source} -> {target})", minimum=0.0, maximum=10_000.0, exclusive_min=False
        )
    result = dict(rtt)
    for (source, target), ms in rtt.items():
        reverse = rtt.get((target, source))
        if reverse is None:
            result[(target, source)] = ms
        elif reverse != ms:
            raise CatalogError(
                f"{name}: asymmetric {source} -> {target} = {ms:g} but {target} -> {source} = {reverse:g}"
            )
    return result


# --- cached loaders ----------------------------------------------------------------------------


@cache
def load_price_table() -> dict[str, PriceRates]:
    """Bundled on-demand and spot list prices per region (USD per vCPU-hour and per GiB-hour)."""
    return parse_price_table(read_data_file(PRICES_FILE))


@cache
def load_regions() -> dict[str, CatalogRegion]:
    """Every bundled region with its cloud, grid zone and location."""
    return parse_regions(read_data_file(REGIONS_FILE))


@cache
def load_region_zones() -> dict[str, str]:
    """Region name (the topology.kubernetes.io/region value) -> Electricity Maps zone id."""
    return {name: region.zone for name, region in load_regions().items()}


@cache
def load_region_locations() -> dict[str, tuple[float, float]]:
    """Region name -> (latitude, longitude) in degrees, for maps."""
    return {name: (region.latitude, region.longitude) for name, region in load_regions().items()}


@cache
def load_zone_intensity() -> dict[str, float]:
    """Zone -> annual mean lifecycle carbon intensity in gCO2eq/kWh (2022), the offline default."""
    return parse_zone_intensity(read_data_file(ZONE_INTENSITY_FILE))


@cache
def load_zone_rtt_ms() -> dict[tuple[str, str], float]:
    """(from zone, to zone) -> round-trip time in ms; both directions are present."""
    return parse_zone_rtt_ms(read_data_file(ZONE_RTT_FILE))
