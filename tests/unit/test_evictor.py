"""The evictor, the one choke point: what it asks the Eviction API and which Events it records."""

from __future__ import annotations

import pytest

from core.config import parse_config_text
from core.economics import NetBenefit
from core.kube.slim import slim_pod
from core.model import PodRecord
from rebalancer.evictor import Evictor
from rebalancer.planner import Candidate
from tests.factories import FakeEvictionApi, pod

SETTINGS = parse_config_text(
    "apiVersion: ecopulse.io/v1alpha1\nkind: EcoPulseConfiguration\n"
    "regions: [{name: us-east-1, zone: US-MIDA-PJM}, {name: eu-north-1, zone: SE-SE3}]\n"
    "baselineRegion: us-east-1\ncarbon: {provider: mock, mock: {us-east-1: 450, eu-north-1: 30}}\n"
    "rebalancer: {dryRun: false}\n"
).rebalancer


def candidate(record: PodRecord) -> Candidate:
    benefit = NetBenefit(
        source="us-east-1",
        target="eu-north-1",
        price_savings_usd=0.0,
        carbon_value_usd=0.01,
        migration_cost_usd=0.001,
        egress_cost_usd=0.0,
        latency_penalty_usd=0.0,
        avoided_grams=10.0,
    )
    return Candidate(
        pod=record,
        source_region="us-east-1",
        target_region="eu-north-1",
        benefit=benefit,
        source_g_per_kwh=450,
        target_g_per_kwh=30,
    )


@pytest.mark.parametrize(
    ("api_version", "kind"),
    [
        ("apps/v1", "ReplicaSet"),
        ("apps/v1", "StatefulSet"),
        ("batch/v1", "Job"),
        ("v1", "ReplicationController"),
    ],
)
def test_the_event_on_the_owner_names_the_owner_s_own_api_version(api_version: str, kind: str) -> None:
    record = slim_pod(pod(owner=(api_version, kind, "owner-1"), node_name="us-a"))
    assert record is not None
    api = FakeEvictionApi()
    attempt = Evictor(api=api, settings=SETTINGS).evict(candidate(record))
    assert attempt.result == "evicted"
    on_pod, on_owner = api.involved
    assert on_pod == {
        "kind": "Pod",
        "apiVersion": "v1",
        "name": "web-1",
        "uid": "uid-web-1",
        "namespace": "shop",
    }
    assert on_owner == {"kind": kind, "apiVersion": api_version, "name": "owner-1", "namespace": "shop"}
