"""A string YAML read as a boolean or a number: every reader says so and suggests quotes.

`zone: NO` (Norway) is the boolean false in YAML 1.1; `name: 2024` is a number. The error must
not claim the key was missing: it names the key, what YAML made of it, and the fix.
"""

from __future__ import annotations

from typing import Any

import pytest

from core.config import ConfigError, parse_config_text
from core.policy import PolicyError, parse_policy
from core.yaml_input import load_yaml
from rebalancer.simulate.workload import WorkloadError, parse_workload

CONFIG = """\
apiVersion: ecopulse.io/v1alpha1
kind: EcoPulseConfiguration
regions:
  - {{name: eu-north-1, zone: SE-SE3}}
  - {{name: {name}, zone: {zone}}}
baselineRegion: eu-north-1
"""


@pytest.mark.parametrize(
    ("name", "zone", "key", "gave"),
    [
        ("eu-west-1", "NO", "regions[1].zone", "the boolean false"),
        ("eu-west-1", "yes", "regions[1].zone", "the boolean true"),
        ("eu-west-1", "on", "regions[1].zone", "the boolean true"),
        ("eu-west-1", "1234", "regions[1].zone", "the number 1234"),
        ("2024", "NO-NO1", "regions[1].name", "the number 2024"),
    ],
)
def test_the_configuration_file_says_yaml_gave_a_boolean_or_number(
    name: str, zone: str, key: str, gave: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config_text(CONFIG.format(name=name, zone=zone))
    (problem,) = [p for p in refused.value.problems if p.startswith(key)]
    assert gave in problem and "quote" in problem
    assert "set zone" not in problem  # the user did set it


def test_the_quoted_value_is_accepted() -> None:
    config = parse_config_text(CONFIG.format(name="eu-west-1", zone='"NO"'))
    assert config.region("eu-west-1") is not None and config.region("eu-west-1").zone == "NO"  # type: ignore[union-attr]


WORKLOAD = """\
apiVersion: ecopulse.io/v1alpha1
kind: SimulatedWorkload
capacity:
  eu-north-1: {cpu: "8", memory: 32Gi}
workloads:
  - {name: %s, replicas: 1, cpu: "1", memory: 1Gi, startRegion: eu-north-1}
"""


def test_the_simulate_workload_file_says_yaml_gave_a_boolean() -> None:
    with pytest.raises(WorkloadError) as refused:
        parse_workload(load_yaml(WORKLOAD % "off"), regions=frozenset({"eu-north-1"}))
    (problem,) = [p for p in refused.value.problems if p.startswith("workloads[0].name")]
    assert "the boolean false" in problem and "quote" in problem


def policy(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "ecopulse.io/v1alpha1",
        "kind": "EcoPulsePolicy",
        "metadata": {"name": "p", "namespace": "shop"},
        "spec": spec,
    }


@pytest.mark.parametrize(
    ("spec", "field", "gave"),
    [
        ({"dataRegion": False}, "spec.dataRegion", "the boolean false"),
        ({"allowedRegions": ["eu-north-1", False]}, "spec.allowedRegions[1]", "the boolean false"),
        ({"allowedRegions": [2024]}, "spec.allowedRegions[0]", "the number 2024"),
    ],
)
def test_a_policy_read_from_yaml_says_yaml_gave_a_boolean(
    spec: dict[str, Any], field: str, gave: str
) -> None:
    with pytest.raises(PolicyError) as refused:
        parse_policy(policy(spec))
    message = str(refused.value)
    assert message.startswith(field) and gave in message and "quote" in message
