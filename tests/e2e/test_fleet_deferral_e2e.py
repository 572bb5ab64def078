"""Deferrable Jobs across the real local fleet (Karmada v1.16, three members): a Job applied to the
Karmada API server with kubectl is held with nothing in any member (our webhook on the Karmada API
server: the Job suspended, its ResourceBinding's scheduling suspended), released by fleet mode's
leader at the green hour into the green member only, and completes there; with fleet mode killed,
the janitor (its own identity) releases it at release-by; a Job without deferral annotations is
propagated exactly as Karmada alone would.

The grid is tests/e2e/test_deferral_e2e.py's trace replayed fast (20 s a trace hour): dirty, then
eu-north-1 green 40 s after the replay restarts.
"""

from __future__ import annotations

import contextlib
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from certs.issue import ca_bundle_b64, issue_ca, issue_serving_cert, write_bundle
from core.deferral_bindings import CHOSEN_AFFINITY, POLICY_AFFINITY
from tests.e2e.cluster import REPO, free_port
from tests.e2e.fleet import Fleet, start_fleet_mode
from tests.e2e.test_deferral_e2e import (
    GREEN_FROM_TRACE_HOUR,
    SECONDS_PER_TRACE_HOUR,
    SPEEDUP,
    completed_at,
    pod_template,
    wait_until,
    write_trace,
)

LEASE = "eco-pulse-fleet"
WEBHOOK = "ecopulse-webhook"
LEADER = "fleet-deferral"
GREEN_MEMBER = "member-eu-north-1"


