"""Leader election: argument validation, the expiry arithmetic on a fake clock, and single steps of
the algorithm against an in-memory Lease endpoint with resourceVersion semantics."""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import kubernetes.client
import pytest
from prometheus_client import REGISTRY

from core.kube.lease import (
    LeaseRecord,
    lease_expired,
    may_take,
    next_record,
    released_record,
    validate_timing,
)
from core.kube.microtime import micro_time
from rebalancer.leader import LeaderElector

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)  # microsecond 0: the MicroTime pitfall
MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


@dataclass
class FakeClock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


# --- an in-memory Lease endpoint, spoken to through the ApiClient surface the elector uses -------


class FakeResponse:
    def __init__(self, status: int, payload: Any) -> None:
        self.status = status
        self.reason = {200: "OK", 201: "Created"}.get(status, "Error")
        self.data = json.dumps(payload).encode()
        self.headers: dict[str, str] = {}

    def read(self) -> bytes:
        return self.data


@dataclass
class FakeLeaseServer:
    """Leases by (namespace, name); PUT needs the current resourceVersion, POST a new name."""

    leases: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    version: int = 0
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    down: bool = False
    attempts: int = 0
    before_write: Any = None  # called before a PUT is applied: simulates a concurrent writer

    def param_serialize(
        self,
        *,
        method: str,
        resource_path: str,
        path_params: dict[str, str],
        header_params: dict[str, str],
        body: Any,
        auth_settings: list[str],
    ) -> tuple[str, str, dict[str, str], Any, list[str]]:
        return method, resource_path.format(**path_params), header_params, body, []

    def call_api(
        self,
        method: str,
        url: str,
        header_params: dict[str, str],
        body: Any,
        post_params: list[str],
        _request_timeout: float | None = None,
    ) -> FakeResponse:
        self.attempts += 1
        if self.down:
            raise ConnectionRefusedError("API server unreachable")
        body = json.loads(json.dumps(body))  # what goes on the wire
        self.requests.append((method, url, body))
        parts = url.split("/")
        namespace = parts[parts.index("namespaces") + 1]
        if method == "POST":
            key = (namespace, body["metadata"]["name"])
            if key in self.leases:
                return FakeResponse(409, {"reason": "AlreadyExists"})
            return self._store(key, body, 201)
        key = (namespace, parts[-1])
        if key not in self.leases:
            return FakeResponse(404, {"reason": "NotFound"})
        if method == "GET":
            return FakeResponse(200, self.leases[key])
        assert method == "PUT"
        if self.before_write is not None:
            hook, self.before_write = self.before_write, None
            hook()
        if body["metadata"].get("resourceVersion") != self.leases[key]["metadata"]["resourceVersion"]:
            return FakeResponse(409, {"reason": "Conflict"})
        return self._store(key, body, 200)

    def _store(self, key: tuple[str, str], body: dict[str, Any], status: int) -> FakeResponse:
        for stamp in ("acquireTime", "renewTime"):
            value = body["spec"].get(stamp)
            if value is not None and not MICRO_TIME.match(value):
                return FakeResponse(400, {"message": f"cannot parse {value!r} as MicroTime"})
        self.version += 1
        stored = {**body, "metadata": {**body["metadata"], "resourceVersion": str(self.version)}}
        self.leases[key] = stored
        return FakeResponse(status, stored)

    def spec(self, name: str = "lease", namespace: str = "ns") -> dict[str, Any]:
        spec: dict[str, Any] = self.leases[(namespace, name)]["spec"]
        return spec

    def writes(self) -> list[tuple[str, str, Any]]:
        return [r for r in self.requests if r[0] != "GET"]


@dataclass
class FakeCoordinationApi:
    api_client: FakeLeaseServer


