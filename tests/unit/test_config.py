"""core.config: the embedded default and the example parse; every bad key is named; prices and latency."""

from __future__ import annotations

import copy
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from core.config import (
    API_VERSION,
    DEFAULT_CONFIG_YAML,
    KIND,
    MAX_CONFIG_BYTES,
    RTT_OVERHEAD_MS,
    WATTTIME_FORECAST_HOURS,
    CarbonProviderName,
    ConfigError,
    EconomicsSettings,
    EcoPulseConfiguration,
    PlacementMode,
    default_config,
    estimated_rtt_ms,
    load_config,
    parse_config,
    parse_config_text,
)
from core.signals import watttime

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "config.yaml"

THREE_REGIONS = [
    {"name": "us-east-1", "zone": "US-MIDA-PJM"},
    {"name": "eu-west-1", "zone": "IE"},
    {"name": "eu-north-1", "zone": "SE-SE3"},
]
FOUR_PRICES = {"vcpuHour": 0.05, "gibHour": 0.006, "spotVcpuHour": 0.02, "spotGibHour": 0.002}


def document(**sections: Any) -> dict[str, Any]:
    """A valid configuration document with top-level ``sections`` replaced (or added)."""
    doc: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "regions": copy.deepcopy(THREE_REGIONS),
        "baselineRegion": "us-east-1",
        "carbon": {"provider": "static"},
    }
    doc.update(copy.deepcopy(sections))
    return doc


def parse(**sections: Any) -> EcoPulseConfiguration:
    """Parse through the YAML text path, as a mounted ConfigMap would be."""
    return parse_config_text(yaml.safe_dump(document(**sections)), source="test.yaml")


def problems_of(doc: object) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(doc, source="test.yaml")
    return caught.value.problems


def has_key(problems: list[str], key: str) -> bool:
    return any(problem.startswith(f"{key}: ") for problem in problems)


# --- what must parse ---------------------------------------------------------------------------


def test_embedded_default_parses_to_three_aws_regions_with_static_carbon() -> None:
    config = default_config()
    assert config.region_names == ("us-east-1", "eu-west-1", "eu-north-1")
    assert config.baseline_region == "us-east-1"
    assert config.carbon.provider is CarbonProviderName.STATIC
    assert config.placement.mode is PlacementMode.PREFERRED
    assert set(config.prices) == set(config.region_names)
    assert parse_config_text(DEFAULT_CONFIG_YAML) == config


def test_example_file_parses_with_mock_values_and_its_price_overrides() -> None:
    config = load_config(EXAMPLE)
    assert config.carbon.provider is CarbonProviderName.MOCK
    assert dict(config.carbon.mock_g_per_kwh) == {"us-east-1": 450.0, "eu-west-1": 300.0, "eu-north-1": 30.0}
    assert config.economics.horizon_hours == 6.0
    for name in config.region_names:
        assert config.prices[name].vcpu_hour_usd == 0.0312
        assert config.prices[name].source == "config"


def test_a_missing_baseline_defaults_to_the_first_region() -> None:
    doc = document()
    del doc["baselineRegion"]
    assert parse_config(doc).baseline_region == "us-east-1"


def test_a_region_without_zone_takes_its_bundled_zone() -> None:
    config = parse(regions=[{"name": "us-east-1"}, {"name": "eu-west-1"}])
    assert config.region("eu-west-1") is not None
    assert config.region("eu-west-1") == config.regions[1]
    assert config.regions[1].zone == "IE"


def test_the_trace_provider_section_parses_with_its_defaults() -> None:
    config = parse(carbon={"provider": "trace", "trace": {"path": "grid.csv.gz"}})
    assert config.carbon.provider is CarbonProviderName.TRACE
    trace = config.carbon.trace
    assert (trace.path, trace.intensity, trace.start, trace.speedup, trace.forecast_hours) == (
        "grid.csv.gz",
        "lifecycle",
        None,
        1.0,
        0,
    )
    assert trace.wall_clock_start is None
    assert config.carbon.forecast_hours == 0


