"""Fleet mode on the real local Karmada fleet (tests/e2e/fleet.py): two ``python -m fleet`` replicas
against the Karmada API server, the mock grid in the fleet's live configuration.

What a user writes does not change: a plain Deployment and a PropagationPolicy, applied to Karmada
with kubectl. The tests run in file order on one fleet and one pair of fleet-mode processes; each
uses its own namespace.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import kubernetes.client
import kubernetes.config
import pytest
import urllib3
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.cluster import free_port
from tests.e2e.fleet import MOVE_STABILITY_SECONDS, Fleet, placement_table, start_fleet_mode

pytestmark = pytest.mark.timeout(1200)

REPLICAS = 4
MAX_UNAVAILABLE = 1
GREEN_NORTH = {"us-east-1": 450.0, "eu-west-1": 300.0, "eu-north-1": 30.0}
GREEN_WEST = {"us-east-1": 450.0, "eu-west-1": 20.0, "eu-north-1": 500.0}
LIVE = {
    "intervalSeconds": 2,
    "dryRun": False,
    "cooldownSeconds": 0,
    "minNetBenefitUsd": 0.0001,
    "maxMovesPerPass": 10,
    "maxMovesPerNamespace": 5,
    "moveStabilitySeconds": MOVE_STABILITY_SECONDS,
}
NAMES = ("fleet-mode-a", "fleet-mode-b")


def fleet_settings(fleet: Fleet) -> dict[str, Any] | None:
    section: dict[str, Any] | None = yaml.safe_load(fleet.config_file.read_text()).get("fleet")
    return section


def set_fleet_settings(fleet: Fleet, settings: dict[str, Any] | None) -> None:
    """The fleet: section of the live configuration (fleet mode reloads it within seconds)."""
    config = yaml.safe_load(fleet.config_file.read_text())
    if settings is None:
        config.pop("fleet", None)
    else:
        config["fleet"] = settings
    staging = fleet.config_file.with_suffix(".yaml.tmp")
    staging.write_text(yaml.safe_dump(config, sort_keys=False))
    staging.replace(fleet.config_file)


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return sum(
        value
        for (sample, sample_labels), value in samples.items()
        if sample == name and all(dict(sample_labels).get(k) == v for k, v in labels.items())
    )


@dataclass
class FleetMode:
    fleet: Fleet
    ports: dict[str, int] = field(default_factory=dict)

    def leader(self) -> str | None:
        leaders = [
            name for name, port in self.ports.items() if total(scrape(port), "ecopulse_fleet_leader") == 1
        ]
        return leaders[0] if len(leaders) == 1 else None

    def completed_passes(self) -> float:
        return sum(
            total(scrape(p), "ecopulse_fleet_passes_total", outcome="completed") for p in self.ports.values()
        )

    def wait_passes(self, count: int) -> None:
        """Until the replicas together completed ``count`` more passes (they read the caches then)."""
        start = self.completed_passes()
        self.fleet.wait_for(
            f"{count} fleet passes", lambda: self.completed_passes() >= start + count, timeout_seconds=120
        )


@contextlib.contextmanager
def running_fleet_mode(
    fleet: Fleet, *, names: tuple[str, ...], settings: dict[str, Any], grid: dict[str, float]
) -> Iterator[FleetMode]:
    """Fleet-mode replicas ``names`` on the fleet, one of them leading; afterwards the fleet's grid
    and settings as they were, and the replicas stopped (even paused ones)."""
    original_grid, original = fleet.mock_grid(), fleet_settings(fleet)
    fleet.set_mock_grid(grid)
    set_fleet_settings(fleet, settings)
    mode = FleetMode(fleet=fleet)
    for name in names:
        mode.ports[name] = free_port()
        start_fleet_mode(fleet, name, metrics_port=mode.ports[name])

    def one_leader() -> bool:
        try:
            return mode.leader() is not None
        except OSError:
            return False  # not serving /metrics yet

    fleet.wait_for("one fleet-mode leader", one_leader, timeout_seconds=120)
    try:
        yield mode
    finally:
        for name in names:
            fleet.resume(name)
            fleet.stop(name)
        set_fleet_settings(fleet, original)  # the fleet as the next tests expect it
        fleet.set_mock_grid(original_grid)


@pytest.fixture(scope="module")
def fleet_mode(fleet: Fleet) -> Iterator[FleetMode]:
    with running_fleet_mode(fleet, names=NAMES, settings=LIVE, grid=GREEN_NORTH) as mode:
        yield mode


def apply_workload(
    fleet: Fleet,
    namespace: str,
    *,
    clusters: list[str],
    template_annotations: dict[str, str] | None = None,
    namespace_labels: dict[str, str] | None = None,
) -> None:
    """A plain Deployment and a plain PropagationPolicy naming ``clusters``, as a user writes them."""
    objects = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": namespace, "labels": namespace_labels or {}},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {
                "replicas": REPLICAS,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": MAX_UNAVAILABLE}},
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}, "annotations": template_annotations or {}},
                    "spec": {
                        "containers": [
                            {
                                "name": "web",
                                "image": "registry.example/web:1.0",
                                "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}},
                            }
                        ]
                    },
                },
            },
        },
        {
            "apiVersion": "policy.karmada.io/v1alpha1",
            "kind": "PropagationPolicy",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {
                "resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}],
                "placement": {"clusterAffinity": {"clusterNames": clusters}},
            },
        },
    ]
    fleet.karmada_kubectl(
        "apply", "-f", "-", input_text=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
    )


def running_pods(fleet: Fleet, cluster: str, namespace: str) -> int:
    pods = json.loads(
        fleet.member_kubectl(cluster, "get", "pods", "-n", namespace, "-l", "app=web", "-o", "json")
    )
    return sum(
        1
        for p in pods["items"]
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    )


def where(fleet: Fleet, namespace: str) -> dict[str, int]:
    return {cluster: running_pods(fleet, cluster, namespace) for cluster in fleet.regions}


def only_in(fleet: Fleet, namespace: str, cluster: str) -> bool:
    """Karmada schedules the Deployment to ``cluster`` alone, and its replicas run there alone (the
    binding first: while Karmada propagates, one member's pods can be Running before the others')."""
    found = fleet.karmada_kubectl(
        "get", "resourcebinding", "web-deployment", "-n", namespace, "--ignore-not-found", "-o", "json"
    )
    if not found.strip() or json.loads(found)["spec"].get("clusters") != [
        {"name": cluster, "replicas": REPLICAS}
    ]:
        return False
    counts = where(fleet, namespace)
    return counts[cluster] == REPLICAS and all(n == 0 for c, n in counts.items() if c != cluster)


def policy(fleet: Fleet, namespace: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(
        fleet.karmada_kubectl("get", "propagationpolicy", "web", "-n", namespace, "-o", "json")
    )
    return found


@dataclass
class AvailabilitySampler:
    """Available replicas of the Deployment summed over the members, sampled from the members'
    API servers in a thread (a member without the Deployment, or that does not answer, counts 0)."""

    fleet: Fleet
    namespace: str
    every_seconds: float = 0.2
    samples: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._apis = {}
        for cluster, path in self.fleet.member_kubeconfigs.items():
            configuration = kubernetes.client.Configuration()
            kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(path), client_configuration=configuration
            )
            self._apis[cluster] = kubernetes.client.AppsV1Api(kubernetes.client.ApiClient(configuration))
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _available(self, api: kubernetes.client.AppsV1Api) -> int:
        try:
            deployment = api.read_namespaced_deployment_status("web", self.namespace, _request_timeout=2)
        except (kubernetes.client.ApiException, urllib3.exceptions.HTTPError):
            return 0  # no copy there, or the member is down: nothing a user can reach
        status = deployment.status
        return int(status.available_replicas or 0) if status is not None else 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(sum(self._available(api) for api in self._apis.values()))
            self._stop.wait(self.every_seconds)

    def __enter__(self) -> AvailabilitySampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def test_a_workload_lands_in_the_greenest_member_and_follows_the_grid_staying_available(
    fleet: Fleet, fleet_mode: FleetMode
) -> None:
    namespace = "fleet-follow"
    apply_workload(fleet, namespace, clusters=sorted(fleet.regions))
    north, west = fleet.cluster_in("eu-north-1"), fleet.cluster_in("eu-west-1")
    fleet.wait_for(
        f"{REPLICAS} pods of {namespace}/web in {north} only",
        lambda: only_in(fleet, namespace, north),
        timeout_seconds=300,
    )
    decided = json.loads(policy(fleet, namespace)["metadata"]["annotations"]["ecopulse.io/decision"])
    assert decided["clusters"][0] == north  # fleet mode ranked it first, and put it there

    with AvailabilitySampler(fleet, namespace) as sampler:
        fleet.set_mock_grid(GREEN_WEST)
        fleet.wait_for(
            f"{REPLICAS} pods of {namespace}/web in {west} only",
            lambda: only_in(fleet, namespace, west),
            timeout_seconds=300,
        )
        time.sleep(2)  # a few samples after the old copy went
    assert len(sampler.samples) > 10, sampler.samples
    assert min(sampler.samples) >= REPLICAS - MAX_UNAVAILABLE, sampler.samples
    binding = json.loads(
        fleet.karmada_kubectl("get", "resourcebinding", "web-deployment", "-n", namespace, "-o", "json")
    )
    assert binding["spec"]["clusters"] == [{"name": west, "replicas": REPLICAS}]
    # Issue 29: `make fleet-demo`'s table says where the pods run now, the grid there in units, and
    # fleet mode's latest decision (its Event on the policy), not the first placement.
    (row,) = [line for line in placement_table(fleet, namespace).splitlines() if f" {west} " in line]
    assert "20 gCO2/kWh" in row and f" {REPLICAS} " in row, row
    assert " Fleet" in row and '{"' not in row, row  # an Event of fleet mode's, not the raw annotation


def test_an_egress_heavy_workload_with_its_data_where_it_runs_stays(
    fleet: Fleet, fleet_mode: FleetMode
) -> None:
    namespace = "fleet-egress"
    east = fleet.cluster_in("us-east-1")
    apply_workload(
        fleet,
        namespace,
        clusters=[east],
        template_annotations={"ecopulse.io/data-region": "us-east-1", "ecopulse.io/egress-gb-per-hour": "50"},
    )
    fleet.wait_for(f"{namespace}/web in {east}", lambda: only_in(fleet, namespace, east), timeout_seconds=300)

    def decided() -> str | None:
        annotations = policy(fleet, namespace)["metadata"].get("annotations") or {}
        raw = annotations.get("ecopulse.io/decision")
        return json.loads(raw)["decision"] if raw else None

    fleet.wait_for("fleet mode's decision on the policy", lambda: decided() is not None, timeout_seconds=120)
    assert decided() == "keep"
    fleet_mode.wait_passes(3)
    assert only_in(fleet, namespace, east)


def test_an_opted_out_namespace_is_never_touched(fleet: Fleet, fleet_mode: FleetMode) -> None:
    namespace = "fleet-private"
    east = fleet.cluster_in("us-east-1")
    apply_workload(fleet, namespace, clusters=[east], namespace_labels={"ecopulse.io/opt-out": "true"})
    fleet.wait_for(f"{namespace}/web in {east}", lambda: only_in(fleet, namespace, east), timeout_seconds=300)
    before = policy(fleet, namespace)
    fleet_mode.wait_passes(4)
    after = policy(fleet, namespace)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert not any(k.startswith("ecopulse.io/") for k in (after["metadata"].get("annotations") or {}))
    assert only_in(fleet, namespace, east)


def test_dry_run_changes_nothing_and_reports_what_it_would_do(fleet: Fleet, fleet_mode: FleetMode) -> None:
    set_fleet_settings(fleet, {**LIVE, "dryRun": True})
    try:
        leader = fleet_mode.leader()
        assert leader is not None
        fleet_mode.wait_passes(2)  # the reload is in before what follows
        namespace = "fleet-dry"
        east = fleet.cluster_in("us-east-1")
        apply_workload(fleet, namespace, clusters=[east])
        fleet.wait_for(
            f"{namespace}/web in {east}", lambda: only_in(fleet, namespace, east), timeout_seconds=300
        )
        before = policy(fleet, namespace)
        port = fleet_mode.ports[leader]
        reported = total(scrape(port), "ecopulse_fleet_writes_total", result="dry-run", namespace=namespace)
        fleet.wait_for(
            "the dry run's report of the move",
            lambda: (
                total(scrape(port), "ecopulse_fleet_writes_total", result="dry-run", namespace=namespace)
                > reported
            ),
            timeout_seconds=120,
        )
        assert total(scrape(port), "ecopulse_fleet_pending_changes") >= 1
        assert (
            policy(fleet, namespace)["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
        )
        assert only_in(fleet, namespace, east)
        log = (fleet.karmada.logs / f"{leader}.log").read_text()
        assert "fleet decision (dry run: not changed)" in log
    finally:
        set_fleet_settings(fleet, LIVE)


def test_of_two_replicas_only_the_leader_acts(fleet: Fleet, fleet_mode: FleetMode) -> None:
    leader = fleet_mode.leader()
    assert leader is not None
    (follower,) = [name for name in NAMES if name != leader]
    follower_samples = scrape(fleet_mode.ports[follower])
    assert total(follower_samples, "ecopulse_fleet_writes_total") == 0
    assert total(follower_samples, "ecopulse_fleet_passes_total", outcome="completed") == 0
    assert total(follower_samples, "ecopulse_fleet_passes_total", outcome="not-leader") > 0
    assert total(scrape(fleet_mode.ports[leader]), "ecopulse_fleet_writes_total", result="written") > 0
    events = json.loads(fleet.karmada_kubectl("get", "events.events.k8s.io", "-A", "-o", "json"))["items"]
    ours = [e for e in events if e.get("reportingController") == "ecopulse.io/fleet"]
    assert ours and {e["reportingInstance"] for e in ours} == {leader}


def test_with_fleet_mode_hung_karmada_keeps_the_last_placement_and_places_new_workloads(
    fleet: Fleet, fleet_mode: FleetMode
) -> None:
    west, north = fleet.cluster_in("eu-west-1"), fleet.cluster_in("eu-north-1")
    for name in NAMES:
        fleet.pause(name)  # hung: its port accepts, nothing answers, nothing is written
    fleet.set_mock_grid(GREEN_NORTH)  # would move fleet-follow back, were fleet mode alive
    namespace = "fleet-without-us"
    apply_workload(fleet, namespace, clusters=[north])
    fleet.wait_for(
        f"{namespace}/web in {north}", lambda: only_in(fleet, namespace, north), timeout_seconds=300
    )
    assert "annotations" not in policy(fleet, namespace)["metadata"] or not any(
        k.startswith("ecopulse.io/") for k in policy(fleet, namespace)["metadata"]["annotations"]
    )
    assert only_in(fleet, "fleet-follow", west)  # the last placement fleet mode wrote holds