def elector(server: FakeLeaseServer, clock: FakeClock, identity: str, **options: Any) -> LeaderElector:
    api = cast(kubernetes.client.CoordinationV1Api, FakeCoordinationApi(server))
    settings: dict[str, Any] = {
        "lease_duration_seconds": 15,
        "renew_deadline_seconds": 10,
        "retry_period_seconds": 2,
        **options,
    }
    return LeaderElector(api=api, namespace="ns", name="lease", identity=identity, clock=clock, **settings)


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lease", "renew", "retry"),
    [(15, 10, 2), (3, 2, 0.5), (2, 1.5, 1), (137, 107, 26), (15.0, 12.1, 10)],
)
def test_valid_timings(lease: float, renew: float, retry: float) -> None:
    validate_timing(lease, renew, retry)


@pytest.mark.parametrize(
    ("lease", "renew", "retry", "message"),
    [
        (10, 10, 2, "lease_duration_seconds .* greater than renew_deadline"),
        (8, 10, 2, "lease_duration_seconds .* greater than renew_deadline"),
        (15, 2.4, 2, r"renew_deadline_seconds .* 1.2 × retry_period"),
        (15, 2, 2, r"renew_deadline_seconds .* 1.2 × retry_period"),
        (15, 10, 0, "retry_period_seconds must be > 0"),
        (15, 10, -1, "retry_period_seconds must be > 0"),
        (15, -3, -5, "retry_period_seconds must be > 0"),
        (15.5, 10, 2, "whole number of seconds"),
        (float("nan"), 10, 2, "finite"),
        (float("inf"), 10, 2, "finite"),
        (15, 10, float("nan"), "finite"),
    ],
)
def test_invalid_timings(lease: float, renew: float, retry: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_timing(lease, renew, retry)
    with pytest.raises(ValueError, match=message):
        elector(
            FakeLeaseServer(),
            FakeClock(),
            "a",
            lease_duration_seconds=lease,
            renew_deadline_seconds=renew,
            retry_period_seconds=retry,
        )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"identity": ""}, "identity must not be empty"),
        ({"namespace": ""}, "namespace must not be empty"),
        ({"name": ""}, "name must not be empty"),
        ({"request_timeout_seconds": 0}, "request_timeout_seconds must be > 0"),
    ],
)
def test_invalid_names(options: dict[str, Any], message: str) -> None:
    api = cast(kubernetes.client.CoordinationV1Api, FakeCoordinationApi(FakeLeaseServer()))
    arguments: dict[str, Any] = {"api": api, "namespace": "ns", "identity": "a", **options}
    with pytest.raises(ValueError, match=message):
        LeaderElector(**arguments)


def test_defaults() -> None:
    api = cast(kubernetes.client.CoordinationV1Api, FakeCoordinationApi(FakeLeaseServer()))
    chosen = LeaderElector(api=api, namespace="ns", identity="a")
    assert (chosen.name, chosen.lease_duration_seconds) == ("eco-pulse-rebalancer", 15)
    assert (chosen.renew_deadline_seconds, chosen.retry_period_seconds) == (10, 2)
    assert not chosen.is_leader


# --- the wire's timestamps ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (T0, "2026-11-22T10:00:00.000000Z"),
        (T0 + timedelta(microseconds=7), "2026-11-22T10:00:00.000007Z"),
        (T0 + timedelta(seconds=1.5), "2026-11-22T10:00:01.500000Z"),
        (datetime(2026, 11, 22, 12, 0, tzinfo=timezone(timedelta(hours=2))), "2026-11-22T10:00:00.000000Z"),
    ],
)
def test_micro_time(moment: datetime, expected: str) -> None:
    assert micro_time(moment) == expected


def test_micro_time_refuses_naive() -> None:
    with pytest.raises(ValueError, match="naive"):
        micro_time(datetime(2026, 11, 22, 10, 0))


# --- expiry arithmetic --------------------------------------------------------------------------

OTHER = LeaseRecord("b", 15, "2020-01-01T00:00:00.000000Z", "2020-01-01T00:00:00.000000Z", 4)


