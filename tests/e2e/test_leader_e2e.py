"""Leader election against the real kube-apiserver: two electors in one process, each with its own
ApiClient, on a dedicated Lease per test (lease 3 s, renew deadline 2 s, retry 0.5 s)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import kubernetes.client
import kubernetes.config
import pytest

from rebalancer.leader import LeaderElector
from tests.e2e.cluster import ClusterError, LocalCluster

NAMESPACE = "default"
LEASE_SECONDS = 3
RENEW_DEADLINE = 2.0
RETRY = 0.5
SAMPLE_EVERY = 0.05
UNREACHABLE = "https://127.0.0.1:1"


def coordination_api(cluster: LocalCluster) -> kubernetes.client.CoordinationV1Api:
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(cluster.kubeconfig), client_configuration=configuration
    )
    return kubernetes.client.CoordinationV1Api(kubernetes.client.ApiClient(configuration))


def lease(cluster: LocalCluster, name: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(cluster.kubectl("get", "lease", name, "-n", NAMESPACE, "-o", "json"))
    return found


def micro(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def wait_until(what: str, condition: Callable[[], bool], timeout_seconds: float) -> float:
    """Seconds it took; fails the test after timeout_seconds."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout_seconds:
            raise AssertionError(f"not within {timeout_seconds}s: {what}")
        time.sleep(0.01)
    return time.monotonic() - start


@dataclass
class Sampler:
    """Reads is_leader of both electors every 50 ms in a thread: (monotonic time, a, b)."""

    a: LeaderElector
    b: LeaderElector
    samples: list[tuple[float, bool, bool]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), self.a.is_leader, self.b.is_leader))
            self._stop.wait(SAMPLE_EVERY)

    def assert_never_both(self) -> None:
        both = [t for t, a, b in self.samples if a and b]
        assert not both, f"both electors led at {len(both)} of {len(self.samples)} samples"

    def first(self, which: str, *, leading: bool, after: float = 0.0) -> float:
        index = 1 if which == "a" else 2
        return next(s[0] for s in self.samples if s[0] >= after and s[index] is leading)


@dataclass
class Pair:
    cluster: LocalCluster
    name: str
    a: LeaderElector
    b: LeaderElector
    changes: dict[str, list[bool]]

    def leader_and_follower(self) -> tuple[LeaderElector, LeaderElector]:
        wait_until("one elector leads", lambda: self.a.is_leader or self.b.is_leader, 5)
        return (self.a, self.b) if self.a.is_leader else (self.b, self.a)

    def api_of(self, elector: LeaderElector) -> kubernetes.client.CoordinationV1Api:
        api: kubernetes.client.CoordinationV1Api = elector._api
        return api


@pytest.fixture
def pair(cluster: LocalCluster, request: pytest.FixtureRequest) -> Iterator[Pair]:
    name = f"leader-{request.node.name.removeprefix('test_').replace('_', '-')[:30]}-{uuid.uuid4().hex[:6]}"
    changes: dict[str, list[bool]] = {"a": [], "b": []}
    electors = [
        LeaderElector(
            api=coordination_api(cluster),
            namespace=NAMESPACE,
            name=name,
            identity=f"{who}-{uuid.uuid4().hex[:8]}",
            lease_duration_seconds=LEASE_SECONDS,
            renew_deadline_seconds=RENEW_DEADLINE,
            retry_period_seconds=RETRY,
            on_change=changes[who].append,
        )
        for who in ("a", "b")
    ]
    try:
        yield Pair(cluster, name, electors[0], electors[1], changes)
    finally:
        for elector in electors:
            elector.stop(timeout=10)
            elector._api.api_client.close()
        with contextlib.suppress(ClusterError):
            cluster.kubectl("delete", "lease", name, "-n", NAMESPACE, "--ignore-not-found")


