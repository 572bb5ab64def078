"""The policy CRDs' schema and CEL rules, exercised by the real API server (server-side dry run)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.cluster import REPO, ClusterError, LocalCluster

KINDS = ("EcoPulsePolicy", "ClusterEcoPulsePolicy")


@pytest.fixture(scope="module")
def crds(cluster: LocalCluster) -> LocalCluster:
    cluster.kubectl("apply", "-k", str(REPO / "manifests" / "crds"))
    cluster.kubectl(
        "wait",
        "--for=condition=Established",
        "crd/ecopulsepolicies.ecopulse.io",
        "crd/clusterecopulsepolicies.ecopulse.io",
        "--timeout=60s",
    )
    return cluster


def policy(kind: str, spec: dict[str, Any]) -> str:
    metadata: dict[str, str] = {"name": "p"}
    if kind == "EcoPulsePolicy":
        metadata["namespace"] = "default"
    return json.dumps(
        {"apiVersion": "ecopulse.io/v1alpha1", "kind": kind, "metadata": metadata, "spec": spec}
    )


def dry_run(cluster: LocalCluster, kind: str, spec: dict[str, Any]) -> str:
    return cluster.kubectl("apply", "--dry-run=server", "-f", "-", input_text=policy(kind, spec))


VALID: list[dict[str, Any]] = [
    {},
    {"selector": {}},
    {"selector": {"matchLabels": {"app": "web"}}, "mode": "required", "minNetBenefitUsd": 0.01},
    {
        "selector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["batch"]}]},
        "mode": "preferred",
        "allowedRegions": ["eu-west-1", "eu-north-1"],
        "maxLatencyMs": 40,
        "dataRegion": "eu-west-1",
        "egressGbPerHour": 0.5,
        "expectedRuntimeHours": 2.5,
        "rebalance": "allow",
        "maxUnavailable": "25%",
    },
    {"selector": {"matchExpressions": [{"key": "legacy", "operator": "Exists"}]}, "mode": "off"},
    {"rebalance": "never"},
    {"maxUnavailable": 2},
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("spec", VALID, ids=lambda s: json.dumps(s)[:60])
def test_valid_policies_are_accepted(crds: LocalCluster, kind: str, spec: dict[str, Any]) -> None:
    assert "created (server dry run)" in dry_run(crds, kind, spec)


# (spec, what the API server's refusal must name)
INVALID: list[tuple[dict[str, Any], str]] = [
    ({"mode": "sometimes"}, "spec.mode"),
    ({"allowedRegions": []}, "spec.allowedRegions"),
    ({"allowedRegions": ["eu west"]}, "spec.allowedRegions[0]"),
    ({"allowedRegions": ["eu-west-1", "eu-west-1"]}, "spec.allowedRegions[1]"),
    ({"maxLatencyMs": 0}, "spec.maxLatencyMs"),
    ({"maxLatencyMs": "fast"}, "spec.maxLatencyMs"),
    ({"dataRegion": ""}, "spec.dataRegion"),
    ({"egressGbPerHour": -1}, "spec.egressGbPerHour"),
    ({"expectedRuntimeHours": 0}, "spec.expectedRuntimeHours"),
    ({"rebalance": "sometimes"}, "spec.rebalance"),
    ({"maxUnavailable": "150%"}, "spec.maxUnavailable"),
    ({"maxUnavailable": 0}, "spec.maxUnavailable"),
    ({"mode": "off", "allowedRegions": ["eu-west-1"]}, "spec.mode: Invalid value"),
    ({"rebalance": "never", "maxUnavailable": 1}, "spec.maxUnavailable: Invalid value"),
    ({"mode": "preferred", "minNetBenefitUsd": 0.1}, "spec.minNetBenefitUsd: Invalid value"),
    (
        {"selector": {"matchExpressions": [{"key": "tier", "operator": "In"}]}},
        "selector.matchExpressions[].values",
    ),
    ({"allowedRegion": ["eu-west-1"]}, "spec.allowedRegion"),  # a typo is refused, not dropped
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("spec", "field"), INVALID, ids=[json.dumps(s)[:60] for s, _ in INVALID])
def test_invalid_policies_are_refused_naming_the_field(
    crds: LocalCluster, kind: str, spec: dict[str, Any], field: str
) -> None:
    with pytest.raises(ClusterError) as refused:
        dry_run(crds, kind, spec)
    assert field in str(refused.value)


def test_the_printer_columns_show_mode_regions_and_readiness(crds: LocalCluster) -> None:
    spec = {"mode": "required", "allowedRegions": ["eu-west-1"], "maxLatencyMs": 40}
    crds.kubectl("apply", "-f", "-", input_text=policy("EcoPulsePolicy", spec))
    try:
        out = crds.kubectl("get", "ecopulsepolicies", "-n", "default", "p")
    finally:
        crds.kubectl("delete", "ecopulsepolicy", "-n", "default", "p")
    header, row = out.splitlines()[:2]
    assert header.split() == [
        "NAME",
        "MODE",
        "REGIONS",
        "MAX-LATENCY-MS",
        "READY",
        "REASON",
        "MATCHED",
        "PLACED-1H",
        "AGE",
    ]
    assert row.split()[:4] == ["p", "required", '["eu-west-1"]', "40"]


@pytest.mark.parametrize("kind", KINDS)
def test_wide_output_shows_what_the_policy_saved(crds: LocalCluster, kind: str) -> None:
    # Issue 29: -o wide adds the savings the rebalancer writes into the status.
    plural, scope = (
        ("ecopulsepolicies", ["-n", "default"])
        if kind == "EcoPulsePolicy"
        else ("clusterecopulsepolicies", [])
    )
    crds.kubectl("apply", "-f", "-", input_text=policy(kind, {"mode": "preferred"}))
    try:
        status = {"status": {"podsMovedLastHour": 3, "carbonAvoidedGrams": 1234.5, "costSavedUsd": 0.25}}
        crds.kubectl(
            "patch", plural, "p", *scope, "--subresource=status", "--type=merge", "-p", json.dumps(status)
        )
        narrow = crds.kubectl("get", plural, "p", *scope)
        wide = crds.kubectl("get", plural, "p", *scope, "-o", "wide")
    finally:
        crds.kubectl("delete", plural, "p", *scope)
    assert "CO2-AVOIDED-G" not in narrow.splitlines()[0]
    header, row = wide.splitlines()[:2]
    assert header.split()[-3:] == ["MOVED-1H", "CO2-AVOIDED-G", "COST-SAVED-USD"]
    assert row.split()[-3:] == ["3", "1234.5", "0.25"]