@pytest.mark.parametrize(
    ("duration", "observed_after", "now_after", "expired"),
    [
        (15, 0, 0, False),
        (15, 0, 14.999999, False),
        (15, 0, 15, True),  # valid while observed + duration > now: at equality it has expired
        (15, 0, 15.000001, True),
        (15, 10, 24, False),  # what counts is when *we* saw it change
        (15, 10, 25, True),
        (3, 0, 2.9, False),
        (3, 0, 3, True),
        (1, 0, 1, True),  # a released lease: 1 s
        (0, 0, 0, True),  # no duration at all
        (15, 5, 0, False),  # observed "in the future" (clock stepped back): still valid
    ],
)
def test_lease_expired(duration: int, observed_after: float, now_after: float, expired: bool) -> None:
    record = LeaseRecord("b", duration, None, None, 0)
    observed = T0 + timedelta(seconds=observed_after)
    assert lease_expired(record, observed, T0 + timedelta(seconds=now_after)) is expired


def test_remote_renew_time_is_ignored() -> None:
    """A holder whose clock is years behind still holds the lease while we see it change."""
    assert not lease_expired(OTHER, T0, T0 + timedelta(seconds=14))
    ahead = LeaseRecord("b", 15, "2099-01-01T00:00:00.000000Z", "2099-01-01T00:00:00.000000Z", 4)
    assert lease_expired(ahead, T0, T0 + timedelta(seconds=15))


@pytest.mark.parametrize(
    ("holder", "now_after", "allowed"),
    [
        ("a", 0, True),  # ours: renew
        ("", 0, True),  # released: take it at once
        ("b", 0, False),
        ("b", 14, False),
        ("b", 15, True),
    ],
)
def test_may_take(holder: str, now_after: float, allowed: bool) -> None:
    record = LeaseRecord(holder, 15, None, None, 0)
    assert may_take(record, "a", T0, T0 + timedelta(seconds=now_after)) is allowed


def test_next_record() -> None:
    stamp = "2026-11-22T10:00:00.000000Z"
    later = T0 + timedelta(seconds=5, microseconds=1)
    created = next_record(None, identity="a", lease_duration_seconds=15, now=T0)
    assert created == LeaseRecord("a", 15, stamp, stamp, 0)
    renewed = next_record(created, identity="a", lease_duration_seconds=15, now=later)
    assert renewed == LeaseRecord("a", 15, stamp, "2026-11-22T10:00:05.000001Z", 0)
    taken = next_record(OTHER, identity="a", lease_duration_seconds=15, now=T0)
    assert taken == LeaseRecord("a", 15, stamp, stamp, 5)
    released = released_record(renewed, later)
    assert released == LeaseRecord("", 1, "2026-11-22T10:00:05.000001Z", "2026-11-22T10:00:05.000001Z", 0)
    after_release = next_record(released, identity="b", lease_duration_seconds=15, now=later)
    assert (after_release.holder_identity, after_release.lease_transitions) == ("b", 1)


def test_record_round_trip() -> None:
    spec = OTHER.to_spec()
    assert LeaseRecord.from_spec(spec) == OTHER
    assert LeaseRecord.from_spec(None) == LeaseRecord()
    assert LeaseRecord.from_spec({"holderIdentity": None, "leaseDurationSeconds": 3}) == LeaseRecord("", 3)
    assert "acquireTime" not in LeaseRecord("a", 3).to_spec()


# --- steps against the in-memory endpoint -------------------------------------------------------


def test_first_step_creates_the_lease_with_six_digit_times() -> None:
    server, clock = FakeLeaseServer(), FakeClock()
    a = elector(server, clock, "a")
    assert a.try_acquire_or_renew()
    assert a.is_leader
    assert server.spec() == {
        "holderIdentity": "a",
        "leaseDurationSeconds": 15,
        "leaseTransitions": 0,
        "acquireTime": "2026-11-22T10:00:00.000000Z",
        "renewTime": "2026-11-22T10:00:00.000000Z",
    }
    assert [r[0] for r in server.requests] == ["GET", "POST"]