def test_one_leader_at_a_time_and_release_hands_over(pair: Pair) -> None:
    with Sampler(pair.a, pair.b) as sampler:
        pair.a.start()
        pair.b.start()  # both race to create the Lease: one gets 409 Conflict
        leader, follower = pair.leader_and_follower()
        time.sleep(3)  # longer than the lease: the leader keeps renewing, the follower never takes it
        assert leader.is_leader
        assert not follower.is_leader

        record = lease(pair.cluster, pair.name)["spec"]
        assert record["holderIdentity"] == leader.identity
        assert record["leaseTransitions"] == 0
        assert record["leaseDurationSeconds"] == LEASE_SECONDS
        assert micro(record["renewTime"]) > micro(record["acquireTime"])  # renewed, acquireTime kept
        assert record["renewTime"].endswith("Z") and len(record["renewTime"].split(".")[1]) == 7

        leader.stop()  # releases: holder cleared, 1 s
        handover = wait_until("the follower leads after the release", lambda: follower.is_leader, 3)
        time.sleep(0.3)
    sampler.assert_never_both()
    assert handover < RETRY + 1.0, f"handover took {handover:.2f}s after a release"

    record = lease(pair.cluster, pair.name)["spec"]
    assert record["holderIdentity"] == follower.identity
    assert record["leaseTransitions"] == 1
    assert record["leaseDurationSeconds"] == LEASE_SECONDS
    changes_of = pair.changes["a" if leader is pair.a else "b"]
    assert changes_of == [True, False]
    assert pair.changes["a" if follower is pair.a else "b"] == [True]


def test_killed_leader_is_replaced_after_the_lease_expires_and_not_before(pair: Pair) -> None:
    pair.a.start()
    wait_until("a leads", lambda: pair.a.is_leader, 5)
    pair.b.start()
    time.sleep(1)  # b has observed a's renewals
    assert not pair.b.is_leader

    with Sampler(pair.a, pair.b) as sampler:
        killed_at = time.monotonic()
        pair.a.stop(release=False)  # a crash: no release, the Lease keeps a's last renewal
        last_renewal = lease(pair.cluster, pair.name)["spec"]
        assert last_renewal["holderIdentity"] == pair.a.identity
        took = wait_until("b takes over the expired lease", lambda: pair.b.is_leader, LEASE_SECONDS + 3)
        time.sleep(0.2)
    sampler.assert_never_both()

    taken = lease(pair.cluster, pair.name)["spec"]
    assert taken["holderIdentity"] == pair.b.identity
    assert taken["leaseTransitions"] == 1
    # b wrote its acquireTime no earlier than a full lease after a's last renewTime (same clock)
    waited = (micro(taken["acquireTime"]) - micro(last_renewal["renewTime"])).total_seconds()
    assert LEASE_SECONDS <= waited <= LEASE_SECONDS + 2 * RETRY + 1.0, waited
    assert took >= LEASE_SECONDS - RETRY - 0.2, f"b led {took:.2f}s after the kill"
    assert sampler.first("b", leading=True, after=killed_at) - killed_at >= LEASE_SECONDS - RETRY - 0.2
    assert pair.changes["b"] == [True]


def test_partitioned_leader_stops_before_the_other_takes_over(pair: Pair) -> None:
    pair.a.start()
    wait_until("a leads", lambda: pair.a.is_leader, 5)
    pair.b.start()
    time.sleep(1)
    a_configuration = pair.api_of(pair.a).api_client.configuration
    server = a_configuration.host

    with Sampler(pair.a, pair.b) as sampler:
        cut_at = time.monotonic()
        a_configuration.host = UNREACHABLE  # a keeps running but reaches no API server
        wait_until("a stops leading", lambda: not pair.a.is_leader, RENEW_DEADLINE + 1)
        wait_until("b takes over", lambda: pair.b.is_leader, LEASE_SECONDS + 3)
        time.sleep(0.2)
    sampler.assert_never_both()
    a_lost = sampler.first("a", leading=False, after=cut_at)
    b_won = sampler.first("b", leading=True, after=cut_at)
    assert a_lost - cut_at <= RENEW_DEADLINE + SAMPLE_EVERY + 0.1
    # a stopped at its last renewal + 2 s; b cannot take the lease before that renewal + 3 s
    assert b_won - a_lost >= LEASE_SECONDS - RENEW_DEADLINE - RETRY, (a_lost - cut_at, b_won - cut_at)
    assert pair.changes["a"] == [True, False]

    # the API server comes back: a sees b's record, does not lead, and does not write
    a_configuration.host = server
    wait_until(
        "a observes b's record",
        lambda: (
            pair.a.observed_record is not None and pair.a.observed_record.holder_identity == pair.b.identity
        ),
        3,
    )
    pair.b.stop(release=False)
    pair.a.stop()  # a's release must not touch a Lease it does not hold
    current = lease(pair.cluster, pair.name)
    assert current["spec"]["holderIdentity"] == pair.b.identity
    assert current["spec"]["leaseTransitions"] == 1
    assert not pair.a.is_leader
