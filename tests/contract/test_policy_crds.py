"""The committed policy CRDs are what hack/crds.py writes, and both kinds share one schema."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
GENERATOR = runpy.run_path(str(REPO / "hack" / "crds.py"))


def test_the_committed_crds_are_current() -> None:
    assert GENERATOR["main"](["crds.py", "--check"]) == 0, "run python hack/crds.py"


def _version(path: Path) -> dict[str, Any]:
    (version,) = yaml.safe_load(path.read_text())["spec"]["versions"]
    assert isinstance(version, dict)
    return version


def test_both_kinds_share_the_schema_and_the_status_subresource() -> None:
    namespaced = _version(REPO / "manifests/crds/ecopulse.io_ecopulsepolicies.yaml")
    cluster = _version(REPO / "manifests/crds/ecopulse.io_clusterecopulsepolicies.yaml")
    assert namespaced["subresources"] == {"status": {}}
    spec = namespaced["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert set(spec) == {
        "selector",
        "mode",
        "allowedRegions",
        "maxLatencyMs",
        "dataRegion",
        "egressGbPerHour",
        "expectedRuntimeHours",
        "minNetBenefitUsd",
        "rebalance",
        "maxUnavailable",
        "evictRunToCompletion",
        "deferral",
    }
    without_description = {
        k: v for k, v in namespaced["schema"]["openAPIV3Schema"].items() if k != "description"
    }
    assert without_description == {
        k: v for k, v in cluster["schema"]["openAPIV3Schema"].items() if k != "description"
    }


def test_wide_output_adds_the_savings_from_status_fields_that_exist() -> None:
    # Issue 29: `kubectl get ecopulsepolicies -o wide` shows what each policy has earned.
    for name in ("ecopulsepolicies", "clusterecopulsepolicies"):
        version = _version(REPO / f"manifests/crds/ecopulse.io_{name}.yaml")
        status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
        wide = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"] if c.get("priority")}
        assert wide == {
            "Moved-1h": ".status.podsMovedLastHour",
            "CO2-Avoided-g": ".status.carbonAvoidedGrams",
            "Cost-Saved-USD": ".status.costSavedUsd",
        }
        for path in wide.values():
            assert path.removeprefix(".status.") in status, path
