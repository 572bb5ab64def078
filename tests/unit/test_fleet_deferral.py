"""Deferrable Jobs across a fleet: which member and hour (fleet.deferral, on core.deferral), and the
two writes of a release as the API server applies them."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonpatch
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.config import parse_config_text
from core.deferral import HourlyForecast, StartReason, hour_floor
from core.deferral_bindings import (
    CHOSEN_AFFINITY,
    FLEET_MEMBER_ANNOTATION,
    PINNED_CLUSTER_LABEL,
    POLICY_AFFINITY,
    JobBinding,
    binding_release_patch,
    pin_ops,
    slim_job_binding,
)
from core.deferral_hints import NotDeferred, job_facts, stamp
from core.settings import SettingsError
from fleet.deferral import (
    RequestMemo,
    job_release_patch,
    overdue_releases,
    plan_fleet_releases,
    ready_members,
)
from fleet.records import MemberCluster
from tests.factories import ONE_PRICE, THREE_REGIONS
from tests.unit.test_job_hold import decide as decide_hold
from tests.unit.test_job_hold import job
from webhook.settings import WebhookSettings

CONFIG = parse_config_text(
    "apiVersion: ecopulse.io/v1alpha1\nkind: EcoPulseConfiguration\n"
    + THREE_REGIONS
    + ONE_PRICE
    + "economics: {carbonPriceUsdPerTonne: 1000}\n"
    + "deferral: {minBenefitUsd: 0, safetyMarginSeconds: 600, confidenceZ: 0}\n"
)
CREATED = datetime(2026, 12, 7, 18, 0, tzinfo=UTC)
REGIONS = ("us-east-1", "eu-west-1", "eu-north-1")
SLACK = 60.0


def held_job(
    name: str = "train", *, release_by: datetime | None = None, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    by = release_by or CREATED + timedelta(hours=4, minutes=50)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": "ml",
            "uid": f"uid-{name}",
            "annotations": {
                "ecopulse.io/deadline": stamp(CREATED + timedelta(hours=6)),
                "ecopulse.io/expected-runtime-hours": "1",
                "ecopulse.io/held-at": stamp(CREATED),
                "ecopulse.io/release-by": stamp(by),
                **(annotations or {}),
            },
            "creationTimestamp": stamp(CREATED),
        },
        "spec": {
            "suspend": True,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "resources": {"requests": {"cpu": "8"}}}],
                }
            },
        },
    }


def binding(
    job: str = "train", *, suspended: bool = True, names: list[str] | None = None, uid: str | None = None
) -> dict[str, Any]:
    placement: dict[str, Any] = {"replicaScheduling": {"replicaSchedulingType": "Duplicated"}}
    if names is not None:
        placement["clusterAffinity"] = {"clusterNames": names}
    spec: dict[str, Any] = {
        "resource": {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "namespace": "ml",
            "name": job,
            "uid": uid or f"uid-{job}",
        },
        "placement": placement,
    }
    if suspended:
        spec["suspension"] = {"scheduling": True}
    return {"metadata": {"name": f"{job}-job", "namespace": "ml", "labels": {"x": "y"}}, "spec": spec}


def members(*, down: frozenset[str] = frozenset()) -> list[MemberCluster]:
    return [
        MemberCluster(name=f"member-{region}", region=region, ready=f"member-{region}" not in down)
        for region in REGIONS
    ]


def forecasts(now: datetime, *, green_now: bool, green: str = "eu-north-1") -> list[HourlyForecast]:
    """``green`` is green from the next hour (or already now), the others dirty throughout."""
    origin = hour_floor(now)
    found = []
    for region in REGIONS:
        values = [500.0] * 8
        if region == green:
            values = [20.0 if green_now else 500.0] + [20.0] * 7
        found.append(HourlyForecast(region=region, start=origin, carbon_g_per_kwh=tuple(values), made_at=now))
    return found


def bindings_of(*objs: dict[str, Any]) -> dict[tuple[str, str], JobBinding]:
    found = {}
    for obj in objs:
        record = slim_job_binding(obj)
        assert record is not None
        found[record.job_key] = record
    return found


def decide(
    jobs: list[dict[str, Any]],
    *,
    now: datetime,
    green_now: bool,
    bound: list[dict[str, Any]] | None = None,
    clusters: list[MemberCluster] | None = None,
    green: str = "eu-north-1",
    memo: RequestMemo | None = None,
) -> Any:
    return plan_fleet_releases(
        [job_facts(j) for j in jobs],
        bindings=bindings_of(
            *(bound if bound is not None else [binding(j["metadata"]["name"]) for j in jobs])
        ),
        clusters=clusters if clusters is not None else members(),
        forecasts=forecasts(now, green_now=green_now, green=green),
        config=CONFIG,
        namespace_annotations={},
        now=now,
        slack_seconds=SLACK,
        memo=memo,
    )


def test_a_held_job_waits_then_goes_at_the_green_hour_into_the_green_member() -> None:
    early = decide([held_job()], now=CREATED + timedelta(minutes=10), green_now=False)
    assert early.releases == ()
    (wait,) = early.waiting
    assert (wait.plan.region, wait.member) == ("eu-north-1", "member-eu-north-1")
    (release,) = decide([held_job()], now=CREATED + timedelta(hours=1, minutes=1), green_now=True).releases
    assert release.reason is StartReason.GREEN_HOUR
    assert (release.member, release.region) == ("member-eu-north-1", "eu-north-1")


def test_a_member_not_ready_at_the_chosen_hour_is_not_chosen() -> None:
    now = CREATED + timedelta(hours=1, minutes=1)
    clusters = members(down=frozenset({"member-eu-north-1"}))
    found = decide([held_job()], now=now, green_now=True, clusters=clusters)
    chosen = [r.member for r in found.releases] + [w.member for w in found.waiting]
    assert chosen and "member-eu-north-1" not in chosen


def test_the_policy_placement_bounds_the_members() -> None:
    # The user's policy names two members; the green one is not among them.
    now = CREATED + timedelta(hours=1, minutes=1)
    bound = [binding(names=["member-us-east-1", "member-eu-west-1"])]
    found = decide([held_job()], now=now, green_now=True, bound=bound)
    chosen = {r.member for r in found.releases} | {w.member for w in found.waiting}
    assert chosen <= {"member-us-east-1", "member-eu-west-1"}


def test_no_ready_member_waits_until_release_by_then_goes_unpinned() -> None:
    down = frozenset(f"member-{r}" for r in REGIONS)
    early = decide([held_job()], now=CREATED, green_now=True, clusters=members(down=down))
    assert early.releases == () and early.waiting == ()
    by = CREATED + timedelta(hours=2)
    (release,) = decide(
        [held_job(release_by=by)], now=by, green_now=True, clusters=members(down=down)
    ).releases
    assert release.reason is StartReason.RELEASE_BY and release.member == ""


def test_release_by_is_hard_and_goes_to_the_best_member_now() -> None:
    by = CREATED + timedelta(hours=3, minutes=30)
    # eu-west-1 will be green later, but release-by comes first (within one pass).
    (release,) = decide(
        [held_job(release_by=by)], now=by - timedelta(seconds=SLACK - 1), green_now=False, green="eu-north-1"
    ).releases
    assert release.reason is StartReason.RELEASE_BY
    assert release.member.startswith("member-")


@pytest.mark.parametrize(
    ("case", "bound"),
    [
        ("the binding answer was lost: Karmada placed it already", [binding(suspended=False)]),
        ("Karmada has not made the binding yet", []),
        ("a binding of an earlier Job of that name", [binding(uid="uid-old")]),
    ],
)
def test_no_pin_without_our_suspended_binding(case: str, bound: list[dict[str, Any]]) -> None:
    (release,) = decide(
        [held_job()], now=CREATED + timedelta(hours=1, minutes=1), green_now=True, bound=bound
    ).releases
    assert release.member == "", case


def test_a_job_not_held_by_us_is_never_released() -> None:
    user = held_job()
    del user["metadata"]["annotations"]["ecopulse.io/held-at"]  # the user's own suspension
    plain = held_job("plain")
    plain["metadata"]["annotations"] = {}
    found = decide([user, plain], now=CREATED + timedelta(days=2), green_now=True)
    assert found.releases == () and found.waiting == () and found.unfinished == ()
    assert (
        overdue_releases(
            [job_facts(user), job_facts(plain)],
            bindings={},
            now=CREATED + timedelta(days=2),
            reason=StartReason.JANITOR,
        )
        == ()
    )


def test_a_release_whose_binding_write_failed_is_finished() -> None:
    job = held_job(
        annotations={"ecopulse.io/released-at": stamp(CREATED), FLEET_MEMBER_ANNOTATION: "member-eu-north-1"}
    )
    job["spec"]["suspend"] = False
    found = decide([job], now=CREATED + timedelta(hours=1), green_now=True)
    (unfinished,) = found.unfinished
    assert unfinished.member == "member-eu-north-1"
    (janitor,) = overdue_releases(
        [job_facts(job)], bindings=bindings_of(binding()), now=CREATED, reason=StartReason.JANITOR
    )
    assert janitor.member == "member-eu-north-1"


def test_the_janitor_releases_only_overdue_holds_unpinned() -> None:
    by = CREATED + timedelta(hours=1)
    jobs = [
        job_facts(held_job("a", release_by=by)),
        job_facts(held_job("b", release_by=by + timedelta(hours=1))),
    ]
    (release,) = overdue_releases(
        jobs, bindings=bindings_of(binding("a"), binding("b")), now=by, reason=StartReason.JANITOR
    )
    assert (release.job.name, release.member, release.reason) == ("a", "", StartReason.JANITOR)


def test_the_two_writes_as_the_api_server_applies_them() -> None:
    (release,) = decide([held_job()], now=CREATED + timedelta(hours=1, minutes=1), green_now=True).releases
    job = jsonpatch.apply_patch(held_job(), job_release_patch(release, now=CREATED))
    assert job["spec"]["suspend"] is False
    assert job["metadata"]["annotations"][FLEET_MEMBER_ANNOTATION] == "member-eu-north-1"
    raw = binding(names=["member-us-east-1", "member-eu-north-1"])
    raw["spec"]["placement"]["clusterAffinities"] = [
        {"affinityName": "a", "clusterNames": ["member-us-east-1"]}
    ]
    record = slim_job_binding(raw)
    assert record is not None
    out = jsonpatch.apply_patch(raw, binding_release_patch(record, member=release.member))
    assert out["spec"]["suspension"] == {"scheduling": False}
    # The chosen member first; the user's own terms after it, for Karmada's failover only.
    assert out["spec"]["placement"]["clusterAffinities"] == [
        {"affinityName": CHOSEN_AFFINITY, "clusterNames": ["member-eu-north-1"]},
        {"affinityName": "a", "clusterNames": ["member-us-east-1"]},
    ]
    assert "clusterAffinity" not in out["spec"]["placement"]
    assert out["spec"]["placement"]["replicaScheduling"] == raw["spec"]["placement"]["replicaScheduling"]
    assert out["metadata"]["labels"] == {"x": "y", PINNED_CLUSTER_LABEL: "member-eu-north-1"}
    # A binding without labels gets the map; unpinned leaves the user's placement alone.
    bare = binding()
    del bare["metadata"]["labels"]
    bare_record = slim_job_binding(bare)
    assert bare_record is not None
    assert jsonpatch.apply_patch(bare, binding_release_patch(bare_record, member="m"))["metadata"][
        "labels"
    ] == {PINNED_CLUSTER_LABEL: "m"}
    unpinned = jsonpatch.apply_patch(bare, binding_release_patch(bare_record, member=""))
    assert unpinned["spec"]["placement"] == bare["spec"]["placement"]


@pytest.mark.parametrize(
    ("placement", "fallback"),
    [
        # The policy's single affinity becomes the term after ours, as it was.
        (
            {"clusterAffinity": {"clusterNames": ["member-us-east-1", "member-eu-north-1"]}},
            [{"affinityName": POLICY_AFFINITY, "clusterNames": ["member-us-east-1", "member-eu-north-1"]}],
        ),
        (
            {"clusterAffinity": {"labelSelector": {"matchLabels": {"tier": "batch"}}, "exclude": ["m"]}},
            [
                {
                    "affinityName": POLICY_AFFINITY,
                    "labelSelector": {"matchLabels": {"tier": "batch"}},
                    "exclude": ["m"],
                }
            ],
        ),
        # No affinity: any member, as Karmada reads an empty term.
        ({}, [{"affinityName": POLICY_AFFINITY}]),
        # The policy's own ordered terms, kept in order after ours.
        (
            {
                "clusterAffinities": [
                    {"affinityName": "primary", "clusterNames": ["a"]},
                    {"affinityName": "backup"},
                ]
            },
            [{"affinityName": "primary", "clusterNames": ["a"]}, {"affinityName": "backup"}],
        ),
    ],
)
def test_a_released_binding_leaves_karmadas_failover_the_policys_placement(
    placement: dict[str, Any], fallback: list[dict[str, Any]]
) -> None:
    """Pinned to one member only, a Job whose member fails after the release could go nowhere:
    Karmada's scheduler tries ``clusterAffinities`` in order and moves on when a term cannot
    schedule, so the policy's own placement follows the chosen member."""
    raw = binding()
    raw["spec"]["placement"] = {"replicaScheduling": {"replicaSchedulingType": "Duplicated"}, **placement}
    record = slim_job_binding(raw)
    assert record is not None
    out = jsonpatch.apply_patch(raw, binding_release_patch(record, member="member-eu-north-1"))
    assert out["spec"]["placement"] == {
        "replicaScheduling": {"replicaSchedulingType": "Duplicated"},
        "clusterAffinities": [
            {"affinityName": CHOSEN_AFFINITY, "clusterNames": ["member-eu-north-1"]},
            *fallback,
        ],
    }
    # Pinned again later (the detector copied a policy over it): the same placement, no nesting.
    pinned = slim_job_binding(out)
    assert pinned is not None
    assert jsonpatch.apply_patch(out, pin_ops(pinned, member="member-eu-north-1")) == out


