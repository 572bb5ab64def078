"""Fleet mode under faults, on the real local Karmada fleet (issue 25): each drill starts a move of a
Deployment (4 replicas, maxUnavailable 1) from one member to another and hits it with one fault
while the move is under way.

A sampler reads the available replicas of every member's copy once a second (a member that does
not answer counts 0: nobody can reach it). What must hold: never fewer than replicas -
maxUnavailable available, and once the drill settles no member runs a copy that no placement asks
for. Each drill leaves the fleet as it found it (whatever it stopped runs again), so the drills
share one fleet; each prints its minimum sampled availability and how long it took to settle.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from fleet.records import AVAILABLE_SINCE_ANNOTATION, MOVED_AT_ANNOTATION, MOVING_TO_ANNOTATION
from tests.e2e.cluster import REPO, ClusterError, free_port
from tests.e2e.fleet import Fleet, start_fleet_mode
from tests.e2e.test_fleet_mode_e2e import (
    GREEN_NORTH,
    LIVE,
    MAX_UNAVAILABLE,
    REPLICAS,
    AvailabilitySampler,
    FleetMode,
    apply_workload,
    only_in,
    policy,
    running_fleet_mode,
    scrape,
    total,
)

pytestmark = pytest.mark.timeout(900)

NAMES = ("fleet-drill-a", "fleet-drill-b")
IDENTITY = "fleet-drill-identity"  # drill 5's replica, as manifests/fleet/karmada-rbac.yaml's account
RBAC = REPO / "manifests" / "fleet" / "karmada-rbac.yaml"
GREEN_WEST_FIRST = {"us-east-1": 450.0, "eu-west-1": 100.0, "eu-north-1": 300.0}
# A cooldown longer than any drill: after its move (or its rollback) a workload stays put, so the
# drill ends in one settled placement and no second move of the same workload is ever started.
DRILL = {**LIVE, "cooldownSeconds": 3600, "moveTimeoutSeconds": 240}
SETTLE_TIMEOUT_SECONDS = 300


@pytest.fixture(scope="module")
def drill_mode(fleet: Fleet) -> Iterator[FleetMode]:
    with running_fleet_mode(fleet, names=NAMES, settings=DRILL, grid=GREEN_WEST_FIRST) as mode:
        yield mode


@dataclass
class Drill:
    """One drill's namespace, its figures and the checks every drill makes."""

    fleet: Fleet
    name: str
    namespace: str
    sampler: AvailabilitySampler | None = None
    fault_at: float = 0.0

    def start_in_west(self) -> None:
        """The workload in west, the greenest while the drill starts: fleet mode keeps it there.
        (The user's policy names west alone: a policy naming every member would run a copy in each
        before fleet mode's first pass, and collapsing them is a move whose cooldown holds the drill.)"""
        self.fleet.set_mock_grid(GREEN_WEST_FIRST)
        west = self.fleet.cluster_in("eu-west-1")
        apply_workload(self.fleet, self.namespace, clusters=[west])
        self.fleet.wait_for(
            f"{self.namespace}/web in {west} only",
            lambda: only_in(self.fleet, self.namespace, west),
            timeout_seconds=300,
        )

    def start_move_north(self) -> str:
        """Flip the grid: fleet mode writes the first step of a move to north. Returns its moved-at."""
        self.sampler = AvailabilitySampler(self.fleet, self.namespace, every_seconds=1.0).__enter__()
        self.fleet.set_mock_grid(GREEN_NORTH)
        north = self.fleet.cluster_in("eu-north-1")
        self.fleet.wait_for(
            "the move's first step",
            lambda: self.annotation(MOVING_TO_ANNOTATION) == north,
            timeout_seconds=120,
        )
        moved_at = self.annotation(MOVED_AT_ANNOTATION)
        assert moved_at is not None
        return moved_at

    def annotation(self, key: str) -> str | None:
        found: str | None = (policy(self.fleet, self.namespace)["metadata"].get("annotations") or {}).get(key)
        return found

    def binding(self) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(
            self.fleet.karmada_kubectl(
                "get", "resourcebinding", "web-deployment", "-n", self.namespace, "-o", "json"
            )
        )
        return found

    def available_in_karmada(self, cluster: str) -> int:
        """What Karmada last collected of the member's copy (the status fleet mode reads)."""
        for item in self.binding().get("status", {}).get("aggregatedStatus", []):
            if item.get("clusterName") == cluster:
                return int((item.get("status") or {}).get("availableReplicas", 0))
        return 0

    def copies(self) -> dict[str, int]:
        """Member -> available replicas of its copy, for the members that have one."""
        found = {}
        for cluster in self.fleet.regions:
            raw = self.fleet.member_kubectl(
                cluster, "get", "deployment", "web", "-n", self.namespace, "--ignore-not-found", "-o", "json"
            )
            if raw.strip():
                found[cluster] = int(json.loads(raw).get("status", {}).get("availableReplicas", 0))
        return found

    def settled(self) -> bool:
        """No move under way, and the members run exactly the copies the binding asks for, available."""
        if self.annotation(MOVING_TO_ANNOTATION) is not None:
            return False
        try:
            copies = self.copies()
        except ClusterError:
            return False  # a member is not answering yet
        wanted = {t["name"] for t in self.binding()["spec"].get("clusters", []) if t.get("replicas")}
        return set(copies) == wanted and sum(copies.values()) >= REPLICAS

    def finish(self) -> tuple[int, float]:
        """Wait until settled; stop sampling; print and return (minimum availability, seconds to settle)."""
        self.fleet.wait_for(f"{self.namespace} settled", self.settled, timeout_seconds=SETTLE_TIMEOUT_SECONDS)
        settle_seconds = time.monotonic() - self.fault_at
        sampler = self.sampler
        assert sampler is not None
        settled = len(sampler.samples)
        self.fleet.wait_for(  # a few samples of the settled state, and ten at least
            "samples of the settled state",
            lambda: len(sampler.samples) >= max(settled + 2, 10),
            timeout_seconds=30,
        )
        sampler.__exit__()
        samples = sampler.samples
        least = min(samples)
        print(
            f"\ndrill {self.name}: minimum sampled availability {least}/{REPLICAS} "
            f"({len(samples)} samples), settled {settle_seconds:.0f} s after the fault"
        )
        return least, settle_seconds

    def remove(self) -> None:
        self.fleet.karmada_kubectl("delete", "namespace", self.namespace, "--wait=false")


