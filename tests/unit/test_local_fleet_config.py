"""The local fleet's configuration (tests/e2e/fleet.py) is one fleet mode accepts, for its members."""

from __future__ import annotations

import yaml

from core.config import parse_config
from tests.e2e.fleet import FLEET_CONFIG, MEMBERS


def test_the_local_fleet_config_parses_and_configures_every_member_region() -> None:
    config = parse_config(yaml.safe_load(FLEET_CONFIG), source="FLEET_CONFIG")
    assert {region.name for region in config.regions} == set(MEMBERS.values())
    assert config.carbon.provider == "mock"
    assert config.fleet.dry_run is False
    assert config.fleet.interval_seconds == 5