@pytest.mark.parametrize(
    ("job_changed", "binding_changed"),
    [(True, False), (False, True)],
)
def test_a_hold_no_longer_ours_fails_the_test_and_nothing_is_written(
    job_changed: bool, binding_changed: bool
) -> None:
    (release,) = decide([held_job()], now=CREATED + timedelta(hours=1, minutes=1), green_now=True).releases
    job, raw = held_job(), binding()
    record = slim_job_binding(raw)
    assert record is not None
    if job_changed:
        job["spec"]["suspend"] = False  # released by hand
        with pytest.raises(jsonpatch.JsonPatchTestFailed):
            jsonpatch.apply_patch(job, job_release_patch(release, now=CREATED))
    if binding_changed:
        raw["spec"]["suspension"] = {"scheduling": False}  # resumed by hand
        with pytest.raises(jsonpatch.JsonPatchTestFailed):
            jsonpatch.apply_patch(raw, binding_release_patch(record, member="m"))


def test_only_job_bindings_are_read() -> None:
    other = copy.deepcopy(binding())
    other["spec"]["resource"]["kind"] = "Deployment"
    other["spec"]["resource"]["apiVersion"] = "apps/v1"
    assert slim_job_binding(other) is None
    assert slim_job_binding({"spec": "odd"}) is None


