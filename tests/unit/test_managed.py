"""The never-managed rule: which objects Eco-Pulse neither places nor moves, and the reason it gives.

Every app asks the same rule: the webhook and the extender of a pod as JSON, the rebalancer of its
slim record. The table checks both readings give the same reason.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from core.config import parse_config_text
from core.kube.slim import slim_pod
from core.managed import Unmanaged, subject_of, unmanaged
from core.model import NamespaceInfo, PolicyPlacement
from rebalancer.protections import protection
from tests.factories import pod

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SETTINGS = parse_config_text(
    "apiVersion: ecopulse.io/v1alpha1\nkind: EcoPulseConfiguration\n"
    "regions: [{name: us-east-1, zone: US-MIDA-PJM}]\nbaselineRegion: us-east-1\n"
    "carbon: {provider: mock, mock: {us-east-1: 450}}\n"
).rebalancer
OPT_OUT = "ecopulse.io/opt-out"
OPTED_OUT_NAMESPACE = NamespaceInfo(opted_out=True)
NAMESPACE_DEFAULT_OUT = NamespaceInfo(hint_annotations={OPT_OUT: "true"})

# (pod builder arguments, its namespace, the reason or None)
CASES: list[tuple[dict[str, Any], NamespaceInfo | None, Unmanaged | None]] = [
    ({}, None, None),
    (dict(namespace="kube-system"), None, Unmanaged.SYSTEM_NAMESPACE),
    (dict(namespace="kube-node-lease"), None, Unmanaged.SYSTEM_NAMESPACE),
    (dict(namespace="eco-pulse"), None, Unmanaged.SYSTEM_NAMESPACE),  # our own
    ({}, OPTED_OUT_NAMESPACE, Unmanaged.NAMESPACE_OPTED_OUT),
    (dict(annotations={OPT_OUT: "true"}), None, Unmanaged.OPTED_OUT),
    (dict(annotations={OPT_OUT: " TRUE "}), None, Unmanaged.OPTED_OUT),
    (dict(annotations={OPT_OUT: "false"}), None, None),
    (dict(labels={OPT_OUT: "true"}), None, Unmanaged.OPTED_OUT),
    (dict(labels={OPT_OUT: "True"}), None, Unmanaged.OPTED_OUT),
    (dict(labels={OPT_OUT: "false"}), None, None),
    ({}, NAMESPACE_DEFAULT_OUT, Unmanaged.OPTED_OUT),  # the namespace's annotation is a default...
    (dict(annotations={OPT_OUT: "false"}), NAMESPACE_DEFAULT_OUT, None),  # ...the pod's own wins
    (dict(annotations={"kubernetes.io/config.mirror": "abc"}), None, Unmanaged.MIRROR_POD),
    (
        dict(annotations={"kubernetes.io/config.mirror": "abc", "kubernetes.io/config.source": "file"}),
        None,
        Unmanaged.MIRROR_POD,
    ),
    (dict(annotations={"kubernetes.io/config.source": "file"}), None, Unmanaged.STATIC_POD),
    (dict(annotations={"kubernetes.io/config.source": "api"}), None, None),
    (dict(owner=("apps/v1", "DaemonSet", "agent")), None, Unmanaged.DAEMONSET_POD),
    (dict(owner=("batch/v1", "Job", "nightly")), None, None),
    (dict(owner=None), None, None),  # a bare pod is placed; only the rebalancer leaves it be
]


@pytest.mark.parametrize(("arguments", "namespace", "reason"), CASES, ids=str)
def test_the_webhook_and_the_rebalancer_read_the_same_reason(
    arguments: dict[str, Any], namespace: NamespaceInfo | None, reason: Unmanaged | None
) -> None:
    document = pod(node_name="us-a", **arguments)
    name = str(document["metadata"]["namespace"])
    admitted = subject_of(document, namespace=name)
    assert unmanaged(admitted, namespace=namespace, own_namespace="eco-pulse") is reason
    record = slim_pod(document)
    assert record is not None
    assert unmanaged(record, namespace=namespace, own_namespace="eco-pulse") is reason


def test_a_pod_labelled_opt_out_is_never_evicted() -> None:
    """The README's opt-out is an annotation or a label: the watch cache must keep the label."""
    record = slim_pod(pod(labels={"app": "web", OPT_OUT: "true"}, node_name="us-a"))
    assert record is not None
    assert str(protection(record, namespace=None, settings=SETTINGS, now=NOW)) == "opted-out"


def test_the_slim_record_shares_one_label_set_between_replicas() -> None:
    # Policy selectors (core.policy) match any label, so the record keeps them all; replicas share
    # one interned mapping, so a ReplicaSet's thousand pods cost one set of labels.
    labels = {"app": "web", "pod-template-hash": "7d4b9c", OPT_OUT: "true"}
    first = slim_pod(pod(name="web-1", labels=labels, node_name="n"))
    second = slim_pod(pod(name="web-2", labels=dict(labels), node_name="n"))
    assert first is not None and second is not None
    assert dict(first.labels) == labels and first.labels is second.labels


def test_replicas_share_one_hint_mapping_and_other_hints_get_their_own() -> None:
    # The planner works out a pod's policies and hints once per (namespace, labels, hints) by the
    # mappings' identity: replicas must share them, and different hints must never be confused.
    hints = {"ecopulse.io/max-latency-ms": "80", "ecopulse.io/data-region": "us-east-1"}
    first = slim_pod(pod(name="web-1", annotations=hints, node_name="n"))
    second = slim_pod(pod(name="web-2", annotations={**hints, "unrelated": "x"}, node_name="n"))
    other = slim_pod(pod(name="web-3", annotations={"ecopulse.io/max-latency-ms": "90"}, node_name="n"))
    bare = slim_pod(pod(name="web-4", node_name="n"))
    assert first is not None and second is not None and other is not None and bare is not None
    assert dict(first.hint_annotations) == hints and first.hint_annotations is second.hint_annotations
    assert dict(other.hint_annotations) == {"ecopulse.io/max-latency-ms": "90"}
    assert dict(bare.hint_annotations) == {}


def test_only_a_pod_a_policy_placed_keeps_its_policy_and_creation_time() -> None:
    document = pod(name="web-1", annotations={"ecopulse.io/policy": "EcoPulsePolicy/shop/web"}, node_name="n")
    document["metadata"]["creationTimestamp"] = "2026-11-20T06:00:00Z"
    placed = slim_pod(document)
    plain = slim_pod(pod(name="web-2", node_name="n"))
    assert placed is not None and plain is not None
    assert placed.placed == PolicyPlacement(
        refs="EcoPulsePolicy/shop/web", created_at=datetime(2026, 11, 20, 6, tzinfo=UTC)
    )
    assert plain.placed is None