@pytest.fixture
def drill(fleet: Fleet, drill_mode: FleetMode, request: pytest.FixtureRequest) -> Iterator[Drill]:
    number = request.node.name.split("_")[2]
    one = Drill(fleet=fleet, name=number, namespace=f"drill-{number}")
    try:
        yield one
    finally:
        if one.sampler is not None:
            one.sampler.__exit__()
        one.remove()


def relists(port: int) -> float:
    """Full lists fleet mode's watch caches made (the first, and after the server lost our version)."""
    return total(scrape(port), "ecopulse_watch_relists_total")


def stranded_moves(mode: FleetMode) -> float:
    """Moves out of a NotReady member the replicas decided (a replica that does not answer: 0)."""
    found = 0.0
    for port in mode.ports.values():
        try:
            found += total(
                scrape(port), "ecopulse_fleet_decisions_total", outcome="move", reason="member-not-ready"
            )
        except OSError:
            continue
    return found


def refused_as_stale(mode: FleetMode) -> float:
    """Policy patches the replicas wrote on an outdated resourceVersion (409; a replica that does not
    answer: 0): a decision made from a record the server had already replaced."""
    found = 0.0
    for port in mode.ports.values():
        try:
            found += total(scrape(port), "ecopulse_fleet_writes_total", kind="policy", result="conflict")
        except OSError:
            continue
    return found