def test_the_trace_times_are_rfc3339_and_end_up_in_utc() -> None:
    text = """
regions: [{name: us-east-1, zone: US-MIDA-PJM}]
carbon:
  provider: trace
  trace: {path: t.csv, intensity: direct, start: 2022-06-01T02:00:00+02:00, speedup: 3600,
          forecastHours: 6, wallClockStart: "2026-01-01T00:00:00Z"}
"""
    carbon = parse_config_text(text).carbon
    assert carbon.trace.start == datetime(2022, 6, 1, 0, 0, tzinfo=UTC)
    assert carbon.trace.wall_clock_start == datetime(2026, 1, 1, tzinfo=UTC)
    assert (carbon.trace.intensity, carbon.trace.speedup) == ("direct", 3600.0)
    assert carbon.forecast_hours == 6


@pytest.mark.parametrize(
    ("carbon", "hours"),
    [
        ({"provider": "static"}, 0),
        ({"provider": "electricitymaps"}, 0),
        ({"provider": "electricitymaps", "electricitymaps": {"forecast": True}}, 24),
        ({"provider": "trace", "trace": {"path": "t.csv", "forecastHours": 12}}, 12),
        ({"provider": "static", "trace": {"path": "t.csv", "forecastHours": 12}}, 0),
    ],
)
def test_forecast_hours_is_what_the_configured_provider_gives(carbon: dict[str, Any], hours: int) -> None:
    assert parse(carbon=carbon).carbon.forecast_hours == hours


def test_watttime_forecast_hours_is_what_the_provider_asks_for() -> None:
    assert WATTTIME_FORECAST_HOURS == watttime.DEFAULT_HORIZON_HOURS


# --- what must not parse: every problem names its dotted key -----------------------------------

INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("refresh zero", {"carbon": {"provider": "static", "refreshSeconds": 0}}, "carbon.refreshSeconds"),
    ("refresh text", {"carbon": {"refreshSeconds": "soon"}}, "carbon.refreshSeconds"),
    (
        "stale below refresh",
        {"carbon": {"refreshSeconds": 600, "maxStaleSeconds": 60}},
        "carbon.maxStaleSeconds",
    ),
    ("timeout too long", {"carbon": {"requestTimeoutSeconds": 121}}, "carbon.requestTimeoutSeconds"),
    ("unknown provider", {"carbon": {"provider": "crystal-ball"}}, "carbon.provider"),
    ("unknown carbon key", {"carbon": {"refreshSecs": 5}}, "carbon.refreshSecs"),
    (
        "mock misses a region",
        {"carbon": {"provider": "mock", "mock": {"us-east-1": 400, "eu-north-1": 30}}},
        "carbon.mock.eu-west-1",
    ),
    (
        "mock names an unknown region",
        {"carbon": {"mock": {"nowhere-1": 400}}},
        "carbon.mock.nowhere-1",
    ),
    ("mock negative", {"carbon": {"mock": {"us-east-1": -1}}}, "carbon.mock.us-east-1"),
    (
        "watttime misses regions",
        {"carbon": {"provider": "watttime", "watttime": {"regions": {"us-east-1": "PJM"}}}},
        "carbon.watttime.regions.eu-west-1",
    ),
    (
        "electricitymaps not a URL",
        {"carbon": {"electricitymaps": {"baseUrl": "ftp://example.com"}}},
        "carbon.electricitymaps.baseUrl",
    ),
    (
        "electricitymaps factor",
        {"carbon": {"electricitymaps": {"emissionFactorType": "indirect"}}},
        "carbon.electricitymaps.emissionFactorType",
    ),
    ("trace without a path", {"carbon": {"provider": "trace"}}, "carbon.trace.path"),
    ("trace path empty", {"carbon": {"provider": "trace", "trace": {"path": ""}}}, "carbon.trace.path"),
    ("trace unknown key", {"carbon": {"trace": {"path": "t.csv", "sped": 2}}}, "carbon.trace.sped"),
    (
        "trace intensity",
        {"carbon": {"trace": {"path": "t.csv", "intensity": "marginal"}}},
        "carbon.trace.intensity",
    ),
    ("trace speedup zero", {"carbon": {"trace": {"path": "t.csv", "speedup": 0}}}, "carbon.trace.speedup"),
    (
        "trace speedup text",
        {"carbon": {"trace": {"path": "t.csv", "speedup": "fast"}}},
        "carbon.trace.speedup",
    ),
    ("trace forecast negative", {"carbon": {"trace": {"forecastHours": -1}}}, "carbon.trace.forecastHours"),
    ("trace forecast too long", {"carbon": {"trace": {"forecastHours": 169}}}, "carbon.trace.forecastHours"),
    ("trace forecast float", {"carbon": {"trace": {"forecastHours": 1.5}}}, "carbon.trace.forecastHours"),
    ("trace start not a time", {"carbon": {"trace": {"start": "midsummer"}}}, "carbon.trace.start"),
    (
        "trace start without offset",
        {"carbon": {"trace": {"start": "2022-06-01T00:00:00"}}},
        "carbon.trace.start",
    ),
    ("trace start a number", {"carbon": {"trace": {"start": 2022}}}, "carbon.trace.start"),
    (
        "trace wall start not a time",
        {"carbon": {"trace": {"wallClockStart": "now"}}},
        "carbon.trace.wallClockStart",
    ),
    ("trace not a mapping", {"carbon": {"trace": "t.csv"}}, "carbon.trace"),
    ("region without name", {"regions": [{"name": "us-east-1"}, {"zone": "IE"}]}, "regions[1].name"),
    ("duplicate region", {"regions": [{"name": "us-east-1"}, {"name": "us-east-1"}]}, "regions[1].name"),
    (
        "region with no known zone",
        {"regions": [{"name": "us-east-1"}, {"name": "my-datacentre"}]},
        "regions[1].zone",
    ),
    ("unknown region key", {"regions": [{"name": "us-east-1", "zones": "X"}]}, "regions[0].zones"),
    ("regions empty", {"regions": []}, "regions"),
    ("regions not a list", {"regions": "us-east-1"}, "regions"),
    ("baseline unknown", {"baselineRegion": "mars-1"}, "baselineRegion"),
    ("baseline not a string", {"baselineRegion": 7}, "baselineRegion"),
    ("unknown top-level key", {"placment": {"mode": "required"}}, "placment"),
    ("apiVersion wrong", {"apiVersion": "ecopulse.io/v1"}, "apiVersion"),
    ("kind wrong", {"kind": "ConfigMap"}, "kind"),
    ("price for unknown region", {"prices": {"nowhere-1": FOUR_PRICES}}, "prices.nowhere-1"),
    ("unknown price key", {"prices": {"us-east-1": {"vcpuHours": 1}}}, "prices.us-east-1.vcpuHours"),
    ("negative price", {"prices": {"us-east-1": {"vcpuHour": -0.1}}}, "prices.us-east-1.vcpuHour"),
    ("horizon zero", {"economics": {"horizonHours": 0}}, "economics.horizonHours"),
    ("horizon over a year", {"economics": {"horizonHours": 9000}}, "economics.horizonHours"),
    ("horizon infinite", {"economics": {"horizonHours": math.inf}}, "economics.horizonHours"),
    ("horizon bool", {"economics": {"horizonHours": True}}, "economics.horizonHours"),
    (
        "carbon price negative",
        {"economics": {"carbonPriceUsdPerTonne": -1}},
        "economics.carbonPriceUsdPerTonne",
    ),
    (
        "egress overrides not a list",
        {"economics": {"egressUsdPerGbOverrides": {"from": "us-east-1"}}},
        "economics.egressUsdPerGbOverrides",
    ),
    (
        "egress override to unknown region",
        {"economics": {"egressUsdPerGbOverrides": [{"from": "us-east-1", "to": "mars-1", "usdPerGb": 0.1}]}},
        "economics.egressUsdPerGbOverrides[0].to",
    ),
    ("power max below min", {"power": {"minWattsPerVcpu": 3, "maxWattsPerVcpu": 1}}, "power.maxWattsPerVcpu"),
    ("pue below one", {"power": {"pue": 0.9}}, "power.pue"),
    ("utilisation above one", {"power": {"cpuUtilisation": 1.5}}, "power.cpuUtilisation"),
    ("placement mode", {"placement": {"mode": "sometimes"}}, "placement.mode"),
    ("preferred regions zero", {"placement": {"maxPreferredRegions": 0}}, "placement.maxPreferredRegions"),
    ("required count float", {"placement": {"requiredRegionCount": 1.5}}, "placement.requiredRegionCount"),
    ("dry run as text", {"rebalancer": {"dryRun": "yes"}}, "rebalancer.dryRun"),
    (
        "grace negative",
        {"rebalancer": {"evictionGracePeriodSeconds": -1}},
        "rebalancer.evictionGracePeriodSeconds",
    ),
    ("latency unknown source", {"latencyMs": {"mars-1": {"us-east-1": 5}}}, "latencyMs.mars-1"),
    ("latency unknown target", {"latencyMs": {"us-east-1": {"mars-1": 5}}}, "latencyMs.us-east-1.mars-1"),
    ("latency negative", {"latencyMs": {"us-east-1": {"eu-west-1": -5}}}, "latencyMs.us-east-1.eu-west-1"),
    ("section not a mapping", {"economics": [1, 2]}, "economics"),
]