class FleetGrid:
    """The fleet's config.yaml with the fast trace grid; restored afterwards."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.original = fleet.config_file.read_text()
        self.trace = fleet.root / "deferral-trace.csv"
        write_trace(self.trace)

    def restart(self) -> datetime:
        started = datetime.now(UTC).replace(microsecond=0)
        start = self.original.index("carbon:")
        end = self.original.index("economics:")
        carbon = (
            "carbon:\n  provider: trace\n  refreshSeconds: 1\n  maxStaleSeconds: 600\n"
            f"  trace: {{path: {self.trace}, speedup: {SPEEDUP:g}, forecastHours: 6, "
            f"wallClockStart: '{started.strftime('%Y-%m-%dT%H:%M:%SZ')}'}}\n"
        )
        deferral = "deferral: {safetyMarginSeconds: 60, minBenefitUsd: 0, confidenceZ: 0}\n"
        staging = self.fleet.config_file.with_suffix(".yaml.tmp")
        staging.write_text(self.original[:start] + carbon + self.original[end:] + deferral)
        staging.replace(self.fleet.config_file)
        time.sleep(4)  # the webhook and fleet mode reload within 2 s, the signals refresh every second
        return started + timedelta(seconds=GREEN_FROM_TRACE_HOUR * SECONDS_PER_TRACE_HOUR)

    def restore(self) -> None:
        self.fleet.config_file.write_text(self.original)


def lease_holder(fleet: Fleet) -> str:
    try:
        lease = json.loads(fleet.karmada_kubectl("get", "lease", LEASE, "-n", "eco-pulse", "-o", "json"))
    except Exception:
        return ""
    return str(lease["spec"].get("holderIdentity") or "")


def start_webhook(fleet: Fleet) -> tuple[int, Path]:
    """Our webhook, against the Karmada API server, with fleet mode's Lease as its releaser's."""
    tls = fleet.root / "ecopulse-webhook-tls"
    ca = issue_ca("eco-pulse fleet webhook CA")
    serving = issue_serving_cert(
        ca,
        service="eco-pulse-webhook",
        namespace="eco-pulse",
        dns_names=["localhost"],
        ip_addresses=["127.0.0.1"],
    )
    write_bundle(tls, ca=ca, leaf=serving)
    port = free_port()
    fleet.start_process(
        WEBHOOK,
        [sys.executable, "-m", "webhook"],
        env={
            "ECOPULSE_CONFIG": str(fleet.config_file),
            "ECOPULSE_TLS_DIR": str(tls),
            "ECOPULSE_BIND_ADDRESS": "127.0.0.1",
            "ECOPULSE_WEBHOOK_PORT": str(port),
            "ECOPULSE_METRICS_BIND_ADDRESS": "127.0.0.1",
            "ECOPULSE_METRICS_PORT": str(free_port()),
            "ECOPULSE_RELEASER_LEASE": f"eco-pulse/{LEASE}",
            "ECOPULSE_RELEASER": "fleet",
            "KUBECONFIG": str(fleet.karmada_kubeconfig),
            "PYTHONPATH": str(REPO),
        },
    )
    context = ssl.create_default_context(cafile=str(tls / "ca.crt"))

    def ready() -> bool:
        try:
            with urllib.request.urlopen(
                f"https://127.0.0.1:{port}/readyz", context=context, timeout=2
            ) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    fleet.wait_for("our webhook on the Karmada API server", ready, timeout_seconds=60)
    return port, tls


def register_webhook(fleet: Fleet, port: int, tls: Path) -> None:
    """manifests/fleet/deferral/karmada-webhook.yaml, each hook pointed at the local process by URL."""
    manifest = yaml.safe_load(
        (REPO / "manifests" / "fleet" / "deferral" / "karmada-webhook.yaml").read_text()
    )
    for hook in manifest["webhooks"]:
        path = hook["clientConfig"]["service"]["path"]
        hook["clientConfig"] = {
            "url": f"https://127.0.0.1:{port}{path}",
            "caBundle": ca_bundle_b64((tls / "ca.crt").read_bytes()),
        }
    fleet.karmada_kubectl("apply", "-f", "-", input_text=json.dumps(manifest))


@pytest.fixture(scope="module")
def deferring(fleet: Fleet) -> Iterator[tuple[Fleet, FleetGrid]]:
    grid = FleetGrid(fleet)
    grid.restart()
    port, tls = start_webhook(fleet)
    start_fleet_mode(fleet, LEADER, metrics_port=free_port())
    try:
        wait_until("fleet mode's Lease", lambda: lease_holder(fleet) == LEADER, 60)
        register_webhook(fleet, port, tls)
        yield fleet, grid
    finally:
        fleet.karmada_kubectl(
            "delete", "mutatingwebhookconfiguration", "eco-pulse-fleet-deferral", "--ignore-not-found"
        )
        for name in (LEADER, WEBHOOK):
            with contextlib.suppress(Exception):
                fleet.stop(name)
        grid.restore()


@pytest.fixture
def namespace(deferring: tuple[Fleet, FleetGrid], request: pytest.FixtureRequest) -> Iterator[str]:
    fleet, _ = deferring
    name = "fd-" + request.node.name.replace("_", "-")[5:30].strip("-").lower()
    fleet.karmada_kubectl("create", "namespace", name)
    yield name
    fleet.karmada_kubectl("delete", "namespace", name, "--wait=false")


def apply_job(
    fleet: Fleet, namespace: str, name: str, *, deferrable: bool = True, within: str = "6h"
) -> None:
    """What a user writes: a Job and a PropagationPolicy to every member (Duplicated)."""
    annotations = (
        {"ecopulse.io/finish-within": within, "ecopulse.io/expected-runtime-hours": "0.05"}
        if deferrable
        else {}
    )
    objects = [
        {
            "apiVersion": "policy.karmada.io/v1alpha1",
            "kind": "PropagationPolicy",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "resourceSelectors": [{"apiVersion": "batch/v1", "kind": "Job", "name": name}],
                "placement": {
                    "clusterAffinity": {"clusterNames": sorted(fleet.regions)},
                    "replicaScheduling": {"replicaSchedulingType": "Duplicated"},
                },
            },
        },
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
            "spec": {"backoffLimit": 0, "template": pod_template()},
        },
    ]
    fleet.karmada_kubectl(
        "apply", "-f", "-", input_text=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
    )


def karmada_job(fleet: Fleet, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(
        fleet.karmada_kubectl("get", "job", name, "-n", namespace, "-o", "json")
    )
    return found


def binding(fleet: Fleet, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = json.loads(
            fleet.karmada_kubectl("get", "resourcebinding", f"{name}-job", "-n", namespace, "-o", "json")
        )
    except Exception:
        return None
    return found


def members_with_job(fleet: Fleet, namespace: str, name: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for member in fleet.regions:
        items = json.loads(
            fleet.member_kubectl(member, "get", "jobs", "-n", namespace, "-o", "json", "--ignore-not-found")
            or '{"items": []}'
        )["items"]
        for item in items:
            if item["metadata"]["name"] == name:
                found[member] = item
    return found


def test_a_held_job_runs_at_the_green_hour_in_the_green_member_only(
    deferring: tuple[Fleet, FleetGrid], namespace: str
) -> None:
    fleet, grid = deferring
    green_at = grid.restart()
    apply_job(fleet, namespace, "train")
    job = karmada_job(fleet, namespace, "train")
    annotations = job["metadata"]["annotations"]
    assert job["spec"]["suspend"] is True, annotations.get("ecopulse.io/decision")
    assert "ecopulse.io/held-at" in annotations and "ecopulse.io/release-by" in annotations
    deadline = datetime.fromisoformat(annotations["ecopulse.io/deadline"].replace("Z", "+00:00"))
    held = wait_until("the binding", lambda: binding(fleet, namespace, "train"), 30)
    assert held["spec"]["suspension"]["scheduling"] is True
    # While held: nothing in any member, through a few of fleet mode's passes (every 5 s).
    time.sleep(10)
    assert datetime.now(UTC) < green_at, "the machine was too slow to observe the hold"
    assert members_with_job(fleet, namespace, "train") == {}
    assert not (binding(fleet, namespace, "train") or {}).get("spec", {}).get("clusters")

    released = wait_until(
        "the release",
        lambda: (b := binding(fleet, namespace, "train")) and b["spec"].get("clusters") and b,
        timeout_seconds=150,
    )
    assert datetime.now(UTC) >= green_at - timedelta(seconds=2)
    assert [c["name"] for c in released["spec"]["clusters"]] == [GREEN_MEMBER]
    job = karmada_job(fleet, namespace, "train")
    assert job["spec"]["suspend"] is False
    assert job["metadata"]["annotations"]["ecopulse.io/decision"].startswith(
        f"released (green-hour) into {GREEN_MEMBER}"
    )
    finished = wait_until(
        "the Job to complete in the green member",
        lambda: (
            (m := members_with_job(fleet, namespace, "train").get(GREEN_MEMBER)) and completed_at(m) and m
        ),
        120,
    )
    done_at = completed_at(finished)
    assert done_at is not None and done_at < deadline
    assert set(members_with_job(fleet, namespace, "train")) == {GREEN_MEMBER}
    # The user edits the policy: Karmada's detector copies its placement over the binding; the
    # webhook puts the pin back, and the Job never appears in another member.
    names = sorted(fleet.regions, reverse=True)
    fleet.karmada_kubectl(
        "patch", "propagationpolicy", "train", "-n", namespace, "--type=merge",
        "-p", json.dumps({"spec": {"placement": {"clusterAffinity": {"clusterNames": names}}}}),
    )  # fmt: skip
    time.sleep(10)
    repinned = binding(fleet, namespace, "train")
    assert repinned is not None
    # The chosen member first; the edited policy's placement after it, for Karmada's failover only.
    assert repinned["spec"]["placement"]["clusterAffinities"] == [
        {"affinityName": CHOSEN_AFFINITY, "clusterNames": [GREEN_MEMBER]},
        {"affinityName": POLICY_AFFINITY, "clusterNames": names},
    ]
    assert repinned.get("status", {}).get("schedulerObservingAffinityName") == CHOSEN_AFFINITY
    assert set(members_with_job(fleet, namespace, "train")) == {GREEN_MEMBER}
    notes = {
        e.get("reason"): e.get("note") or e.get("message") or ""
        for e in json.loads(fleet.karmada_kubectl("get", "events", "-n", namespace, "-o", "json"))["items"]
    }
    assert "released by" in notes.get("Held", ""), notes
    assert "green-hour" in notes.get("Released", "") and GREEN_MEMBER in notes["Released"], notes


def test_a_job_without_deferral_is_propagated_as_karmada_alone_would(
    deferring: tuple[Fleet, FleetGrid], namespace: str
) -> None:
    fleet, grid = deferring
    grid.restart()
    apply_job(fleet, namespace, "plain", deferrable=False)
    job = karmada_job(fleet, namespace, "plain")
    assert not job["spec"].get("suspend") and "ecopulse.io/held-at" not in job["metadata"].get(
        "annotations", {}
    )
    everywhere = wait_until(
        "the Job in every member (Duplicated)",
        lambda: len(m := members_with_job(fleet, namespace, "plain")) == len(fleet.regions) and m,
        90,
    )
    assert set(everywhere) == set(fleet.regions)
    bound = binding(fleet, namespace, "plain")
    assert bound is not None and not bound["spec"].get("suspension", {}).get("scheduling")
    assert "ecopulse.io/pinned-cluster" not in bound["metadata"].get("labels", {})


def test_with_fleet_mode_killed_the_janitor_releases_at_release_by(
    deferring: tuple[Fleet, FleetGrid], namespace: str
) -> None:
    fleet, grid = deferring
    grid.restart()
    apply_job(fleet, namespace, "orphan")
    assert karmada_job(fleet, namespace, "orphan")["spec"]["suspend"] is True
    wait_until(
        "the held binding",
        lambda: (b := binding(fleet, namespace, "orphan")) and b["spec"].get("suspension"),
        30,
    )
    fleet.kill(LEADER)  # SIGKILL: no release, no Lease handed back
    try:
        fleet.karmada_kubectl(
            "apply", "-f", str(REPO / "manifests" / "fleet" / "deferral" / "karmada-janitor-rbac.yaml")
        )
        kubeconfig = fleet.token_kubeconfig("eco-pulse-fleet-janitor", "eco-pulse")
        janitor = [sys.executable, "-m", "fleet", "release-overdue"]
        env = {**os.environ, "ECOPULSE_KARMADA_KUBECONFIG": str(kubeconfig), "PYTHONPATH": str(REPO)}
        # Before release-by the janitor leaves the hold alone.
        subprocess.run(janitor, env=env, check=True, timeout=60, capture_output=True)
        assert karmada_job(fleet, namespace, "orphan")["spec"]["suspend"] is True
        # Time passes: release-by comes. The janitor needs nothing else.
        overdue = (datetime.now(UTC) - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        fleet.karmada_kubectl(
            "annotate", "job", "orphan", "-n", namespace, f"ecopulse.io/release-by={overdue}", "--overwrite"
        )
        done = subprocess.run(janitor, env=env, check=False, timeout=60, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        job = karmada_job(fleet, namespace, "orphan")
        assert job["spec"]["suspend"] is False
        assert job["metadata"]["annotations"]["ecopulse.io/decision"].startswith("released (janitor)")
        deadline = datetime.fromisoformat(
            job["metadata"]["annotations"]["ecopulse.io/deadline"].replace("Z", "+00:00")
        )
        # Unpinned: Karmada places it by the user's policy, and it completes before its deadline.
        finished = wait_until(
            "the Job to complete in a member",
            lambda: next(
                (m for m in members_with_job(fleet, namespace, "orphan").values() if completed_at(m)), None
            ),
            120,
        )
        done_at = completed_at(finished)
        assert done_at is not None and done_at < deadline
    finally:
        with contextlib.suppress(Exception):
            fleet.stop(LEADER)
        start_fleet_mode(fleet, LEADER, metrics_port=free_port())
        wait_until("fleet mode's Lease", lambda: lease_holder(fleet) == LEADER, 90)