@settings(max_examples=60, deadline=None)
@given(
    ready=st.lists(st.booleans(), min_size=3, max_size=3),
    names=st.none() | st.sets(st.sampled_from([f"member-{r}" for r in REGIONS]), min_size=1),
    minutes=st.integers(min_value=0, max_value=6 * 60),
    green=st.sampled_from(REGIONS),
    order=st.randoms(use_true_random=False),
)
def test_always_a_ready_allowed_member_before_release_by_and_order_free(
    ready: list[bool], names: set[str] | None, minutes: int, green: str, order: Any
) -> None:
    clusters = [
        MemberCluster(name=f"member-{r}", region=r, ready=up) for r, up in zip(REGIONS, ready, strict=True)
    ]
    jobs = [held_job(f"j{i}", release_by=CREATED + timedelta(hours=1 + i)) for i in range(4)]
    bound = [binding(j["metadata"]["name"], names=sorted(names) if names else None) for j in jobs]
    now = CREATED + timedelta(minutes=minutes)
    found = decide(jobs, now=now, green_now=False, bound=bound, clusters=clusters, green=green)
    usable = ready_members(clusters, slim_job_binding(bound[0]))
    for release in found.releases:
        assert release.member in ("", *usable.values())
    for wait in found.waiting:
        # Never waiting past release-by (less one pass): that is a release.
        by = wait.job.release_by
        assert by is not None and now + timedelta(seconds=SLACK) < by
        assert wait.plan.start <= wait.plan.latest_start
        assert wait.member in usable.values()
    shuffled = list(jobs)
    order.shuffle(shuffled)
    clusters_shuffled = list(clusters)
    order.shuffle(clusters_shuffled)
    memo = RequestMemo()
    again = decide(
        shuffled, now=now, green_now=False, bound=bound, clusters=clusters_shuffled, green=green, memo=memo
    )
    assert again == found
    # A memo kept from an earlier pass (other members Ready then) changes nothing.
    decide(jobs, now=now - timedelta(minutes=5), green_now=True, bound=bound, clusters=members(), memo=memo)
    assert (
        decide(jobs, now=now, green_now=False, bound=bound, clusters=clusters, green=green, memo=memo)
        == found
    )