def test_renewal_keeps_acquire_time_and_is_conditional() -> None:
    server, clock = FakeLeaseServer(), FakeClock()
    a = elector(server, clock, "a")
    assert a.try_acquire_or_renew()
    clock.advance(2)
    assert a.try_acquire_or_renew()
    method, url, body = server.requests[-1]
    assert (method, url) == ("PUT", "/apis/coordination.k8s.io/v1/namespaces/ns/leases/lease")
    assert body["metadata"]["resourceVersion"] == "1"
    assert server.spec()["acquireTime"] == "2026-11-22T10:00:00.000000Z"
    assert server.spec()["renewTime"] == "2026-11-22T10:00:02.000000Z"
    assert server.spec()["leaseTransitions"] == 0


def test_follower_waits_for_expiry_measured_from_its_own_observation() -> None:
    server, clock = FakeLeaseServer(), FakeClock()
    a, b = elector(server, clock, "a"), elector(server, clock, "b")
    assert a.try_acquire_or_renew()
    clock.advance(20)  # a lease long stale by its renewTime, but b has never seen it before
    assert not b.try_acquire_or_renew()
    assert b.observed_time == T0 + timedelta(seconds=20)
    clock.advance(14.9)
    assert not b.try_acquire_or_renew()
    assert server.spec()["holderIdentity"] == "a"
    clock.advance(0.1)
    assert b.try_acquire_or_renew()
    assert b.is_leader
    assert server.spec()["holderIdentity"] == "b"
    assert server.spec()["leaseTransitions"] == 1
    assert server.spec()["acquireTime"] == micro_time(clock.now)
    # a comes back: it sees b's record and stops leading; it does not write
    writes = len(server.writes())
    assert not a.try_acquire_or_renew()
    assert not a.is_leader
    assert len(server.writes()) == writes


def test_a_renewing_holder_with_a_skewed_clock_keeps_the_lease() -> None:
    server = FakeLeaseServer()
    a_clock, b_clock = FakeClock(T0 - timedelta(days=365)), FakeClock()
    a, b = elector(server, a_clock, "a"), elector(server, b_clock, "b")
    for _ in range(20):  # 40 s of b's time, a renewing every 2 s with renewTimes a year old
        assert a.try_acquire_or_renew()
        assert not b.try_acquire_or_renew()
        a_clock.advance(2)
        b_clock.advance(2)
    assert server.spec()["holderIdentity"] == "a"


def test_is_leader_lapses_after_the_renew_deadline_while_the_api_is_unreachable() -> None:
    server, clock = FakeLeaseServer(), FakeClock()
    a = elector(server, clock, "a")
    assert a.try_acquire_or_renew()
    server.down = True
    clock.advance(9.9)
    assert not a.try_acquire_or_renew()  # no exception
    assert a.is_leader
    clock.advance(0.1)
    assert not a.is_leader  # renew deadline 10 s < lease 15 s: before anyone else may take it


def test_api_errors_are_false_not_exceptions() -> None:
    server, clock = FakeLeaseServer(), FakeClock()
    server.down = True
    assert not elector(server, clock, "a").try_acquire_or_renew()


def test_lost_create_race() -> None:
    server, clock = FakeLeaseServer(), FakeClock()
    a, b = elector(server, clock, "a"), elector(server, clock, "b")
    # b reads 404, then a creates before b's POST
    original = server.call_api

    def create_first(*args: Any, **kwargs: Any) -> FakeResponse:
        if args[0] == "POST" and args[3]["spec"]["holderIdentity"] == "b":
            server.call_api = original  # type: ignore[method-assign]
            assert a.try_acquire_or_renew()
        return original(*args, **kwargs)

    server.call_api = create_first  # type: ignore[method-assign]
    assert not b.try_acquire_or_renew()
    assert not b.is_leader
    assert server.spec()["holderIdentity"] == "a"