@pytest.mark.parametrize(("sections", "key"), [pytest.param(s, k, id=name) for name, s, k in INVALID])
def test_each_invalid_document_names_its_dotted_key(sections: dict[str, Any], key: str) -> None:
    problems = problems_of(document(**sections))
    assert has_key(problems, key), problems


def test_the_error_message_carries_the_source_and_every_problem() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(document(economics={"horizonHours": 0}), source="cm.yaml")
    assert caught.value.source == "cm.yaml"
    assert str(caught.value).startswith("cm.yaml: economics.horizonHours: ")


def test_several_problems_are_all_reported_together() -> None:
    doc = document(
        apiVersion="v2",
        baselineRegion="mars-1",
        carbon={"refreshSeconds": 0},
        economics={"horizonHours": 0},
        placement={"mode": "sometimes"},
        prices={"nowhere-1": FOUR_PRICES},
        bogus=True,
    )
    problems = problems_of(doc)
    for key in (
        "apiVersion",
        "baselineRegion",
        "carbon.refreshSeconds",
        "economics.horizonHours",
        "placement.mode",
        "prices.nowhere-1",
        "bogus",
    ):
        assert has_key(problems, key), (key, problems)
    assert len(problems) >= 7


@pytest.mark.parametrize(
    "text",
    ["just a sentence", "- a\n- b\n", "42"],
    ids=["string", "list", "number"],
)
def test_a_document_that_is_not_a_mapping_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config_text(text)
    assert any("must be a mapping" in problem for problem in caught.value.problems)


def test_non_yaml_text_reports_a_line_number() -> None:
    text = "apiVersion: ecopulse.io/v1alpha1\nregions: [us-east-1, eu-west-1\nbaselineRegion: x\n"
    with pytest.raises(ConfigError) as caught:
        parse_config_text(text, source="bad.yaml")
    (problem,) = caught.value.problems
    assert problem.startswith("not valid YAML: line 3, column ")
    assert str(caught.value).startswith("bad.yaml: ")


def test_an_empty_document_asks_for_regions() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config_text("")
    assert has_key(caught.value.problems, "regions")


def test_a_huge_integer_is_a_config_error_not_an_overflow() -> None:
    with pytest.raises(ConfigError) as caught:
        parse(carbon={"refreshSeconds": 10**400})
    assert has_key(caught.value.problems, "carbon.refreshSeconds")


def test_deeply_nested_yaml_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        parse_config_text("[" * 1000)


@pytest.mark.parametrize("item", [None, {}], ids=["null", "empty-mapping"])
def test_an_empty_region_entry_is_reported(item: object) -> None:
    doc = document()
    doc["regions"].append(item)
    problems = problems_of(doc)
    assert any(problem.startswith("regions[3]") for problem in problems), problems


# --- prices -------------------------------------------------------------------------------------


def test_bundled_prices_apply_when_the_file_sets_none() -> None:
    config = parse()
    assert config.prices["us-east-1"].vcpu_hour_usd > 0
    assert config.prices["us-east-1"].source.startswith("AWS")


