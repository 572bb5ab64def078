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

from tests.contract.test_manifests import OBJECTS, load_yaml_documents, rules_of

REPO = Path(__file__).resolve().parents[2]

Permission = tuple[str, str, str]  # (apiGroup, resource, verb)

# What the API server authorizes for each client method we call. A reflector lists with the
# method, then watches with the same method (watch=True).
CLIENT_METHODS: dict[str, set[Permission]] = {
    "list_node": {("", "nodes", "list"), ("", "nodes", "watch")},
    "list_namespace": {("", "namespaces", "list"), ("", "namespaces", "watch")},
    "list_pod_for_all_namespaces": {("", "pods", "list"), ("", "pods", "watch")},
    "create_namespaced_pod_eviction": {("", "pods/eviction", "create")},
    "list_deployment_for_all_namespaces": {("apps", "deployments", "list"), ("apps", "deployments", "watch")},
    # The policy kinds, read by core.kube.caches.policy_reflectors and status-patched by the rebalancer
    # (fleet mode's Karmada kinds are read from their literal arguments, below).
    "list_cluster_custom_object": {
        ("ecopulse.io", plural, verb)
        for plural in ("ecopulsepolicies", "clusterecopulsepolicies")
        for verb in ("list", "watch")
    },
    "patch_namespaced_custom_object_status": {("ecopulse.io", "ecopulsepolicies/status", "patch")},
    "patch_cluster_custom_object_status": {("ecopulse.io", "clusterecopulsepolicies/status", "patch")},
    # Deferral: the Jobs the release loop and the janitor watch and release, the releaser's Lease
    # the webhook watches (never on a request path).
    "list_job_for_all_namespaces": {("batch", "jobs", "list"), ("batch", "jobs", "watch")},
    "patch_namespaced_job": {("batch", "jobs", "patch")},
    # /mutate-binding's one read of the Job a Karmada ResourceBinding is for.
    "read_namespaced_job": {("batch", "jobs", "get")},
    "list_namespaced_lease": {
        ("coordination.k8s.io", "leases", "list"),
        ("coordination.k8s.io", "leases", "watch"),
    },
}
EVENTS_API_METHODS: dict[str, set[Permission]] = {
    "create_namespaced_event": {("events.k8s.io", "events", "create")},
}
RAW_VERBS = {"GET": "get", "PUT": "update", "POST": "create", "PATCH": "patch", "DELETE": "delete"}
_CLIENT_CALL = re.compile(r"\.((?:list|create|patch|replace|delete|read|watch)_[a-z_]+)\(")
_RAW_CALL = re.compile(r'_request\(\s*"([A-Z]+)",\s*_LEASES?_PATH')
# A method handed on uncalled (a reflector's list_call, a functools.partial): the same permissions.
_METHOD_REFERENCE = re.compile(
    r"(?:list_call=[\w.()]+|partial\(\s*[\w.()]+)\.((?:list|create|patch)_[a-z_]+)\b(?!\()"
)
# Custom resources (Karmada's): the group and plural are literal arguments of the call.
_CUSTOM_LISTER = re.compile(r'_custom_lister\(\s*\w+,\s*"([^"]+)",\s*"[^"]+",\s*"([^"]+)"\s*\)')
_CUSTOM_WRITE = re.compile(
    r'\.(patch|create)_(?:namespaced|cluster)_custom_object,\s*"([^"]+)",\s*"[^"]+",\s*(?:[\w.]+,\s*)?"([^"]+)"'
)


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


def _lease_calls() -> set[Permission]:
    """The raw Lease requests of core's elector: what an app that starts a LeaderElector needs."""
    source = (REPO / "core/kube/lease.py").read_text()
    return {("coordination.k8s.io", "leases", RAW_VERBS[verb]) for verb in _RAW_CALL.findall(source)}


