"""RBAC grants exactly what the code calls, no more and no less (issue 20, defect 11).

The calls are read from the code itself: the kubernetes client methods each app's modules call
(through the reflector factories in core.kube.caches too) and the raw requests of the leader
elector. Each client method is translated to the (group, resource, verb) the API server
authorizes; a method missing from that translation fails the test, so a new call cannot slip in
unreviewed. ``granted`` takes rendered RBAC objects, so a Helm chart's output can be checked the
same way.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from tests.contract.test_manifests import OBJECTS, rules_of

REPO = Path(__file__).resolve().parents[2]

Permission = tuple[str, str, str]  # (apiGroup, resource, verb)

# What the API server authorizes for each client method we call. A reflector lists with the
# method, then watches with the same method (watch=True).
CLIENT_METHODS: dict[str, set[Permission]] = {
    "list_node": {("", "nodes", "list"), ("", "nodes", "watch")},
    "list_namespace": {("", "namespaces", "list"), ("", "namespaces", "watch")},
    "list_pod_for_all_namespaces": {("", "pods", "list"), ("", "pods", "watch")},
    "create_namespaced_pod_eviction": {("", "pods/eviction", "create")},
    # Our only custom objects are the policy kinds (core.kube.caches.policy_reflectors).
    "list_cluster_custom_object": {
        ("ecopulse.io", plural, verb)
        for plural in ("ecopulsepolicies", "clusterecopulsepolicies")
        for verb in ("list", "watch")
    },
    "patch_namespaced_custom_object_status": {("ecopulse.io", "ecopulsepolicies/status", "patch")},
    "patch_cluster_custom_object_status": {("ecopulse.io", "clusterecopulsepolicies/status", "patch")},
}
EVENTS_API_METHODS: dict[str, set[Permission]] = {
    "create_namespaced_event": {("events.k8s.io", "events", "create")},
}
RAW_VERBS = {"GET": "get", "PUT": "update", "POST": "create", "PATCH": "patch", "DELETE": "delete"}
_CLIENT_CALL = re.compile(r"\.((?:list|create|patch|replace|delete|read|watch)_[a-z_]+)\(")
_RAW_CALL = re.compile(r'_request\(\s*"([A-Z]+)",\s*_LEASES?_PATH')


def _reflector_factories() -> dict[str, set[Permission]]:
    """Each factory in core.kube.caches, with the client methods its body names."""
    tree = ast.parse((REPO / "core/kube/caches.py").read_text())
    factories: dict[str, set[Permission]] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name.endswith(("_reflector", "_reflectors")):
            methods = {
                n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute) and n.attr.startswith("list_")
            }
            factories[node.name] = set().union(*(CLIENT_METHODS[m] for m in methods))
    return factories


def calls_of(modules: Iterable[Path]) -> set[Permission]:
    factories = _reflector_factories()
    found: set[Permission] = set()
    for path in modules:
        source = path.read_text()
        for method in _CLIENT_CALL.findall(source):
            known = CLIENT_METHODS | EVENTS_API_METHODS
            assert method in known, (
                f"{path.relative_to(REPO)} calls {method}: add what it needs to CLIENT_METHODS"
            )
            found |= known[method]
        for verb in _RAW_CALL.findall(source):
            found.add(("coordination.k8s.io", "leases", RAW_VERBS[verb]))
        for factory, permissions in factories.items():
            if re.search(rf"\b{factory}\(", source) and path.name != "caches.py":
                found |= permissions
    return found


def granted(rules: Iterable[tuple[Any, Any]]) -> set[Permission]:
    return {
        (group, resource, verb)
        for _, rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


APPS = {
    "eco-pulse-webhook": sorted((REPO / "webhook").rglob("*.py")),
    "eco-pulse-rebalancer": sorted(
        p
        for p in (REPO / "rebalancer").rglob("*.py")
        if "simulate" not in p.parts and "report" not in p.parts
    ),
}


@pytest.mark.parametrize("service_account", sorted(APPS))
def test_rbac_grants_exactly_what_the_code_calls(service_account: str) -> None:
    calls = calls_of(APPS[service_account])
    rights = granted(rules_of(service_account, OBJECTS))
    assert calls, "found no API call: the scan is broken"
    assert sorted(calls - rights) == [], "the code calls what RBAC does not grant"
    assert sorted(rights - calls) == [], "RBAC grants what the code never calls"


def test_the_scan_sees_the_calls_we_know_of() -> None:
    rebalancer = calls_of(APPS["eco-pulse-rebalancer"])
    assert ("", "pods/eviction", "create") in rebalancer
    assert ("coordination.k8s.io", "leases", "update") in rebalancer
    assert ("events.k8s.io", "events", "create") in rebalancer
    assert ("ecopulse.io", "ecopulsepolicies/status", "patch") in rebalancer
    assert ("ecopulse.io", "clusterecopulsepolicies", "watch") in rebalancer
    assert calls_of(APPS["eco-pulse-webhook"]) == {
        ("", "nodes", "list"),
        ("", "nodes", "watch"),
        ("", "namespaces", "list"),
        ("", "namespaces", "watch"),
        ("ecopulse.io", "ecopulsepolicies", "list"),
        ("ecopulse.io", "ecopulsepolicies", "watch"),
        ("ecopulse.io", "clusterecopulsepolicies", "list"),
        ("ecopulse.io", "clusterecopulsepolicies", "watch"),
    }