def test_a_full_price_override_replaces_the_bundled_prices() -> None:
    config = parse(prices={"eu-west-1": FOUR_PRICES})
    rates = config.prices["eu-west-1"]
    assert (rates.vcpu_hour_usd, rates.gib_hour_usd, rates.spot_vcpu_hour_usd, rates.spot_gib_hour_usd) == (
        0.05,
        0.006,
        0.02,
        0.002,
    )
    assert rates.source == "config"
    assert config.prices["us-east-1"] == parse().prices["us-east-1"]  # the others keep the bundle


def test_a_partial_price_override_keeps_the_other_bundled_prices() -> None:
    bundled = parse().prices["eu-west-1"]
    rates = parse(prices={"eu-west-1": {"vcpuHour": 0.5}}).prices["eu-west-1"]
    assert rates.vcpu_hour_usd == 0.5
    assert rates.gib_hour_usd == bundled.gib_hour_usd
    assert rates.spot_vcpu_hour_usd == bundled.spot_vcpu_hour_usd
    assert rates.source.startswith("config over ")


def test_a_region_with_no_bundled_price_needs_all_four_keys() -> None:
    regions = [{"name": "us-east-1"}, {"name": "sa-east-1"}]  # sa-east-1: a zone, but no bundled price
    with pytest.raises(ConfigError) as caught:
        parse(regions=regions)
    assert has_key(caught.value.problems, "prices.sa-east-1")

    partial = {k: v for k, v in FOUR_PRICES.items() if k != "spotGibHour"}
    with pytest.raises(ConfigError) as caught:
        parse(regions=regions, prices={"sa-east-1": partial})
    (problem,) = [p for p in caught.value.problems if p.startswith("prices.sa-east-1: ")]
    assert "spotGibHour" in problem

    config = parse(regions=regions, prices={"sa-east-1": FOUR_PRICES})
    assert config.prices["sa-east-1"].spot_gib_hour_usd == 0.002


# --- carbon price cap ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("price", "cap", "effective"),
    [(100.0, 1000.0, 100.0), (5000.0, 1000.0, 1000.0), (300.0, 300.0, 300.0), (50.0, 0.0, 0.0)],
)
def test_effective_carbon_price_is_the_lower_of_price_and_cap(
    price: float, cap: float, effective: float
) -> None:
    config = parse(economics={"carbonPriceUsdPerTonne": price, "maxCarbonPriceUsdPerTonne": cap})
    assert config.economics.effective_carbon_price_usd_per_tonne == effective


@given(st.floats(0, 1e6), st.floats(0, 1e6))
def test_effective_carbon_price_is_min(price: float, cap: float) -> None:
    settings = EconomicsSettings(carbon_price_usd_per_tonne=price, max_carbon_price_usd_per_tonne=cap)
    assert settings.effective_carbon_price_usd_per_tonne == min(price, cap)


def test_egress_overrides_hold_both_ways_unless_told_otherwise() -> None:
    config = parse(
        economics={
            "egressUsdPerGb": 0.02,
            "egressUsdPerGbOverrides": [
                {"from": "us-east-1", "to": "eu-west-1", "usdPerGb": 0.09},
                {"from": "us-east-1", "to": "eu-north-1", "usdPerGb": 0.07, "bothWays": False},
            ],
        }
    )
    economics = config.economics
    assert economics.egress_price_usd_per_gb("us-east-1", "eu-west-1") == 0.09
    assert economics.egress_price_usd_per_gb("eu-west-1", "us-east-1") == 0.09
    assert economics.egress_price_usd_per_gb("us-east-1", "eu-north-1") == 0.07
    assert economics.egress_price_usd_per_gb("eu-north-1", "us-east-1") == 0.02
    assert economics.egress_price_usd_per_gb("eu-north-1", "eu-north-1") == 0.0


# --- latency ------------------------------------------------------------------------------------