def test_on_the_karmada_api_server_fleet_modes_dry_run_decides_whether_a_job_may_be_held() -> None:
    # The webhook's config there: the rebalancer is not the releaser; fleet mode is.
    assert decide_hold(job(), releaser_dry_run=True).reason is NotDeferred.NO_RELEASER
    assert decide_hold(job(), releaser_dry_run=False).held
    assert WebhookSettings.from_env({"ECOPULSE_RELEASER": "fleet"}).releaser == "fleet"
    with pytest.raises(SettingsError, match="ECOPULSE_RELEASER"):
        WebhookSettings.from_env({"ECOPULSE_RELEASER": "karmada"})


def test_the_memo_reuses_a_jobs_reading_only_while_nothing_it_depends_on_changed() -> None:
    facts = [job_facts(held_job(f"j{i}")) for i in range(3)]
    bound = bindings_of(*(binding(f"j{i}") for i in range(3)))
    now = CREATED + timedelta(hours=1, minutes=1)

    def run(clusters: list[MemberCluster], memo: RequestMemo | None, jobs: list[Any] = facts) -> Any:
        return plan_fleet_releases(
            jobs,
            bindings=bound,
            clusters=clusters,
            forecasts=forecasts(now, green_now=True),
            config=CONFIG,
            namespace_annotations={},
            now=now,
            slack_seconds=SLACK,
            memo=memo,
        )

    memo = RequestMemo()
    down = members(down=frozenset({"member-eu-north-1"}))
    assert run(down, memo) == run(down, None)
    # eu-north-1 is back: its region is usable again, whatever the memo read before.
    found = run(members(), memo)
    assert found == run(members(), None)
    assert {r.member for r in found.releases} == {"member-eu-north-1"}
    # An edited Job is a new record: read again (here, its runtime removed: nothing to plan).
    edited = held_job("j0")
    del edited["metadata"]["annotations"]["ecopulse.io/expected-runtime-hours"]
    again = run(members(), memo, [job_facts(edited), *facts[1:]])
    assert [r.reason for r in again.releases if r.job.name == "j0"] == [StartReason.NO_FORECAST]
