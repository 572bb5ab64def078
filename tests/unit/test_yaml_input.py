"""User YAML is read with bounds: alias bombs are refused, error messages never format a whole value.

The same rules hold for the configuration file and the simulator's workload file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import ConfigError, load_config, parse_config_text
from core.yaml_input import DESCRIBE_CHARS, MAX_ALIAS_NODES, describe
from rebalancer.simulate.workload import WorkloadError, load_workload


def alias_bomb(levels: int, *, key: str) -> str:
    """``levels`` anchors, each a list of nine aliases of the one before: 9**levels values in ~60 bytes a level."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines) + f"\n{key}: [*a{levels - 1}]\n"


def test_a_config_alias_bomb_is_refused_naming_the_aliases() -> None:
    # 9**7 = 4.8 million strings from 400 bytes; at 9**9 formatting the error took ~39 s.
    with pytest.raises(ConfigError) as caught:
        parse_config_text(alias_bomb(7, key="regions"))
    (problem,) = caught.value.problems
    assert problem.startswith("not valid YAML: line ")
    assert f"aliases expand to more than {MAX_ALIAS_NODES} nodes" in problem


def test_a_workload_alias_bomb_is_refused_naming_the_aliases(tmp_path: Path) -> None:
    path = tmp_path / "workload.yaml"
    path.write_text(alias_bomb(7, key="workloads"))
    with pytest.raises(WorkloadError) as caught:
        load_workload(path)
    (problem,) = caught.value.problems
    assert f"aliases expand to more than {MAX_ALIAS_NODES} nodes" in problem
    assert str(caught.value).startswith(f"{path}: not valid YAML: line ")


def test_a_few_anchors_reused_are_still_fine() -> None:
    config = parse_config_text(
        "regions: [{name: us-east-1}, {name: eu-west-1}]\n"
        "prices: {us-east-1: &p {vcpuHour: 0.05, gibHour: 0.006, spotVcpuHour: 0.02, spotGibHour: 0.002},"
        " eu-west-1: *p}\n"
    )
    assert config.prices["eu-west-1"].vcpu_hour_usd == config.prices["us-east-1"].vcpu_hour_usd == 0.05


def test_an_integer_too_long_to_convert_is_a_config_error_not_a_crash() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config_text("regions: [{name: us-east-1}]\ncarbon: {refreshSeconds: " + "9" * 5000 + "}\n")
    (problem,) = caught.value.problems
    assert problem.startswith("not valid YAML: ")
    assert len(problem) < 200


def test_an_integer_too_long_to_convert_is_a_workload_error(tmp_path: Path) -> None:
    path = tmp_path / "workload.yaml"
    path.write_text("capacity: {ra: {cpu: " + "9" * 5000 + ", memory: 1Gi}}\nworkloads: []\n")
    with pytest.raises(WorkloadError) as caught:
        load_workload(path)
    assert caught.value.problems[0].startswith("not valid YAML: ")


def test_a_recursive_document_is_an_error_not_a_hang(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("regions: &r [*r]\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert any(problem.startswith("regions[0]: ") for problem in caught.value.problems), caught.value


class CountingRepr:
    """Counts how often it is formatted: describe must look at a few items, not all of them."""

    calls = 0

    def __repr__(self) -> str:
        CountingRepr.calls += 1
        return "c"


def test_describe_formats_a_few_items_of_a_huge_value_only() -> None:
    CountingRepr.calls = 0
    huge = [[CountingRepr()] * 1000] * 1000  # a million items, shared as YAML aliases would be
    text = describe(huge)
    assert len(text) <= DESCRIBE_CHARS
    assert text.endswith("...")
    assert CountingRepr.calls <= 100


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "nothing"),
        ("soon", "'soon'"),
        (True, "True"),
        (1.5, "1.5"),
        (10**400, "a very large integer"),
        ([1, 2], "[1, 2]"),
        ({"a": 1}, "{'a': 1}"),
        ("x" * 100, "'" + "x" * 36 + "..."),
    ],
)
def test_describe_reads_like_repr_for_small_values(value: object, expected: str) -> None:
    assert describe(value) == expected