def test_bundled_latency_is_known_both_ways_and_zero_to_itself() -> None:
    config = parse()
    for source in config.region_names:
        assert config.latency_between_ms(source, source) == 0.0
        for target in config.region_names:
            forward = config.latency_between_ms(source, target)
            assert forward is not None
            assert forward == config.latency_between_ms(target, source)


def test_an_explicit_latency_one_way_holds_both_ways_and_beats_the_bundle() -> None:
    bundled = parse().latency_between_ms("us-east-1", "eu-west-1")
    assert bundled is not None
    assert bundled != 7.0
    config = parse(latencyMs={"us-east-1": {"eu-west-1": 7}})
    assert config.latency_between_ms("us-east-1", "eu-west-1") == 7.0
    assert config.latency_between_ms("eu-west-1", "us-east-1") == 7.0
    # untouched pairs keep the bundle
    assert config.latency_between_ms("us-east-1", "eu-north-1") == parse().latency_between_ms(
        "us-east-1", "eu-north-1"
    )


def test_an_explicit_latency_both_ways_keeps_each_direction() -> None:
    config = parse(latencyMs={"us-east-1": {"eu-west-1": 7}, "eu-west-1": {"us-east-1": 9}})
    assert config.latency_between_ms("us-east-1", "eu-west-1") == 7.0
    assert config.latency_between_ms("eu-west-1", "us-east-1") == 9.0


def test_a_region_with_an_unknown_zone_and_no_location_has_no_latency() -> None:
    config = parse(
        regions=[{"name": "us-east-1"}, {"name": "my-dc", "zone": "XX-NOWHERE"}],
        prices={"my-dc": FOUR_PRICES},
    )
    assert config.latency_between_ms("us-east-1", "my-dc") is None
    assert config.latency_between_ms("my-dc", "my-dc") == 0.0


latitudes = st.floats(-90, 90)
longitudes = st.floats(-180, 180)


@given(latitudes, longitudes, latitudes, longitudes)
def test_estimated_rtt_is_symmetric_and_at_least_the_overhead(
    lat1: float, lon1: float, lat2: float, lon2: float
) -> None:
    forward = estimated_rtt_ms((lat1, lon1), (lat2, lon2))
    assert forward == estimated_rtt_ms((lat2, lon2), (lat1, lon1))
    assert RTT_OVERHEAD_MS <= forward <= 500.0


@given(latitudes, longitudes)
def test_estimated_rtt_at_distance_zero_is_the_overhead(lat: float, lon: float) -> None:
    assert estimated_rtt_ms((lat, lon), (lat, lon)) == RTT_OVERHEAD_MS == 2.0


@given(st.floats(0, 180), st.floats(0, 180))
def test_estimated_rtt_grows_with_distance_along_the_equator(a: float, b: float) -> None:
    near, far = sorted((a, b))
    assert estimated_rtt_ms((0.0, 0.0), (0.0, near)) <= estimated_rtt_ms((0.0, 0.0), (0.0, far))


def test_estimated_rtt_by_hand_and_strictly_growing() -> None:
    # 1 degree of longitude at the equator is 111.19 km: 2 x 111.19 x 1.5 / 200 + 2 = 3.67 -> 3.7
    assert estimated_rtt_ms((0.0, 0.0), (0.0, 1.0)) == 3.7
    values = [estimated_rtt_ms((0.0, 0.0), (0.0, lon)) for lon in (0.0, 1.0, 10.0, 90.0, 180.0)]
    assert values == sorted(values)
    assert len(set(values)) == len(values)


# --- load_config ----------------------------------------------------------------------------------


def test_load_config_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(DEFAULT_CONFIG_YAML)
    assert load_config(path) == default_config()


def test_load_config_on_a_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.source == str(path)
    assert str(path) in str(caught.value)
    assert caught.value.problems[0].startswith("cannot read")


def test_load_config_on_a_file_over_one_mebibyte_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text(DEFAULT_CONFIG_YAML + "#" * (MAX_CONFIG_BYTES + 1))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.source == str(path)
    assert str(path) in str(caught.value)
    assert "larger than" in caught.value.problems[0]


def test_load_config_reports_problems_with_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(DEFAULT_CONFIG_YAML + "economics: {horizonHours: 0}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}: economics.horizonHours: ")