def test_lost_update_race_is_a_conflict() -> None:
    server, clock = FakeLeaseServer(), FakeClock()
    a, b = elector(server, clock, "a"), elector(server, clock, "b")
    assert a.try_acquire_or_renew()
    assert a.release()

    def c_takes_it() -> None:
        c = elector(server, clock, "c")
        server.before_write = None
        assert c.try_acquire_or_renew()

    server.before_write = c_takes_it
    assert not b.try_acquire_or_renew()  # its PUT carried the resourceVersion it read: 409
    assert not b.is_leader
    assert server.spec()["holderIdentity"] == "c"


def test_release_hands_over_at_once() -> None:
    server, clock = FakeLeaseServer(), FakeClock()
    a, b = elector(server, clock, "a"), elector(server, clock, "b")
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    clock.advance(1)
    assert a.release()
    assert not a.is_leader
    spec = server.spec()
    assert (spec["holderIdentity"], spec["leaseDurationSeconds"], spec["leaseTransitions"]) == ("", 1, 0)
    assert b.try_acquire_or_renew()
    assert server.spec()["leaseTransitions"] == 1
    assert not a.release()  # not ours any more: nothing written
    assert server.spec()["holderIdentity"] == "b"


def test_run_reports_changes_and_releases_on_stop() -> None:
    server = FakeLeaseServer()
    changes: list[bool] = []
    changed = threading.Event()

    def on_change(leading: bool) -> None:
        changes.append(leading)
        changed.set()

    a = LeaderElector(
        api=cast(kubernetes.client.CoordinationV1Api, FakeCoordinationApi(server)),
        namespace="ns",
        name="lease",
        identity="a",
        lease_duration_seconds=2,
        renew_deadline_seconds=1,
        retry_period_seconds=0.05,
        on_change=on_change,
    )
    a.start()
    try:
        assert changed.wait(5)
        assert a.is_leader
        assert REGISTRY.get_sample_value("ecopulse_rebalancer_leader") == 1
        with pytest.raises(RuntimeError, match="already running"):
            a.start()
    finally:
        a.stop(timeout=5)
    assert changes == [True, False]
    assert REGISTRY.get_sample_value("ecopulse_rebalancer_leader") == 0
    assert server.spec()["holderIdentity"] == ""


def test_stop_without_release_leaves_the_lease() -> None:
    server = FakeLeaseServer()
    a = LeaderElector(
        api=cast(kubernetes.client.CoordinationV1Api, FakeCoordinationApi(server)),
        namespace="ns",
        name="lease",
        identity="a",
        lease_duration_seconds=2,
        renew_deadline_seconds=1,
        retry_period_seconds=0.05,
    )
    a.start()
    deadline = time.monotonic() + 5
    while not a.is_leader and time.monotonic() < deadline:
        time.sleep(0.01)
    a.stop(release=False, timeout=5)
    assert not a.is_leader
    assert server.spec()["holderIdentity"] == "a"


def test_loop_keeps_its_pace_after_leadership_lapsed() -> None:
    server = FakeLeaseServer()
    a = LeaderElector(
        api=cast(kubernetes.client.CoordinationV1Api, FakeCoordinationApi(server)),
        namespace="ns",
        name="lease",
        identity="a",
        lease_duration_seconds=1,
        renew_deadline_seconds=0.2,
        retry_period_seconds=0.05,
    )
    a.start()
    try:
        deadline = time.monotonic() + 5
        while not a.is_leader and time.monotonic() < deadline:
            time.sleep(0.01)
        server.down = True
        time.sleep(0.3)
        assert not a.is_leader
        before = server.attempts
        time.sleep(0.5)
        assert server.attempts - before <= 0.5 / 0.05 + 2  # one attempt per retry period, no spinning
    finally:
        a.stop(timeout=5)