def leader_of(mode: FleetMode) -> str | None:
    """The replica whose leader gauge is 1 (a replica that does not answer is not leading)."""
    for name, port in mode.ports.items():
        try:
            if total(scrape(port), "ecopulse_fleet_leader") == 1:
                return name
        except OSError:
            continue
    return None


# --- drill 3 first: the defect (a target member fails mid-move) -------------------------------------


def test_drill_3_the_target_member_fails_mid_move_and_the_old_copy_keeps_serving(
    fleet: Fleet, drill: Drill
) -> None:
    west, north = fleet.cluster_in("eu-west-1"), fleet.cluster_in("eu-north-1")
    drill.start_in_west()
    drill.start_move_north()
    # North's copy comes up and Karmada collects its status ("all available"); then north freezes.
    fleet.wait_for(
        "north's copy available in Karmada's view",
        lambda: drill.available_in_karmada(north) >= REPLICAS,
        timeout_seconds=120,
    )
    drill.fault_at = time.monotonic()  # the stop itself takes seconds (a graceful shutdown)
    fleet.stop_apiserver(north)
    try:
        # Never settled on north's last word: Karmada marks north NotReady and the move goes back
        # to west, where the old copy never stopped serving.
        fleet.wait_for(
            "north NotReady in Karmada", lambda: not fleet.member_ready(north), timeout_seconds=120
        )
        fleet.wait_for(
            "the move rolled back to west",
            lambda: (
                drill.annotation(MOVING_TO_ANNOTATION) is None
                and [t["name"] for t in drill.binding()["spec"]["clusters"]] == [west]
            ),
            timeout_seconds=120,
        )
        decided = json.loads(drill.annotation("ecopulse.io/decision") or "{}")
        assert decided.get("reason") == "member-not-ready", decided
    finally:
        fleet.start_apiserver(north)
    fleet.wait_for("north Ready again", lambda: fleet.member_ready(north), timeout_seconds=120)
    least, _ = drill.finish()  # Karmada removes north's copy once it can reach it
    assert least >= REPLICAS - MAX_UNAVAILABLE
    assert set(drill.copies()) == {west}


def test_drill_3b_replicas_in_a_failed_member_move_to_the_best_ready_member(
    fleet: Fleet, drill: Drill, drill_mode: FleetMode
) -> None:
    """Availability before carbon: the dead member is the greenest, and the replicas leave it."""
    west, north = fleet.cluster_in("eu-west-1"), fleet.cluster_in("eu-north-1")
    drill.start_in_west()
    drill.start_move_north()
    fleet.wait_for(
        f"{drill.namespace}/web in {north} only",
        lambda: only_in(fleet, drill.namespace, north),
        timeout_seconds=300,
    )
    stranded_before = stranded_moves(drill_mode)
    drill.fault_at = time.monotonic()  # the stop itself takes seconds (a graceful shutdown)
    fleet.stop_apiserver(north)
    try:
        fleet.wait_for(
            "north NotReady in Karmada", lambda: not fleet.member_ready(north), timeout_seconds=120
        )
        fleet.wait_for(
            "the replicas available in west",
            lambda: (
                fleet.member_kubectl(
                    west,
                    "get",
                    "deployment",
                    "web",
                    "-n",
                    drill.namespace,
                    "--ignore-not-found",
                    "-o",
                    "jsonpath={.status.availableReplicas}",
                ).strip()
                == str(REPLICAS)
            ),
            timeout_seconds=180,
        )
        recovered = time.monotonic() - drill.fault_at
        assert stranded_moves(drill_mode) > stranded_before  # moved out whatever the net benefit
    finally:
        fleet.start_apiserver(north)
    fleet.wait_for("north Ready again", lambda: fleet.member_ready(north), timeout_seconds=120)
    drill.finish()
    print(f"drill 3b: the replicas were available again in {west} {recovered:.0f} s after north failed")
    # North's copy died with north: availability is lost until the new copy is up, never after.
    assert [t["name"] for t in drill.binding()["spec"]["clusters"]] == [west]
    assert set(drill.copies()) == {west}