def calls_of(modules: Iterable[Path]) -> set[Permission]:
    factories = _reflector_factories()
    lease_calls = _lease_calls()
    found: set[Permission] = set()
    for path in modules:
        source = path.read_text()
        for method in _CLIENT_CALL.findall(source):
            known = CLIENT_METHODS | EVENTS_API_METHODS
            assert method in known, (
                f"{path.relative_to(REPO)} calls {method}: add what it needs to CLIENT_METHODS"
            )
            found |= known[method]
        for method in _METHOD_REFERENCE.findall(source):
            if method.endswith("_custom_object"):
                continue  # read with its literal arguments below
            assert method in CLIENT_METHODS, (
                f"{path.relative_to(REPO)} uses {method}: add it to CLIENT_METHODS"
            )
            found |= CLIENT_METHODS[method]
        for group, plural in _CUSTOM_LISTER.findall(source):
            found |= {(group, plural, "list"), (group, plural, "watch")}
        for verb, group, plural in _CUSTOM_WRITE.findall(source):
            found.add((group, plural, verb))
        for verb in _RAW_CALL.findall(source):
            found.add(("coordination.k8s.io", "leases", RAW_VERBS[verb]))
        if re.search(r"LeaderElector\(", source):  # core's elector or an app's subclass
            found |= lease_calls
        if re.search(r"\bEventRecorder\(", source):  # core.kube.events posts through the Events API
            found |= EVENTS_API_METHODS["create_namespaced_event"]
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
    # Fleet mode talks to the Karmada API server only: its RBAC is applied there.
    "eco-pulse-fleet": sorted((REPO / "fleet").rglob("*.py")),
}
# The objects each account's RBAC is declared in.
FLEET_OBJECTS = load_yaml_documents((REPO / "manifests/fleet/karmada-rbac.yaml").read_text())
RBAC_OBJECTS = {
    "eco-pulse-webhook": OBJECTS,
    "eco-pulse-rebalancer": OBJECTS,
    "eco-pulse-fleet": FLEET_OBJECTS,
}


@pytest.mark.parametrize("service_account", sorted(APPS))
def test_rbac_grants_exactly_what_the_code_calls(service_account: str) -> None:
    calls = calls_of(APPS[service_account])
    rights = granted(rules_of(service_account, RBAC_OBJECTS[service_account]))
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
        ("events.k8s.io", "events", "create"),  # an ignored annotation's Event (issue 19)
        ("ecopulse.io", "ecopulsepolicies", "list"),
        ("ecopulse.io", "ecopulsepolicies", "watch"),
        ("ecopulse.io", "clusterecopulsepolicies", "list"),
        ("ecopulse.io", "clusterecopulsepolicies", "watch"),
        ("coordination.k8s.io", "leases", "list"),  # the releaser's Lease (deferral)
        ("coordination.k8s.io", "leases", "watch"),
        ("batch", "jobs", "get"),  # /mutate-binding: the Job a Karmada binding is for
    }
    fleet = calls_of(APPS["eco-pulse-fleet"])
    assert ("batch", "jobs", "patch") in fleet  # a held Job's release on the Karmada API server
    assert ("work.karmada.io", "resourcebindings", "patch") in fleet  # its binding, pinned
    assert ("batch", "jobs", "patch") in rebalancer  # a held Job's release


def test_the_scan_sees_fleet_modes_calls() -> None:
    fleet = calls_of(APPS["eco-pulse-fleet"])
    assert ("policy.karmada.io", "propagationpolicies", "patch") in fleet
    assert ("policy.karmada.io", "clusterpropagationpolicies", "patch") in fleet
    assert ("apps.karmada.io", "workloadrebalancers", "create") in fleet
    assert ("cluster.karmada.io", "clusters", "watch") in fleet
    assert ("apps", "deployments", "list") in fleet
    assert ("coordination.k8s.io", "leases", "update") in fleet
    assert ("events.k8s.io", "events", "create") in fleet
    assert not any(verb == "delete" for _, _, verb in fleet)  # never deletes: Karmada moves replicas
