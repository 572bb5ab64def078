"""Write the EcoPulsePolicy and ClusterEcoPulsePolicy CRDs (one schema, two scopes).

    python hack/crds.py           write manifests/crds/*.yaml and charts/eco-pulse/crds/*.yaml
    python hack/crds.py --check   exit 1 if any of them differs from what this script writes

The two kinds share their spec and status; writing them from one definition keeps them from
drifting. tests/contract/test_policy_crds.py checks that the committed files are current.
Every CEL rule's message names the field it is about, so `kubectl apply` says what to fix.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
GROUP = "ecopulse.io"
VERSION = "v1alpha1"
OUTPUTS = (REPO / "manifests" / "crds", REPO / "charts" / "eco-pulse" / "crds")
MAX_REGIONS = 64
MAX_REGION_NAME = 63
MAX_SELECTOR_TERMS = 32

_REGION_NAME: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_REGION_NAME,
    # A value of the node label topology.kubernetes.io/region (a label value).
    "pattern": r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$",
}


def _label_selector(what: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": f"Label selector on {what}; absent or empty selects all.",
        "x-kubernetes-map-type": "atomic",
        "properties": {
            "matchLabels": {
                "type": "object",
                "maxProperties": MAX_SELECTOR_TERMS,
                "additionalProperties": {"type": "string", "maxLength": 63},
            },
            "matchExpressions": {
                "type": "array",
                "maxItems": MAX_SELECTOR_TERMS,
                "x-kubernetes-list-type": "atomic",
                "items": {
                    "type": "object",
                    "required": ["key", "operator"],
                    "properties": {
                        "key": {"type": "string", "minLength": 1, "maxLength": 317},
                        "operator": {"type": "string", "enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                        "values": {
                            "type": "array",
                            "maxItems": 64,
                            "x-kubernetes-list-type": "atomic",
                            "items": {"type": "string", "maxLength": 63},
                        },
                    },
                    "x-kubernetes-validations": [
                        {
                            "rule": "self.operator in ['In', 'NotIn'] ? "
                            "(has(self.values) && size(self.values) > 0) : "
                            "(!has(self.values) || size(self.values) == 0)",
                            "message": "selector.matchExpressions[].values: must be non-empty for In and "
                            "NotIn, and empty for Exists and DoesNotExist",
                        }
                    ],
                },
            },
        },
    }


_PLACEMENT_FIELDS = (
    "allowedRegions",
    "maxLatencyMs",
    "dataRegion",
    "egressGbPerHour",
    "expectedRuntimeHours",
    "minNetBenefitUsd",
)


def spec_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "selector": _label_selector("pods"),
            "mode": {
                "type": "string",
                "enum": ["preferred", "required", "off"],
                "description": "preferred: weighted node affinity; required: only the best regions; "
                "off: Eco-Pulse neither places nor moves the selected pods. Absent: the "
                "configuration file's placement.mode.",
            },
            "allowedRegions": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_REGIONS,
                "x-kubernetes-list-type": "set",
                "items": _REGION_NAME,
                "description": "The only regions the selected pods may be placed in.",
            },
            "maxLatencyMs": {
                "type": "number",
                "exclusiveMinimum": True,
                "minimum": 0,
                "maximum": 100000,
                "description": "Largest round trip allowed between the pod's region and its data region "
                "(or the baseline), in milliseconds.",
            },
            "dataRegion": {**_REGION_NAME, "description": "Where the pods' data lives."},
            "egressGbPerHour": {
                "type": "number",
                "minimum": 0,
                "maximum": 1000000,
                "description": "Data the pods exchange with the data region, GB per hour.",
            },
            "expectedRuntimeHours": {
                "type": "number",
                "exclusiveMinimum": True,
                "minimum": 0,
                "maximum": 8760,
                "description": "How long the pods run: the horizon their placement is priced over.",
            },
            "minNetBenefitUsd": {
                "type": "number",
                "minimum": -1000,
                "maximum": 1000,
                "description": "In required mode, how much a region must beat the baseline by (USD).",
            },
            "deferral": {
                "type": "object",
                "description": "Defaults for the deferrable Jobs the policy selects (docs/deferral.md); "
                "a Job's own ecopulse.io/ annotations win.",
                "properties": {
                    "finishWithin": {
                        "type": "string",
                        "maxLength": 32,
                        # Go's time.ParseDuration, non-negative: 24h, 1h30m, 0.5h, 90m.
                        "pattern": r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|ms|s|m|h)"
                        r"(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|ms|s|m|h))*$",
                        "description": "When the Job must have finished, from its creation (a Go duration "
                        "such as 24h or 1h30m).",
                    },
                    "expectedRuntimeHours": {
                        "type": "number",
                        "exclusiveMinimum": True,
                        "minimum": 0,
                        "maximum": 8760,
                        "description": "How long the Job runs, in hours (wins over the top-level "
                        "expectedRuntimeHours for Jobs).",
                    },
                },
            },
            "rebalance": {
                "type": "string",
                "enum": ["allow", "never"],
                "description": "never: the rebalancer does not move the selected pods.",
            },
            "evictRunToCompletion": {
                "type": "boolean",
                "description": "true: the rebalancer may evict the selected run-to-completion pods "
                "(a Job's, or restartPolicy Never or OnFailure), pricing the hours they have run into "
                "the move. By default they are never evicted: their progress would be lost.",
            },
            "maxUnavailable": {
                "x-kubernetes-int-or-string": True,
                "description": "At most this many (or this percentage) of a workload's selected pods "
                "may be moving at once.",
                "x-kubernetes-validations": [
                    {
                        "rule": "type(self) == int ? self >= 1 : self.matches('^([1-9][0-9]?|100)%$')",
                        "message": "maxUnavailable: must be an integer >= 1 or a percentage from 1% to 100%",
                    }
                ],
            },
        },
        "x-kubernetes-validations": [
            {
                "rule": "!has(self.mode) || self.mode != 'off' || ("
                + " && ".join(f"!has(self.{name})" for name in _PLACEMENT_FIELDS)
                + ")",
                "message": "mode: off places nothing, so it takes none of " + ", ".join(_PLACEMENT_FIELDS),
                "fieldPath": ".mode",
            },
            {
                "rule": "!has(self.rebalance) || self.rebalance != 'never' || !has(self.maxUnavailable)",
                "message": "maxUnavailable: has no effect with rebalance: never; remove one of them",
                "fieldPath": ".maxUnavailable",
            },
            {
                "rule": "!has(self.minNetBenefitUsd) || !has(self.mode) || self.mode != 'preferred'",
                "message": "minNetBenefitUsd: has no effect with mode: preferred (it is the floor of "
                "mode: required)",
                "fieldPath": ".minNetBenefitUsd",
            },
        ],
    }


def _condition_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["type", "status", "reason", "lastTransitionTime"],
        "properties": {
            "type": {"type": "string", "maxLength": 316},
            "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
            "reason": {"type": "string", "maxLength": 1024},
            "message": {"type": "string", "maxLength": 32768},
            "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0},
            "lastTransitionTime": {"type": "string", "format": "date-time"},
        },
    }


def status_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "observedGeneration": {"type": "integer", "format": "int64"},
            "conditions": {
                "type": "array",
                "maxItems": 8,
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
                "items": _condition_schema(),
            },
            "podsMatched": {"type": "integer", "format": "int64"},
            "podsPlacedLastHour": {"type": "integer", "format": "int64"},
            "podsMovedLastHour": {"type": "integer", "format": "int64"},
            "carbonAvoidedGrams": {"type": "number"},
            "costSavedUsd": {"type": "number"},
        },
    }


def _condition_column(name: str, condition: str, field: str) -> dict[str, Any]:
    return {
        "name": name,
        "type": "string",
        "jsonPath": f'.status.conditions[?(@.type=="{condition}")].{field}',
    }


def crd(*, kind: str, plural: str, scope: str, short_names: list[str]) -> dict[str, Any]:
    what = "in its namespace" if scope == "Namespaced" else "in every namespace (the cluster default)"
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "eco-pulse"},
        },
        "spec": {
            "group": GROUP,
            "scope": scope,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
                "categories": ["ecopulse"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": "Mode", "type": "string", "jsonPath": ".spec.mode"},
                        {"name": "Regions", "type": "string", "jsonPath": ".spec.allowedRegions"},
                        {"name": "Max-Latency-Ms", "type": "number", "jsonPath": ".spec.maxLatencyMs"},
                        _condition_column("Ready", "Ready", "status"),
                        _condition_column("Reason", "Ready", "reason"),
                        {"name": "Matched", "type": "integer", "jsonPath": ".status.podsMatched"},
                        {"name": "Placed-1h", "type": "integer", "jsonPath": ".status.podsPlacedLastHour"},
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                        # -o wide: what the policy has earned since creation (rebalancer.policy_status).
                        *(
                            {"name": name, "type": kind, "jsonPath": f".status.{field}", "priority": 1}
                            for name, kind, field in (
                                ("Moved-1h", "integer", "podsMovedLastHour"),
                                ("CO2-Avoided-g", "number", "carbonAvoidedGrams"),
                                ("Cost-Saved-USD", "number", "costSavedUsd"),
                            )
                        ),
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": f"Placement intent for the pods it selects {what}. "
                            "Precedence: pod annotation > EcoPulsePolicy > ClusterEcoPulsePolicy > "
                            "configuration file (docs/policy.md).",
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema(),
                                "status": status_schema(),
                            },
                            "required": ["spec"],
                        }
                    },
                }
            ],
        },
    }


def documents() -> dict[str, str]:
    header = "# Generated by hack/crds.py from one definition; edit that, then run it.\n"
    crds = {
        "ecopulse.io_ecopulsepolicies.yaml": crd(
            kind="EcoPulsePolicy", plural="ecopulsepolicies", scope="Namespaced", short_names=["epp"]
        ),
        "ecopulse.io_clusterecopulsepolicies.yaml": crd(
            kind="ClusterEcoPulsePolicy",
            plural="clusterecopulsepolicies",
            scope="Cluster",
            short_names=["cepp"],
        ),
    }
    return {name: header + yaml.safe_dump(body, sort_keys=False, width=100) for name, body in crds.items()}


def main(argv: list[str]) -> int:
    check = argv[1:] == ["--check"]
    stale = []
    for directory in OUTPUTS:
        for name, text in documents().items():
            path = directory / name
            if check:
                if not path.exists() or path.read_text() != text:
                    stale.append(str(path.relative_to(REPO)))
            else:
                directory.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    if stale:
        print(f"out of date (run python hack/crds.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
