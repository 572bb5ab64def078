"""The bundled offline catalog: complete, consistent, cached, and strict about malformed files."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from core.catalog import (
    CLOUDS,
    CatalogError,
    load_price_table,
    load_region_locations,
    load_region_zones,
    load_regions,
    load_zone_intensity,
    load_zone_rtt_ms,
    parse_price_table,
    parse_regions,
    parse_zone_intensity,
    parse_zone_rtt_ms,
)
from core.model import CapacityType

# --- prices ------------------------------------------------------------------------------------


def test_every_priced_region_has_four_positive_prices_spot_below_on_demand_and_a_source() -> None:
    table = load_price_table()
    assert len(table) >= 40
    for region, rates in table.items():
        on_demand = (rates.vcpu_hour_usd, rates.gib_hour_usd)
        spot = (rates.spot_vcpu_hour_usd, rates.spot_gib_hour_usd)
        assert all(value > 0 for value in (*on_demand, *spot)), region
        assert rates.spot_vcpu_hour_usd < rates.vcpu_hour_usd, region
        assert rates.spot_gib_hour_usd < rates.gib_hour_usd, region
        assert rates.source.strip(), region
        assert "ESTIMATE" in rates.source, region  # spot figures are labelled as estimates


def test_every_priced_region_is_a_known_region() -> None:
    assert set(load_price_table()) <= set(load_region_zones())


@pytest.mark.parametrize(
    ("region", "instance_usd_per_hour"),
    [
        ("us-east-1", 0.096),  # AWS m5.large
        ("eu-north-1", 0.102),  # AWS m5.large
        ("us-central1", 0.097118),  # GCP n2-standard-2
        ("europe-west3", 0.125124),  # GCP n2-standard-2
        ("westeurope", 0.115),  # Azure Standard_D2s_v5
        ("swedencentral", 0.102),  # Azure Standard_D2s_v5
    ],
)
def test_reference_instance_2_vcpu_8_gib_costs_its_list_price(
    region: str, instance_usd_per_hour: float
) -> None:
    rates = load_price_table()[region]
    price = rates.per_hour_usd(cpu_cores=2, memory_gib=8, capacity_type=CapacityType.ON_DEMAND)
    assert price == pytest.approx(instance_usd_per_hour, abs=1e-6)


def test_us_central1_reproduces_the_gcp_n2_sku_prices() -> None:
    rates = load_price_table()["us-central1"]
    assert rates.vcpu_hour_usd == pytest.approx(0.031611)
    assert rates.gib_hour_usd == pytest.approx(0.004237)


# --- regions, zones, locations -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("region", "zone"),
    [
        ("us-east-1", "US-MIDA-PJM"),
        ("eu-west-1", "IE"),
        ("eu-north-1", "SE-SE3"),
        ("eu-central-1", "DE"),
        ("us-central1", "US-CENT-SWPP"),
        ("europe-north1", "FI"),
        ("australia-southeast1", "AU-NSW"),  # the paper's AUS-NSW, as Electricity Maps spells it
        ("swedencentral", "SE-SE3"),
        ("westeurope", "NL"),
    ],
)
def test_known_region_zones(region: str, zone: str) -> None:
    assert load_region_zones()[region] == zone


def test_every_region_zone_has_an_intensity() -> None:
    intensity = load_zone_intensity()
    missing = {region: zone for region, zone in load_region_zones().items() if zone not in intensity}
    assert not missing


def test_every_region_has_a_cloud_and_a_plausible_location() -> None:
    locations = load_region_locations()
    assert set(locations) == set(load_region_zones())
    for name, region in load_regions().items():
        assert region.cloud in CLOUDS, name
        latitude, longitude = locations[name]
        assert -90 <= latitude <= 90, name
        assert -180 <= longitude <= 180, name
    assert locations["eu-north-1"][0] > 55  # Stockholm is north of 55°N
    assert locations["ap-southeast-2"][0] < 0  # Sydney is south of the equator


# --- intensity ---------------------------------------------------------------------------------


def test_zone_intensity_has_all_123_zones_of_2022() -> None:
    intensity = load_zone_intensity()
    assert len(intensity) == 123
    assert intensity["SE-SE3"] == pytest.approx(23.4, abs=0.05)
    assert intensity["FR"] == pytest.approx(99.4, abs=0.05)
    assert all(value > 0 for value in intensity.values())


# --- RTT ---------------------------------------------------------------------------------------


def test_rtt_is_symmetric_with_a_near_zero_diagonal() -> None:
    rtt = load_zone_rtt_ms()
    zones = {source for source, _ in rtt}
    assert len(zones) == 34
    for source in zones:
        assert rtt[(source, source)] <= 5.0
        for target in zones:
            assert rtt[(source, target)] == rtt[(target, source)], (source, target)


def test_norway_uses_finland_as_its_latency_proxy() -> None:
    rtt = load_zone_rtt_ms()
    zones = {source for source, _ in rtt} - {"NO"}
    for target in zones:
        assert rtt[("NO", target)] == rtt[("FI", target)], target


@pytest.mark.parametrize(
    ("source", "target", "ms"),
    [
        ("US-MIDA-PJM", "CA-QC", 14.0),  # the lower of the two us-east4/us-east5 rows
        ("AU-NSW", "AU-VIC", 13.0),  # the lower of the two directions (13 and 14)
        ("DE", "NL", 7.0),
        ("US-MIDA-PJM", "US-MIDA-PJM", 5.0),
    ],
)
def test_known_rtt_values(source: str, target: str, ms: float) -> None:
    assert load_zone_rtt_ms()[(source, target)] == ms


# --- caching -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "loader",
    [
        load_price_table,
        load_regions,
        load_region_zones,
        load_region_locations,
        load_zone_intensity,
        load_zone_rtt_ms,
    ],
)
def test_loaders_return_the_same_object_every_time(loader: Callable[[], object]) -> None:
    assert loader() is loader()


# --- malformed files ---------------------------------------------------------------------------

_GOOD_PRICE = {
    "vcpuHour": 0.03,
    "gibHour": 0.004,
    "spotVcpuHour": 0.01,
    "spotGibHour": 0.001,
    "cloud": "aws",
    "source": "test",
}


_DROP = object()  # a change that removes the key


def _prices(**changes: object) -> str:
    entry: dict[str, object] = {**_GOOD_PRICE, **changes}
    return json.dumps({"r1": {key: value for key, value in entry.items() if value is not _DROP}})


def test_a_good_price_entry_parses() -> None:
    rates = parse_price_table(_prices())["r1"]
    assert rates.vcpu_hour_usd == 0.03
    assert rates.source == "test"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "expected an object"),
        ("{}", "is empty"),
        (json.dumps({"r1": 3}), "r1: expected an object"),
        (_prices(gibHour=_DROP), "r1: missing gibHour"),
        (_prices(vcpuHours=0.1), "unknown key(s) vcpuHours"),
        (_prices(vcpuHour=-0.1), "r1.vcpuHour: must be > 0"),
        (_prices(vcpuHour=0), "r1.vcpuHour: must be > 0"),
        (_prices(spotGibHour="0.001"), "r1.spotGibHour: expected a number"),
        (_prices(spotGibHour=True), "r1.spotGibHour: expected a number"),
        (_prices(cloud="oracle"), "r1.cloud: must be one of"),
        (_prices(source=" "), "r1.source: expected a non-empty string"),
        (json.dumps({"r1": {**_GOOD_PRICE, "gibHour": float("nan")}}), "r1.gibHour: must be"),
    ],
)
def test_malformed_price_files_raise_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(CatalogError) as error:
        parse_price_table(text)
    assert message in str(error.value)
    assert str(error.value).startswith("prices.json")


_GOOD_REGION = {"cloud": "gcp", "zone": "BE", "latitude": 50.4, "longitude": 3.8}


def test_a_good_region_entry_parses() -> None:
    region = parse_regions(json.dumps({"r1": _GOOD_REGION}))["r1"]
    assert (region.cloud, region.zone, region.latitude, region.longitude) == ("gcp", "BE", 50.4, 3.8)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"zone": ""}, "r1.zone: expected a non-empty string"),
        ({"latitude": 91}, "r1.latitude: must be >= -90 and <= 90"),
        ({"longitude": None}, "r1.longitude: expected a number, got null"),
        ({"cloud": "ibm"}, "r1.cloud: must be one of aws, azure, gcp"),
        ({"elevation": 3}, "r1: unknown key(s) elevation"),
    ],
)
def test_malformed_region_files_raise_a_clear_error(changes: dict[str, object], message: str) -> None:
    with pytest.raises(CatalogError) as error:
        parse_regions(json.dumps({"r1": {**_GOOD_REGION, **changes}}))
    assert str(error.value).startswith("regions.json")
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("zone,g,year\nSE,1,2022\n", "header must be zone,carbon_g_per_kwh,year"),
        ("zone,carbon_g_per_kwh,year\n", "has no rows"),
        ("zone,carbon_g_per_kwh,year\nSE,1\n", ":2: expected 3 fields"),
        ("zone,carbon_g_per_kwh,year\nSE,abc,2022\n", ":2 (SE): expected a number"),
        ("zone,carbon_g_per_kwh,year\nSE,-1,2022\n", ":2 (SE): must be > 0"),
        ("zone,carbon_g_per_kwh,year\nSE,1,2022\nSE,2,2022\n", ":3: duplicate zone 'SE'"),
        ("zone,carbon_g_per_kwh,year\nSE,1,last\n", "year must be an integer"),
    ],
)
def test_malformed_intensity_files_raise_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(CatalogError) as error:
        parse_zone_intensity(text)
    assert message in str(error.value)


def test_rtt_fills_a_missing_direction() -> None:
    rtt = parse_zone_rtt_ms("from_zone,to_zone,rtt_ms\nA,B,12\nA,A,5\n")
    assert rtt == {("A", "B"): 12.0, ("B", "A"): 12.0, ("A", "A"): 5.0}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("from,to,ms\nA,B,1\n", "header must be from_zone,to_zone,rtt_ms"),
        ("from_zone,to_zone,rtt_ms\nA,B,1\nB,A,2\n", "asymmetric A -> B = 1 but B -> A = 2"),
        ("from_zone,to_zone,rtt_ms\nA,B,1\nA,B,1\n", ":3: duplicate pair A -> B"),
        ("from_zone,to_zone,rtt_ms\nA,B,-3\n", "must be >= 0"),
        ("from_zone,to_zone,rtt_ms\nA,,3\n", ":2: empty zone"),
    ],
)
def test_malformed_rtt_files_raise_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(CatalogError) as error:
        parse_zone_rtt_ms(text)
    assert message in str(error.value)
