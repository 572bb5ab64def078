"""Deferrable Jobs on the real control plane: held at CREATE by the webhook, released by the
rebalancer's leader at the green hour into the green region, or by the janitor at release-by.

The grid is a trace replayed fast (``carbon.trace``, 20 s a trace hour) with its next hours as the
forecast: dirty for two trace hours, then eu-north-1 turns green. Each test restarts the replay
at its own first hour (``wallClockStart``). Kwok completes the Jobs' pods 3 s after they run
(the ``pod-complete`` stage in hack/kwok/stages.yaml).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cluster import DEMO_CONFIG, REPO, LocalCluster, free_port
from tests.e2e.test_webhook_e2e import region_of_nodes

SECONDS_PER_TRACE_HOUR = 20
SPEEDUP = 3600 / SECONDS_PER_TRACE_HOUR
TRACE_HOURS = 10
GREEN_FROM_TRACE_HOUR = 2
ZONES = {"US-MIDA-PJM": 500.0, "IE": 450.0, "SE-SE3": 400.0}
LEASE = "eco-pulse-rebalancer"


def write_trace(path: Path) -> None:
    lines = ["datetime_utc,zone,carbon_intensity_direct_g_per_kwh,carbon_intensity_lifecycle_g_per_kwh"]
    first = datetime(2026, 1, 1, tzinfo=UTC)
    for hour in range(TRACE_HOURS):
        at = (first + timedelta(hours=hour)).strftime("%Y-%m-%dT%H:%M:%SZ")
        for zone, dirty in ZONES.items():
            value = 20.0 if zone == "SE-SE3" and hour >= GREEN_FROM_TRACE_HOUR else dirty
            lines.append(f"{at},{zone},{value},{value}")
    path.write_text("\n".join(lines) + "\n")


def deferral_config(trace: Path, wall_clock_start: datetime, *, confidence_z: float | None = 0.0) -> str:
    """The local configuration with the trace grid and quick deferral settings; ``confidence_z``
    None: the production default (2)."""
    start = DEMO_CONFIG.index("carbon:")
    end = DEMO_CONFIG.index("economics:")
    carbon = (
        "carbon:\n"
        "  provider: trace\n"
        "  refreshSeconds: 1\n"
        "  maxStaleSeconds: 600\n"
        f"  trace: {{path: {trace}, speedup: {SPEEDUP:g}, forecastHours: 6, "
        f"wallClockStart: '{wall_clock_start.strftime('%Y-%m-%dT%H:%M:%SZ')}'}}\n"
    )
    # The e2e Jobs are tiny and the replay's forecast has no measured error yet (its record needs a
    # day of hourly forecasts): no minimum, no error margin on either side (the webhook and the
    # releaser apply the same), a minute of safety margin.
    margin = "" if confidence_z is None else f", confidenceZ: {confidence_z:g}"
    deferral = f"deferral: {{safetyMarginSeconds: 60, minBenefitUsd: 0{margin}}}\n"
    return DEMO_CONFIG[:start] + carbon + DEMO_CONFIG[end:] + deferral


def wait_until(what: str, check: Callable[[], Any], timeout_seconds: float, every: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout_seconds:g}s waiting for {what}")


class Grid:
    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.trace = cluster.root / "deferral-trace.csv"
        write_trace(self.trace)
        self.started = datetime.now(UTC)

    def restart(self, *, confidence_z: float | None = 0.0) -> datetime:
        """The replay at its first (dirty) hour from now; eu-north-1 green 40 s later."""
        self.started = datetime.now(UTC).replace(microsecond=0)
        self.cluster.config_file.write_text(
            deferral_config(self.trace, self.started, confidence_z=confidence_z)
        )
        time.sleep(4)  # both processes reload within 2 s, the signals refresh every second
        return self.started + timedelta(seconds=GREEN_FROM_TRACE_HOUR * SECONDS_PER_TRACE_HOUR)


def lease_holder(cluster: LocalCluster) -> str:
    done = subprocess.run(
        [cluster.binary("kubectl"), "--kubeconfig", str(cluster.kubeconfig), "get", "lease", LEASE,
         "-n", "eco-pulse", "-o", "json"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    if done.returncode != 0:
        return ""
    return str(json.loads(done.stdout)["spec"].get("holderIdentity") or "")


@pytest.fixture(scope="module")
def deferring(cluster: LocalCluster) -> Iterator[tuple[LocalCluster, Grid]]:
    """The trace grid and one rebalancer (the releaser) for this module only."""
    original = cluster.config_file.read_text()
    grid = Grid(cluster)
    grid.restart()
    cluster.start_rebalancer("releaser", metrics_port=free_port())
    wait_until("the releaser's Lease", lambda: lease_holder(cluster) == "releaser", 60)
    yield cluster, grid
    cluster.stop("releaser")
    cluster.config_file.write_text(original)
    time.sleep(4)


@pytest.fixture
def namespace(deferring: tuple[LocalCluster, Grid], request: pytest.FixtureRequest) -> Iterator[str]:
    cluster, _ = deferring
    name = "df-" + request.node.name.replace("_", "-")[5:35].strip("-").lower()
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")


def job_manifest(
    name: str,
    namespace: str,
    *,
    annotations: dict[str, str] | None = None,
    suspend: bool | None = None,
) -> dict[str, Any]:
    job: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "annotations": {
                "ecopulse.io/finish-within": "6h",
                "ecopulse.io/expected-runtime-hours": "0.05",
                **(annotations or {}),
            },
        },
        "spec": {"backoffLimit": 0, "template": pod_template()},
    }
    if suspend is not None:
        job["spec"]["suspend"] = suspend
    return job


def pod_template() -> dict[str, Any]:
    return {
        "metadata": {"labels": {"e2e.ecopulse.io/completes": "true"}},
        "spec": {
            "restartPolicy": "Never",
            "nodeSelector": {"karpenter.sh/capacity-type": "on-demand"},
            "containers": [
                {
                    "name": "train",
                    "image": "registry.example/train:1",
                    "resources": {"requests": {"cpu": "2"}},
                }
            ],
        },
    }


def cron_manifest(name: str, namespace: str) -> dict[str, Any]:
    """A CronJob every minute whose Jobs ask for deferral (on its jobTemplate, copied to each Job)."""
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "schedule": "* * * * *",
            "concurrencyPolicy": "Forbid",
            "jobTemplate": {
                "metadata": {
                    "annotations": {
                        "ecopulse.io/finish-within": "6h",
                        "ecopulse.io/expected-runtime-hours": "0.05",
                    }
                },
                "spec": {"backoffLimit": 0, "template": pod_template()},
            },
        },
    }


def get_job(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(cluster.kubectl("get", "job", name, "-n", namespace, "-o", "json"))
    return found


def job_pods(cluster: LocalCluster, namespace: str, name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(
        cluster.kubectl("get", "pods", "-n", namespace, "-l", f"job-name={name}", "-o", "json")
    )["items"]
    return items


def events(cluster: LocalCluster, namespace: str, reason: str) -> list[str]:
    items = json.loads(cluster.kubectl("get", "events", "-n", namespace, "-o", "json"))["items"]
    return [e.get("note") or e.get("message") or "" for e in items if e.get("reason") == reason]


def create(cluster: LocalCluster, manifest: dict[str, Any]) -> None:
    cluster.kubectl("create", "-f", "-", input_text=json.dumps(manifest))


def completed_at(job: dict[str, Any]) -> datetime | None:
    raw = job.get("status", {}).get("completionTime")
    return datetime.fromisoformat(raw.replace("Z", "+00:00")) if raw else None


def test_a_job_is_held_then_released_at_the_green_hour_into_the_green_region(
    deferring: tuple[LocalCluster, Grid], namespace: str
) -> None:
    cluster, grid = deferring
    green_at = grid.restart()
    create(cluster, job_manifest("train", namespace))
    job = get_job(cluster, namespace, "train")
    annotations = job["metadata"]["annotations"]
    assert job["spec"]["suspend"] is True, annotations.get("ecopulse.io/decision")
    assert "ecopulse.io/held-at" in annotations and "ecopulse.io/release-by" in annotations
    assert annotations["ecopulse.io/decision"].startswith("held: greener-hour-ahead"), annotations
    deadline = datetime.fromisoformat(annotations["ecopulse.io/deadline"].replace("Z", "+00:00"))

    # While held: no pods at all, through a few of the releaser's cycles (every 5 s).
    time.sleep(8)
    assert datetime.now(UTC) < green_at, "the machine was too slow to observe the hold"
    assert job_pods(cluster, namespace, "train") == []
    assert get_job(cluster, namespace, "train")["spec"]["suspend"] is True

    released = wait_until(
        "the release",
        lambda: (j := get_job(cluster, namespace, "train"))["spec"].get("suspend") is False and j,
        timeout_seconds=150,
    )
    assert datetime.now(UTC) >= green_at - timedelta(seconds=2)
    assert (
        released["spec"]["template"]["spec"]["nodeSelector"]["topology.kubernetes.io/region"] == "eu-north-1"
    )
    assert released["metadata"]["annotations"]["ecopulse.io/decision"].startswith("released (green-hour)")

    finished = wait_until(
        "the Job to complete", lambda: completed_at(j := get_job(cluster, namespace, "train")) and j, 90
    )
    done_at = completed_at(finished)
    assert done_at is not None and done_at < deadline
    where = region_of_nodes(cluster)
    assert {where[p["spec"]["nodeName"]] for p in job_pods(cluster, namespace, "train")} == {"eu-north-1"}
    assert any("released by" in note for note in events(cluster, namespace, "Held"))
    released_notes = events(cluster, namespace, "Released")
    assert any("green-hour" in note and "eu-north-1" in note for note in released_notes), released_notes


def test_with_a_confidence_margin_and_no_error_record_yet_nothing_is_held(
    deferring: tuple[LocalCluster, Grid], namespace: str
) -> None:
    """deferral.confidenceZ above 0 (the robust choice; the default 0 takes the forecast as given):
    the forecast's error is not known yet (nobody has seen a day of it), so the webhook does not
    hold a Job the releaser would release at its next cycle."""
    cluster, grid = deferring
    grid.restart(confidence_z=2.0)
    create(cluster, job_manifest("unsure", namespace))
    job = get_job(cluster, namespace, "unsure")
    assert not job["spec"].get("suspend"), job["metadata"]["annotations"].get("ecopulse.io/decision")
    assert "ecopulse.io/held-at" not in job["metadata"]["annotations"]
    wait_until("its pods", lambda: job_pods(cluster, namespace, "unsure"), 30)


def test_a_job_the_user_suspended_is_never_touched(
    deferring: tuple[LocalCluster, Grid], namespace: str
) -> None:
    cluster, grid = deferring
    grid.restart()
    create(cluster, job_manifest("mine", namespace, suspend=True))
    time.sleep(8)  # a releaser cycle or two (every 5 s)
    job = get_job(cluster, namespace, "mine")
    assert job["spec"]["suspend"] is True
    assert not any(
        key in job["metadata"]["annotations"] for key in ("ecopulse.io/held-at", "ecopulse.io/released-at")
    )


def test_with_the_lease_stale_the_webhook_does_not_hold(
    deferring: tuple[LocalCluster, Grid], namespace: str
) -> None:
    cluster, grid = deferring
    grid.restart()
    cluster.stop("releaser")  # a graceful stop hands the Lease back: no holder, nobody releases
    try:
        wait_until("the Lease to be released", lambda: lease_holder(cluster) == "", 30)
        time.sleep(2)  # the webhook's watch sees it
        create(cluster, job_manifest("now", namespace))
        job = get_job(cluster, namespace, "now")
        assert not job["spec"].get("suspend")
        assert "ecopulse.io/held-at" not in job["metadata"]["annotations"]
        wait_until("its pods", lambda: job_pods(cluster, namespace, "now"), 30)
    finally:
        cluster.start_rebalancer("releaser", metrics_port=free_port())
        wait_until("the releaser's Lease", lambda: lease_holder(cluster) == "releaser", 60)


def test_with_the_controller_killed_the_janitor_releases_at_release_by(
    deferring: tuple[LocalCluster, Grid], namespace: str
) -> None:
    cluster, grid = deferring
    grid.restart()
    create(cluster, job_manifest("orphan", namespace))
    assert get_job(cluster, namespace, "orphan")["spec"]["suspend"] is True
    cluster.kill("releaser")  # SIGKILL: no release, no Lease handed back
    try:
        janitor = [sys.executable, "-m", "rebalancer", "release-overdue"]
        env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "PYTHONPATH": str(REPO)}
        # Before release-by the janitor leaves the hold alone.
        subprocess.run(janitor, env=env, check=True, timeout=60, capture_output=True)
        assert get_job(cluster, namespace, "orphan")["spec"]["suspend"] is True
        # Time passes (hours, in production): release-by comes. The janitor needs nothing else.
        overdue = (datetime.now(UTC) - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        cluster.kubectl(
            "annotate", "job", "orphan", "-n", namespace, f"ecopulse.io/release-by={overdue}", "--overwrite"
        )
        subprocess.run(janitor, env=env, check=True, timeout=60, capture_output=True)
        job = get_job(cluster, namespace, "orphan")
        assert job["spec"]["suspend"] is False
        assert job["metadata"]["annotations"]["ecopulse.io/decision"].startswith("released (janitor)")
        wait_until("its pods", lambda: job_pods(cluster, namespace, "orphan"), 30)
    finally:
        cluster.stop("releaser")
        cluster.start_rebalancer("releaser", metrics_port=free_port())
        wait_until("the releaser's Lease", lambda: lease_holder(cluster) == "releaser", 60)


def test_a_new_leader_releases_the_overdue_holds_first(
    deferring: tuple[LocalCluster, Grid], namespace: str
) -> None:
    cluster, grid = deferring
    grid.restart()
    create(cluster, job_manifest("late", namespace))
    assert get_job(cluster, namespace, "late")["spec"]["suspend"] is True
    cluster.kill("releaser")
    cluster.stop("releaser")
    overdue = (datetime.now(UTC) - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    cluster.kubectl(
        "annotate", "job", "late", "-n", namespace, f"ecopulse.io/release-by={overdue}", "--overwrite"
    )
    cluster.start_rebalancer("releaser", metrics_port=free_port())
    released = wait_until(
        "the release",
        lambda: (j := get_job(cluster, namespace, "late"))["spec"].get("suspend") is False and j,
        60,
    )
    assert released["metadata"]["annotations"]["ecopulse.io/decision"].startswith(
        "released (controller-start)"
    )


def test_a_cronjobs_jobs_are_held_and_released(deferring: tuple[LocalCluster, Grid], namespace: str) -> None:
    cluster, grid = deferring
    # The CronJob controller creates the Job on the next minute: the replay must be dirty then
    # (and green 40 s after it restarted), so restart it a few seconds before that minute.
    now = datetime.now(UTC)
    next_minute = (now + timedelta(minutes=1)).replace(second=0, microsecond=0)
    if (next_minute - now).total_seconds() < 12:
        next_minute += timedelta(minutes=1)
    time.sleep(max(0.0, (next_minute - datetime.now(UTC)).total_seconds() - 10))
    grid.restart()
    create(cluster, cron_manifest("nightly", namespace))

    def first_job() -> dict[str, Any] | None:
        items = json.loads(cluster.kubectl("get", "jobs", "-n", namespace, "-o", "json"))["items"]
        return items[0] if items else None

    job = wait_until("the CronJob's Job", first_job, 120)
    cluster.kubectl(
        "patch", "cronjob", "nightly", "-n", namespace, "--type=merge", "-p", '{"spec":{"suspend":true}}'
    )
    name = job["metadata"]["name"]
    assert job["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    assert job["spec"]["suspend"] is True and "ecopulse.io/held-at" in job["metadata"]["annotations"]
    released = wait_until(
        "the release",
        lambda: (j := get_job(cluster, namespace, name))["spec"].get("suspend") is False and j,
        150,
    )
    assert (
        released["spec"]["template"]["spec"]["nodeSelector"]["topology.kubernetes.io/region"] == "eu-north-1"
    )
    wait_until("the Job to complete", lambda: completed_at(get_job(cluster, namespace, name)), 90)
