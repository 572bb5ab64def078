"""One fleet pass with a writer that answers as the Karmada API server would: what is written, in
dry run and live, by the leader only, and never for an opted-out policy."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import REGISTRY

from core.kube.caches import NamespaceInfo
from core.model import DECISION_ANNOTATION
from fleet.cycle import FleetAccountant, PassInputs, run_pass
from fleet.karmada import WriteOutcome, WriteResult, policy_patch_body, rebalancer_body
from fleet.planner import FleetSnapshot
from fleet.records import (
    AVAILABLE_SINCE_ANNOTATION,
    MOVED_AT_ANNOTATION,
    MOVING_TO_ANNOTATION,
    SAVED_SCHEDULING_ANNOTATION,
    PolicyRecord,
    slim_policy,
)
from tests.unit.test_fleet_planner import (
    NOW,
    binding,
    cluster,
    config,
    deployment,
    expanded,
    policy,
    signals,
    snapshot,
)


@dataclass
class FakeWriter:
    """Records each write; answers with ``outcome`` (written, or a dry run when asked for one)."""

    outcome: WriteOutcome = WriteOutcome.WRITTEN
    patches: list[tuple[str, dict[str, Any] | None, dict[str, str | None], bool]] = field(
        default_factory=list
    )
    rebalancers: list[tuple[str, tuple[str, ...], bool]] = field(default_factory=list)
    events: list[tuple[str, str]] = field(default_factory=list)
    on_write: Any = None

    def _answer(self, dry_run: bool) -> WriteResult:
        if self.on_write is not None:
            self.on_write()
        if dry_run and self.outcome is WriteOutcome.WRITTEN:
            return WriteResult(outcome=WriteOutcome.DRY_RUN, status=200)
        return WriteResult(outcome=self.outcome, status=200 if self.outcome is WriteOutcome.WRITTEN else 409)

    def write_policy(
        self, policy: PolicyRecord, *, placement: Any, annotations: dict[str, str | None], dry_run: bool
    ) -> WriteResult:
        self.patches.append((policy.key, placement, dict(annotations), dry_run))
        return self._answer(dry_run)

    def request_fresh_schedule(
        self, policy: PolicyRecord, workloads: tuple[str, ...], *, dry_run: bool
    ) -> WriteResult:
        self.rebalancers.append((policy.key, workloads, dry_run))
        return self._answer(dry_run)

    def post_event(
        self, policy: PolicyRecord, *, reason: str, message: str, event_type: str = "Normal"
    ) -> bool:
        self.events.append((policy.key, reason))
        return True


def inputs(
    fleet: FleetSnapshot,
    writer: FakeWriter,
    *,
    live: bool,
    leader: Any = lambda: True,
    now: datetime = NOW,
) -> PassInputs:
    cfg = config()
    if live:
        cfg = replace(cfg, fleet=replace(cfg.fleet, dry_run=False))
    return PassInputs(
        config=lambda: cfg,
        signals=signals,
        snapshot=lambda: fleet,
        synced=lambda: True,
        is_leader=leader,
        api=writer,
        clock=lambda: now,
        accountant=FleetAccountant(monotonic=lambda: 0.0),
    )


def moving_fleet(**namespaces: NamespaceInfo) -> FleetSnapshot:
    return snapshot(
        policies=[policy("web", selects="web"), policy("quiet", selects="quiet", namespace="private")],
        deployments=[deployment("web"), deployment("quiet", namespace="private")],
        bindings=[
            binding("web", {"member-us-east-1": 3}),
            binding("quiet", {"member-us-east-1": 3}, namespace="private"),
        ],
        namespaces={"private": NamespaceInfo(opted_out=True), **namespaces},
    )


def test_live_a_move_is_made_in_two_steps_old_copies_serving_until_the_new_are_available() -> None:
    writer = FakeWriter()
    report = run_pass(inputs(moving_fleet(), writer, live=True))
    assert report.outcome == "completed"
    assert [key for key, *_ in writer.patches] == ["shop/web"]  # the opted-out namespace: nothing
    _, placement, annotations, dry_run = writer.patches[0]
    assert not dry_run
    # Step 1: the new cluster first, the old one kept, every cluster of the term runs all replicas.
    assert placement is not None
    assert placement["clusterAffinities"][0]["clusterNames"] == ["member-eu-north-1", "member-us-east-1"]
    assert placement["replicaScheduling"]["replicaSchedulingType"] == "Duplicated"
    assert placement["clusterAffinity"] is None
    assert json.loads(annotations[DECISION_ANNOTATION] or "")["decision"] == "move"
    assert annotations[MOVED_AT_ANNOTATION] == NOW.isoformat()
    assert annotations[MOVING_TO_ANNOTATION] == "member-eu-north-1"
    assert annotations[SAVED_SCHEDULING_ANNOTATION] == ""  # the policy had no replicaScheduling
    assert writer.events == [("shop/web", "FleetMoved")]

    # Not all replicas available there yet: wait, write nothing.
    raw = policy("web", selects="web", annotations={k: v for k, v in annotations.items() if v is not None})
    raw["spec"]["placement"] = placement
    halfway = binding("web", {"member-eu-north-1": 3, "member-us-east-1": 3})
    halfway["status"] = {
        "aggregatedStatus": [{"clusterName": "member-eu-north-1", "status": {"availableReplicas": 2}}]
    }
    fleet = snapshot(policies=[raw], deployments=[deployment("web")], bindings=[halfway])
    run_pass(inputs(fleet, writer, live=True))
    assert len(writer.patches) == 2  # only the decision annotation changed (move -> keep)
    assert writer.patches[1][1] is None

    # All available in the new cluster: the stability window opens, recorded on the policy.
    halfway["status"]["aggregatedStatus"][0]["status"]["availableReplicas"] = 3
    fleet = snapshot(policies=[raw], deployments=[deployment("web")], bindings=[halfway])
    run_pass(inputs(fleet, writer, live=True))
    _, nothing_placed, opened, _ = writer.patches[-1]
    assert nothing_placed is None and opened[AVAILABLE_SINCE_ANNOTATION] == NOW.isoformat()

    # Still available, the member Ready throughout, the window over: step 2, the final placement;
    # the old copy goes.
    raw["metadata"]["annotations"][AVAILABLE_SINCE_ANNOTATION] = NOW.isoformat()
    fleet = snapshot(policies=[raw], deployments=[deployment("web")], bindings=[halfway])
    run_pass(inputs(fleet, writer, live=True, now=NOW + timedelta(seconds=59)))
    assert writer.patches[-1][1] is None  # within the window: nothing placed
    run_pass(inputs(fleet, writer, live=True, now=NOW + timedelta(seconds=60)))
    _, final, settled, _ = writer.patches[-1]
    assert final is not None
    assert [t["clusterNames"] for t in final["clusterAffinities"]] == [
        ["member-eu-north-1"],
        ["member-eu-west-1"],
        ["member-us-east-1"],
    ]
    assert final["replicaScheduling"] is None  # the policy's own (none) is back
    assert settled[MOVING_TO_ANNOTATION] is None and settled[SAVED_SCHEDULING_ANNOTATION] is None
    assert settled[AVAILABLE_SINCE_ANNOTATION] is None


def test_dry_run_sends_only_server_side_dry_runs_and_reports_the_change() -> None:
    writer = FakeWriter()
    before = (
        REGISTRY.get_sample_value(
            "ecopulse_fleet_writes_total", {"kind": "policy", "result": "dry-run", "namespace": "shop"}
        )
        or 0.0
    )
    report = run_pass(inputs(moving_fleet(), writer, live=False))
    assert report.changes == 1
    assert all(dry_run for *_, dry_run in writer.patches)
    assert writer.events == []  # nothing was changed, so nothing to tell
    after = REGISTRY.get_sample_value(
        "ecopulse_fleet_writes_total", {"kind": "policy", "result": "dry-run", "namespace": "shop"}
    )
    assert after == before + 1
    assert REGISTRY.get_sample_value("ecopulse_fleet_pending_changes") == 1


def test_only_the_leader_writes() -> None:
    writer = FakeWriter()
    report = run_pass(inputs(moving_fleet(), writer, live=True, leader=lambda: False))
    assert report.outcome == "not-leader"
    assert (writer.patches, writer.rebalancers, writer.events) == ([], [], [])


def test_leadership_lost_mid_pass_stops_the_writes() -> None:
    fleet = snapshot(
        policies=[policy("a", selects="a"), policy("b", selects="b")],
        deployments=[deployment("a"), deployment("b")],
        bindings=[binding("a", {"member-us-east-1": 3}), binding("b", {"member-us-east-1": 3})],
    )
    leading = [True]
    writer = FakeWriter(on_write=lambda: leading.__setitem__(0, False))
    report = run_pass(inputs(fleet, writer, live=True, leader=lambda: leading[0]))
    assert report.outcome == "leadership-lost"
    assert len(writer.patches) == 1


def test_an_unchanged_refusal_is_not_written_again() -> None:
    tiny = deployment("tiny", replicas=1, cpu="10m", memory="16Mi")
    first = snapshot(
        policies=[policy("tiny", selects="tiny")],
        deployments=[tiny],
        bindings=[binding("tiny", {"member-us-east-1": 1})],
    )
    writer = FakeWriter()
    run_pass(inputs(first, writer, live=True))
    assert len(writer.patches) == 1
    _, placement, annotations, _ = writer.patches[0]
    assert placement is None  # a refusal never touches the placement
    raw = policy("tiny", selects="tiny", annotations={k: v for k, v in annotations.items() if v is not None})
    again = snapshot(policies=[raw], deployments=[tiny], bindings=[binding("tiny", {"member-us-east-1": 1})])
    run_pass(inputs(again, writer, live=True))
    assert len(writer.patches) == 1


def test_a_stuck_placement_gets_a_workload_rebalancer() -> None:
    ours = {
        "clusterAffinities": [
            {"affinityName": "ecopulse-0", "clusterNames": ["member-eu-north-1"]},
            {"affinityName": "ecopulse-1", "clusterNames": ["member-eu-west-1"]},
            {"affinityName": "ecopulse-2", "clusterNames": ["member-us-east-1"]},
        ]
    }
    fleet = snapshot(
        policies=[policy("web", selects="web", placement=ours)],
        deployments=[deployment("web")],
        bindings=[binding("web", {"member-us-east-1": 3})],
    )
    writer = FakeWriter()
    run_pass(inputs(fleet, writer, live=True))
    assert writer.rebalancers == [("shop/web", ("shop/web",), False)]
    assert writer.patches == []


def test_an_unknown_outcome_still_uses_up_the_move() -> None:
    writer = FakeWriter(outcome=WriteOutcome.ERROR)
    report = run_pass(inputs(moving_fleet(), writer, live=True))
    assert report.writes == {"error": 1}
    assert writer.events == []


def test_the_bodies_on_the_wire() -> None:
    record = slim_policy(policy("web", selects="web"))
    assert record is not None
    body = policy_patch_body(record, placement={"clusterAffinities": []}, annotations={"a": "b"})
    assert body == {
        "metadata": {"resourceVersion": "7", "annotations": {"a": "b"}},
        "spec": {"placement": {"clusterAffinities": []}},
    }
    rebalancer = rebalancer_body(record, ("shop/web",))
    assert rebalancer["spec"] == {
        "workloads": [{"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "shop", "name": "web"}],
        "ttlSecondsAfterFinished": 600,
    }


def test_accounting_counts_scheduled_replicas_of_managed_namespaces() -> None:
    writer = FakeWriter()
    run_pass(inputs(moving_fleet(), writer, live=False))
    assert (
        REGISTRY.get_sample_value("ecopulse_fleet_replicas", {"namespace": "shop", "region": "us-east-1"})
        == 3
    )
    assert (
        REGISTRY.get_sample_value("ecopulse_fleet_replicas", {"namespace": "private", "region": "us-east-1"})
        is None
    )
    for pair in ("carbon_avoided_grams", "carbon_added_grams", "cost_saved_usd", "cost_added_usd"):
        sample = f"ecopulse_fleet_{pair}_total"
        assert REGISTRY.get_sample_value(sample, {"namespace": "shop", "region": "us-east-1"}) is not None, (
            pair
        )


def test_a_move_whose_placement_was_edited_drops_only_its_own_traces() -> None:
    saved = '{"replicaSchedulingType":"Divided","replicaDivisionPreference":"Aggregated"}'
    annotations = {
        MOVING_TO_ANNOTATION: "member-eu-west-1",
        SAVED_SCHEDULING_ANNOTATION: saved,
        MOVED_AT_ANNOTATION: NOW.isoformat(),
    }
    user_edit = {
        "clusterAffinities": [{"affinityName": "pinned", "clusterNames": ["member-us-east-1"]}],
        "replicaScheduling": {"replicaSchedulingType": "Duplicated"},  # what our first step left
    }
    fleet = snapshot(
        policies=[policy("web", selects="web", annotations=annotations, placement=user_edit)],
        deployments=[deployment("web")],
        bindings=[binding("web", {"member-us-east-1": 3})],
    )
    writer = FakeWriter()
    run_pass(inputs(fleet, writer, live=True))
    ((_, placement, written, _),) = writer.patches
    assert placement == {"replicaScheduling": json.loads(saved)}  # the user's affinities untouched
    assert written[MOVING_TO_ANNOTATION] is None and written[SAVED_SCHEDULING_ANNOTATION] is None
    assert written[AVAILABLE_SINCE_ANNOTATION] is None
    assert MOVED_AT_ANNOTATION not in written  # the cooldown still counts from the move's start
    assert json.loads(written[DECISION_ANNOTATION] or "")["reason"] == "placement-edited"


def test_a_move_whose_old_and_new_members_both_failed_starts_over_keeping_the_saved_scheduling() -> None:
    saved = '{"replicaSchedulingType":"Divided","replicaDivisionPreference":"Aggregated"}'
    annotations = {
        MOVING_TO_ANNOTATION: "member-eu-north-1",
        SAVED_SCHEDULING_ANNOTATION: saved,
        MOVED_AT_ANNOTATION: NOW.isoformat(),
    }
    members = [
        cluster("member-us-east-1", "us-east-1", ready=False),
        cluster("member-eu-north-1", "eu-north-1", ready=False),
        cluster("member-eu-west-1", "eu-west-1"),
    ]
    fleet = snapshot(
        policies=[
            policy(
                "web",
                selects="web",
                annotations=annotations,
                placement=expanded("member-eu-north-1", "member-us-east-1"),
            )
        ],
        deployments=[deployment("web")],
        bindings=[binding("web", {"member-us-east-1": 3, "member-eu-north-1": 3})],
        clusters=members,
    )
    writer = FakeWriter()
    run_pass(inputs(fleet, writer, live=True))
    ((_, placement, written, _),) = writer.patches
    assert placement is not None
    assert placement["clusterAffinities"][0]["clusterNames"] == [
        "member-eu-west-1",
        "member-eu-north-1",
        "member-us-east-1",
    ]
    assert written[MOVING_TO_ANNOTATION] == "member-eu-west-1"
    assert written[SAVED_SCHEDULING_ANNOTATION] == saved  # the policy's own, not our Duplicated
    assert json.loads(written[DECISION_ANNOTATION] or "")["reason"] == "member-not-ready"