# --- drills 1, 2, 4, 5 ------------------------------------------------------------------------------


def test_drill_1_the_leader_killed_between_the_steps_is_replaced_and_the_same_move_settles(
    fleet: Fleet, drill: Drill, drill_mode: FleetMode
) -> None:
    north = fleet.cluster_in("eu-north-1")
    drill.start_in_west()
    leader = leader_of(drill_mode)
    assert leader is not None
    moved_at = drill.start_move_north()
    fleet.kill(leader)  # SIGKILL right after step 1: no Lease release, no cleanup
    drill.fault_at = time.monotonic()
    try:
        (standby,) = [name for name in NAMES if name != leader]
        fleet.wait_for("the standby leads", lambda: leader_of(drill_mode) == standby, timeout_seconds=120)
        took_over = time.monotonic() - drill.fault_at
        least, _ = drill.finish()
    finally:
        start_fleet_mode(fleet, leader, metrics_port=drill_mode.ports[leader])
    assert took_over >= 15 - 2 - 1, took_over  # only after the Lease (15 s) lapsed
    assert least >= REPLICAS - MAX_UNAVAILABLE
    assert only_in(fleet, drill.namespace, north)
    # The move the killed leader started is the one that settled: never a second one.
    assert drill.annotation(MOVED_AT_ANNOTATION) == moved_at


def test_drill_2_the_karmada_api_server_restarts_mid_move_and_the_move_completes(
    fleet: Fleet, drill: Drill, drill_mode: FleetMode
) -> None:
    north = fleet.cluster_in("eu-north-1")
    drill.start_in_west()
    drill.start_move_north()
    before = {name: relists(port) for name, port in drill_mode.ports.items()}
    stale_before = refused_as_stale(drill_mode)
    drill.fault_at = time.monotonic()  # the stop itself takes seconds (a graceful shutdown)
    fleet.stop_apiserver()
    try:
        time.sleep(5)
    finally:
        fleet.start_apiserver()
    fleet.wait_for(
        "fleet mode's watches re-list",
        lambda: any(relists(port) > before[name] for name, port in drill_mode.ports.items()),
        timeout_seconds=120,
    )
    least, _ = drill.finish()
    assert least >= REPLICAS - MAX_UNAVAILABLE
    assert only_in(fleet, drill.namespace, north)
    # Nothing decided from the records of before the gap: no write refused as outdated (the caches
    # are out of step from the 410 until the re-list, and no pass plans from them meanwhile).
    assert refused_as_stale(drill_mode) == stale_before


def test_drill_4_a_user_edits_the_policy_mid_move_and_the_edit_stands(fleet: Fleet, drill: Drill) -> None:
    west = fleet.cluster_in("eu-west-1")
    drill.start_in_west()
    drill.start_move_north()
    mine = [{"affinityName": "pinned", "clusterNames": [west]}]
    fleet.karmada_kubectl(
        "patch",
        "propagationpolicy",
        "web",
        "-n",
        drill.namespace,
        "--type",
        "merge",
        "-p",
        json.dumps({"spec": {"placement": {"clusterAffinities": mine}}}),
    )
    drill.fault_at = time.monotonic()
    least, _ = drill.finish()
    after = policy(fleet, drill.namespace)
    assert after["spec"]["placement"]["clusterAffinities"] == mine  # never overwritten
    annotations = after["metadata"].get("annotations") or {}
    assert MOVING_TO_ANNOTATION not in annotations and AVAILABLE_SINCE_ANNOTATION not in annotations
    assert least >= REPLICAS - MAX_UNAVAILABLE
    assert only_in(fleet, drill.namespace, west)


