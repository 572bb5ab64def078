"""Builders of what tests feed the code (pods as the API server sends them, cache records), and a
fake Eviction API that answers as the real one does."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.kube.events import EventRequest
from core.model import PodDemand, PodRecord
from rebalancer.kubeapi import EvictionOutcome, EvictionRequest, EvictionResult

# The three regions the tests and the local cluster share: a coal-heavy grid, a mixed one and a
# clean one (zones are Electricity Maps ids). Configurations are built on these two fragments.
THREE_REGIONS = """\
regions:
  - {name: us-east-1, zone: US-MIDA-PJM}
  - {name: eu-west-1, zone: IE}
  - {name: eu-north-1, zone: SE-SE3}
baselineRegion: us-east-1
"""
# One price everywhere (us-east-1's on-demand and spot list prices): only carbon tells them apart.
ONE_PRICE = """\
prices:
  us-east-1: {vcpuHour: 0.0312, gibHour: 0.0042, spotVcpuHour: 0.0115, spotGibHour: 0.0016}
  eu-west-1: {vcpuHour: 0.0312, gibHour: 0.0042, spotVcpuHour: 0.0115, spotGibHour: 0.0016}
  eu-north-1: {vcpuHour: 0.0312, gibHour: 0.0042, spotVcpuHour: 0.0115, spotGibHour: 0.0016}
"""


def pod(
    name: str = "web-1",
    *,
    generate_name: str | None = None,
    namespace: str = "shop",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    owner: tuple[str, str, str] | None = ("apps/v1", "ReplicaSet", "web-abc"),
    owner_uid: str | None = None,
    cpu: str = "2",
    memory: str = "4Gi",
    node_name: str | None = None,
    phase: str | None = None,
    started_at: str = "2026-11-20T06:00:05Z",
    **spec: Any,
) -> dict[str, Any]:
    """A Pod as JSON (camelCase, as the API server sends it): a ReplicaSet's pod of 'shop'.

    With ``generate_name`` it is the pod a controller asks to create (no name, no uid yet), as an
    admission review carries it. ``owner`` is (apiVersion, kind, name) of the controller owner
    reference, or None for a bare pod. With ``node_name`` the pod is scheduled, Running (or
    ``phase``) and Ready; ``spec`` overrides any field of the spec.
    """
    metadata: dict[str, Any] = (
        {"generateName": generate_name, "namespace": namespace}
        if generate_name is not None
        else {"name": name, "namespace": namespace, "uid": f"uid-{name}"}
    )
    if labels is not None:
        metadata["labels"] = labels
    if annotations is not None:
        metadata["annotations"] = annotations
    if owner is not None:
        api_version, kind, owner_name = owner
        metadata["ownerReferences"] = [
            {
                "apiVersion": api_version,
                "kind": kind,
                "name": owner_name,
                "uid": owner_uid or f"uid-{owner_name}",
                "controller": True,
            }
        ]
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "nginx:1.27",
                    "resources": {"requests": {"cpu": cpu, "memory": memory}},
                }
            ],
            **spec,
        },
    }
    if node_name is not None:
        body["spec"]["nodeName"] = node_name
        body["status"] = {
            "phase": phase or "Running",
            "startTime": started_at,
            "conditions": [{"type": "Ready", "status": "True"}],
        }
    return body


def pod_record(name: str, *, started_at: datetime, node_name: str, **overrides: Any) -> PodRecord:
    """A running, ready ReplicaSet pod of 'shop' on ``node_name``; ``overrides`` change any field."""
    fields: dict[str, Any] = dict(
        namespace="shop",
        name=name,
        uid=f"uid-{name}",
        node_name=node_name,
        phase="Running",
        ready=True,
        deleting=False,
        started_at=started_at,
        owner_kind="ReplicaSet",
        owner_name="web-abc",
        owner_api_version="apps/v1",
        demand=PodDemand(cpu_cores=4, memory_gib=8),
        hint_annotations={},
        mirror=False,
        static=False,
        priority=0,
        local_storage=False,
        pvc=False,
    )
    fields.update(overrides)
    return PodRecord(**fields)


@dataclass
class FakeEvictionApi:
    """Answers like the Eviction API would; records what it was asked."""

    answers: dict[str, EvictionOutcome] = field(default_factory=dict)
    calls: list[tuple[str, bool]] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    involved: list[dict[str, str]] = field(default_factory=list)  # each Event's object, as sent

    def evict(self, request: EvictionRequest) -> EvictionResult:
        self.calls.append((request.name, request.dry_run))
        default = EvictionOutcome.DRY_RUN if request.dry_run else EvictionOutcome.EVICTED
        outcome = self.answers.get(request.name, default)
        return EvictionResult(
            outcome=outcome,
            status={
                EvictionOutcome.EVICTED: 201,
                EvictionOutcome.DRY_RUN: 201,
                EvictionOutcome.BLOCKED: 429,
                EvictionOutcome.GONE: 404,
            }.get(outcome, 500),
            message="",
        )

    def post_event(self, request: EventRequest) -> bool:
        involved = request.involved
        self.events.append(f"{involved['kind']}/{involved['name']}: {request.message}")
        self.involved.append(dict(involved))
        return True