def test_drill_5_fleet_mode_loses_a_permission_and_the_fleet_keeps_working_without_it(
    fleet: Fleet, drill: Drill, drill_mode: FleetMode
) -> None:
    """Run as its own identity (manifests/fleet/karmada-rbac.yaml), whose ClusterRole loses `patch`
    on policies mid-drill: each pass counts the Forbidden, the last placement stays, and Karmada
    places a new workload by its own policy as if fleet mode did not exist."""
    west, east = fleet.cluster_in("eu-west-1"), fleet.cluster_in("us-east-1")
    fleet.karmada_kubectl("apply", "-f", str(RBAC))
    kubeconfig = fleet.token_kubeconfig("eco-pulse-fleet", "eco-pulse")
    for name in NAMES:
        fleet.stop(name)  # they release the Lease: the restricted replica leads at once
    port = free_port()
    try:
        start_fleet_mode(fleet, IDENTITY, metrics_port=port, kubeconfig=kubeconfig)
        restricted = FleetMode(fleet=fleet, ports={IDENTITY: port})
        fleet.wait_for(
            "the restricted replica leads", lambda: leader_of(restricted) == IDENTITY, timeout_seconds=120
        )
        drill.start_in_west()  # placed by the restricted identity: its permissions suffice
        rules = json.loads(fleet.karmada_kubectl("get", "clusterrole", "eco-pulse-fleet", "-o", "json"))[
            "rules"
        ]
        (index,) = [i for i, rule in enumerate(rules) if "propagationpolicies" in rule["resources"]]
        fleet.karmada_kubectl(
            "patch",
            "clusterrole",
            "eco-pulse-fleet",
            "--type",
            "json",
            "-p",
            json.dumps([{"op": "replace", "path": f"/rules/{index}/verbs", "value": ["list", "watch"]}]),
        )
        drill.fault_at = time.monotonic()
        before = policy(fleet, drill.namespace)
        forbidden = total(scrape(port), "ecopulse_fleet_writes_total", result="forbidden")
        passes_before = scrape(port)
        drill.sampler = AvailabilitySampler(fleet, drill.namespace, every_seconds=1.0).__enter__()
        fleet.set_mock_grid(GREEN_NORTH)  # a move that pays, and may not be written
        fleet.wait_for(
            "a Forbidden write counted",
            lambda: total(scrape(port), "ecopulse_fleet_writes_total", result="forbidden") > forbidden,
            timeout_seconds=120,
        )
        # Karmada keeps working without us: a new workload lands where its own policy says.
        other = Drill(fleet=fleet, name="5-other", namespace="drill-5-other")
        try:
            apply_workload(fleet, other.namespace, clusters=[east])
            fleet.wait_for(
                f"{other.namespace}/web in {east}",
                lambda: only_in(fleet, other.namespace, east),
                timeout_seconds=300,
            )
        finally:
            other.remove()
        after = policy(fleet, drill.namespace)
        assert after["spec"] == before["spec"]  # the last placement stands
        assert only_in(fleet, drill.namespace, west)
        log = (fleet.karmada.logs / f"{IDENTITY}.log").read_text()
        assert '"msg":"policy patch forbidden"' in log
        least, _ = drill.finish()
        # A Forbidden is an answer, not a crash: every pass since completed, and passes went on.
        passes = scrape(port)
        completed, failed = (
            total(passes, "ecopulse_fleet_passes_total", outcome=outcome)
            - total(passes_before, "ecopulse_fleet_passes_total", outcome=outcome)
            for outcome in ("completed", "error")
        )
    finally:
        fleet.karmada_kubectl("apply", "-f", str(RBAC))  # the permission back
        fleet.stop(IDENTITY)
        for name in NAMES:
            start_fleet_mode(fleet, name, metrics_port=drill_mode.ports[name])
    assert least >= REPLICAS - MAX_UNAVAILABLE
    fleet.wait_for(
        "one fleet-mode leader again", lambda: leader_of(drill_mode) is not None, timeout_seconds=120
    )
    assert failed == 0, f"{failed:g} passes failed after the Forbidden"
    assert completed > 0
