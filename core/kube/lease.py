"""Leader election on a ``coordination.k8s.io/v1`` Lease, with client-go's semantics.

Each app that acts (the rebalancer, fleet mode) runs as two replicas and only the leader may act;
each subclasses :class:`LeaderElector` with its own default Lease name and leader gauge.

One step of the algorithm (:meth:`LeaderElector.try_acquire_or_renew`) reads the Lease and, when it
may, writes it back with the ``resourceVersion`` it read, so of two concurrent writers exactly one
wins (the other gets 409 Conflict). Whether another holder's lease has expired is judged on *our*
clock, from the moment we last saw the record change (``observed_time``), never from the remote
``renewTime``: clock skew between replicas cannot make a live leader look expired.

:attr:`LeaderElector.is_leader` is the gate the acting code must check before every action. It
is True only while our last successful renewal *started* less than ``renew_deadline_seconds`` ago,
and ``renew_deadline_seconds < lease_duration_seconds``: a leader that loses the API server stops
acting before any other replica can consider the lease expired.

Wire format: the generated 37.x client coerces any create/replace body, dicts included, into the
``V1Lease`` model and re-serialises its MicroTime fields with ``datetime.isoformat()``, which drops
the fraction when the microseconds are 0 and the API server then answers 400. So Lease reads and
writes go through the client's own HTTP layer (``api.api_client``: same configuration, TLS and
auth) with plain JSON and timestamps as core.kube.microtime writes them.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import kubernetes.client
from kubernetes.client.exceptions import ApiException
from prometheus_client import Gauge

from core.kube.microtime import micro_time

log = logging.getLogger(__name__)

JITTER_FACTOR = 1.2  # client-go's constraint: renew_deadline > JITTER_FACTOR * retry_period

_LEASES_PATH = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
_LEASE_PATH = _LEASES_PATH + "/{name}"

# --- clock -------------------------------------------------------------------------------------

_WALL_AT_IMPORT = datetime.now(UTC)
_MONOTONIC_AT_IMPORT = time.monotonic()


def utc_now() -> datetime:
    """UTC now, advanced by the monotonic clock (as Go's ``time.Now()`` measures durations).

    Durations that decide leadership must not jump when the wall clock is stepped backwards (a
    stale leader would keep acting). The value tracks wall time except for steps made after import.
    """
    return _WALL_AT_IMPORT + timedelta(seconds=time.monotonic() - _MONOTONIC_AT_IMPORT)


# --- pure decision helpers ---------------------------------------------------------------------


def validate_timing(
    lease_duration_seconds: float, renew_deadline_seconds: float, retry_period_seconds: float
) -> None:
    """lease_duration > renew_deadline > 1.2 × retry_period > 0; the lease duration in whole seconds."""
    values = (lease_duration_seconds, renew_deadline_seconds, retry_period_seconds)
    if not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
        raise ValueError(f"leader election timings must be finite numbers, got {values!r}")
    if not retry_period_seconds > 0:
        raise ValueError(f"retry_period_seconds must be > 0, got {retry_period_seconds}")
    if not renew_deadline_seconds > JITTER_FACTOR * retry_period_seconds:
        raise ValueError(
            f"renew_deadline_seconds ({renew_deadline_seconds}) must be greater than "
            f"{JITTER_FACTOR} × retry_period_seconds ({retry_period_seconds})"
        )
    if not lease_duration_seconds > renew_deadline_seconds:
        raise ValueError(
            f"lease_duration_seconds ({lease_duration_seconds}) must be greater than "
            f"renew_deadline_seconds ({renew_deadline_seconds}), so a leader that cannot renew "
            "stops acting before its lease can expire for the others"
        )
    if not float(lease_duration_seconds).is_integer():
        raise ValueError(
            f"lease_duration_seconds must be a whole number of seconds (the Lease stores an int32), "
            f"got {lease_duration_seconds}"
        )


@dataclass(frozen=True)
class LeaseRecord:
    """The Lease spec fields leader election uses; timestamps kept as the strings on the wire."""

    holder_identity: str = ""
    lease_duration_seconds: int = 0
    acquire_time: str | None = None
    renew_time: str | None = None
    lease_transitions: int = 0

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any] | None) -> LeaseRecord:
        spec = spec or {}
        return cls(
            holder_identity=str(spec.get("holderIdentity") or ""),
            lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            lease_transitions=int(spec.get("leaseTransitions") or 0),
        )

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "holderIdentity": self.holder_identity,
            "leaseDurationSeconds": self.lease_duration_seconds,
            "leaseTransitions": self.lease_transitions,
        }
        if self.acquire_time is not None:
            spec["acquireTime"] = self.acquire_time
        if self.renew_time is not None:
            spec["renewTime"] = self.renew_time
        return spec


def lease_expired(record: LeaseRecord, observed_time: datetime, now: datetime) -> bool:
    """client-go's rule, inverted: valid while ``observed_time + leaseDurationSeconds > now``.

    ``observed_time`` is when this process last saw the record change, on its own clock.
    """
    return observed_time + timedelta(seconds=record.lease_duration_seconds) <= now


def may_take(record: LeaseRecord, identity: str, observed_time: datetime, now: datetime) -> bool:
    """Whether we may write the Lease: it is ours, nobody holds it, or the holder's lease expired."""
    if record.holder_identity in ("", identity):
        return True
    return lease_expired(record, observed_time, now)


def next_record(
    current: LeaseRecord | None, *, identity: str, lease_duration_seconds: int, now: datetime
) -> LeaseRecord:
    """What to write: a renewal keeps acquireTime and leaseTransitions; a takeover counts one more."""
    stamp = micro_time(now)
    if current is None:
        return LeaseRecord(identity, lease_duration_seconds, stamp, stamp, 0)
    if current.holder_identity == identity:
        return LeaseRecord(
            identity,
            lease_duration_seconds,
            current.acquire_time or stamp,
            stamp,
            current.lease_transitions,
        )
    return LeaseRecord(identity, lease_duration_seconds, stamp, stamp, current.lease_transitions + 1)


def released_record(current: LeaseRecord, now: datetime) -> LeaseRecord:
    """client-go's release: no holder, a 1 s lease, the transition count kept."""
    stamp = micro_time(now)
    return LeaseRecord("", 1, stamp, stamp, current.lease_transitions)


# --- the elector -------------------------------------------------------------------------------


class LeaderElector:
    """One replica's view of the leader Lease. Thread-safe; :meth:`start` runs it in a daemon thread.

    An app's subclass names its Lease (``default_lease_name``) and the gauge that says whether this
    process leads (``leader_gauge``, 1 or 0).
    """

    default_lease_name: ClassVar[str] = ""
    leader_gauge: ClassVar[Gauge | None] = None

    def __init__(
        self,
        *,
        api: kubernetes.client.CoordinationV1Api,
        namespace: str,
        name: str | None = None,
        identity: str,
        lease_duration_seconds: float = 15,
        renew_deadline_seconds: float = 10,
        retry_period_seconds: float = 2,
        clock: Callable[[], datetime] = utc_now,
        on_change: Callable[[bool], None] | None = None,
        request_timeout_seconds: float | None = None,
    ) -> None:
        validate_timing(lease_duration_seconds, renew_deadline_seconds, retry_period_seconds)
        name = self.default_lease_name if name is None else name
        for label, value in (("namespace", namespace), ("name", name), ("identity", identity)):
            if not value:
                raise ValueError(f"{label} must not be empty")
        if request_timeout_seconds is not None and not request_timeout_seconds > 0:
            raise ValueError(f"request_timeout_seconds must be > 0, got {request_timeout_seconds}")
        self._api = api
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_duration_seconds = int(lease_duration_seconds)
        self.renew_deadline_seconds = float(renew_deadline_seconds)
        self.retry_period_seconds = float(retry_period_seconds)
        # One read or write; a step makes at most two, and the loop must come round again well
        # before the renew deadline.
        self.request_timeout_seconds = (
            float(request_timeout_seconds)
            if request_timeout_seconds is not None
            else max(self.retry_period_seconds, 1.0)
        )
        self._clock = clock
        self._on_change = on_change

        self._lock = threading.Lock()
        self._observed_record: LeaseRecord | None = None
        self._observed_time: datetime | None = None
        self._renewed_at: datetime | None = None  # when our last successful write *started*
        self._lease_object: dict[str, Any] | None = None  # the Lease as our last write returned it
        self._reported = False
        self._release_on_stop = True
        self._stop_event: threading.Event | None = None
        self._thread: threading.Thread | None = None

    # --- state -----------------------------------------------------------------------------
    @property
    def lease(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def observed_record(self) -> LeaseRecord | None:
        with self._lock:
            return self._observed_record

    @property
    def observed_time(self) -> datetime | None:
        """When this process last saw the Lease record change (its own clock)."""
        with self._lock:
            return self._observed_time

    @property
    def is_leader(self) -> bool:
        """True only while our last successful renewal started less than renew_deadline ago."""
        with self._lock:
            return self._leading(self._clock())

    def _leading(self, now: datetime) -> bool:
        return (
            self._renewed_at is not None
            and self._observed_record is not None
            and self._observed_record.holder_identity == self.identity
            and now - self._renewed_at < timedelta(seconds=self.renew_deadline_seconds)
        )

    def _fields(self, **more: object) -> dict[str, object]:
        return {"lease": self.lease, "identity": self.identity, **more}

    # --- one step --------------------------------------------------------------------------
    def try_acquire_or_renew(self) -> bool:
        """One step of client-go's tryAcquireOrRenew. True when we hold the Lease now; never raises."""
        now = self._clock()
        try:
            return self._step(now)
        except ApiException as error:
            if error.status == 409:
                # Someone wrote the Lease since we read it: whatever we believed is stale.
                with self._lock:
                    self._renewed_at = None
                log.info("lease write lost a race", extra=self._fields(status=409))
            else:
                log.warning(
                    "lease request failed",
                    extra=self._fields(status=error.status, reason=error.reason),
                )
            return False
        except Exception as error:
            log.warning("lease request failed", extra=self._fields(error=f"{type(error).__name__}: {error}"))
            return False

    def _step(self, now: datetime) -> bool:
        try:
            current = self._request("GET", _LEASE_PATH)
        except ApiException as error:
            if error.status != 404:
                raise
            return self._create(now)

        record = LeaseRecord.from_spec(current.get("spec"))
        with self._lock:
            if record != self._observed_record:
                self._observed_record = record
                self._observed_time = now
            observed_time = self._observed_time
            if record.holder_identity != self.identity:
                self._renewed_at = None
        assert observed_time is not None
        if not may_take(record, self.identity, observed_time, now):
            log.debug("lease held by another replica", extra=self._fields(holder=record.holder_identity))
            return False

        wanted = next_record(
            record, identity=self.identity, lease_duration_seconds=self.lease_duration_seconds, now=now
        )
        # The object as read, spec replaced: metadata.resourceVersion makes the PUT conditional,
        # and labels, annotations and spec fields we do not manage survive.
        body = {**current, "spec": {**(current.get("spec") or {}), **wanted.to_spec()}}
        written = self._request("PUT", _LEASE_PATH, body)
        self._wrote(written, wanted, now)
        if record.holder_identity != self.identity:
            log.info(
                "lease taken over",
                extra=self._fields(
                    previous_holder=record.holder_identity, transitions=wanted.lease_transitions
                ),
            )
        return True

    def _create(self, now: datetime) -> bool:
        wanted = next_record(
            None, identity=self.identity, lease_duration_seconds=self.lease_duration_seconds, now=now
        )
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": wanted.to_spec(),
        }
        try:
            written = self._request("POST", _LEASES_PATH, body)
        except ApiException as error:
            if error.status == 409:
                log.info("lease created by another replica first", extra=self._fields())
                return False
            raise
        self._wrote(written, wanted, now)
        log.info("lease created", extra=self._fields())
        return True

    def _wrote(self, written: dict[str, Any], record: LeaseRecord, now: datetime) -> None:
        with self._lock:
            self._lease_object = written
            self._observed_record = record
            self._observed_time = now
            self._renewed_at = now

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One Lease request through the client's HTTP layer, JSON as given; non-2xx raises ApiException."""
        client = self._api.api_client
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        request = client.param_serialize(
            method=method,
            resource_path=path,
            path_params={"namespace": self.namespace, "name": self.name},
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = client.call_api(*request, _request_timeout=self.request_timeout_seconds)
        data: bytes = response.read()
        if not 200 <= response.status <= 299:
            raise ApiException.from_response(
                http_resp=response, body=data.decode("utf-8", "replace"), data=None
            )
        decoded: dict[str, Any] = json.loads(data)
        return decoded

    # --- release ---------------------------------------------------------------------------
    def release(self) -> bool:
        """Stop leading now and, if the Lease is still ours, hand it over (no holder, 1 s).

        The other replica then takes it on its next step instead of waiting for expiry.
        Returns whether a release was written; never raises.
        """
        now = self._clock()
        with self._lock:
            self._renewed_at = None
            lease_object = self._lease_object
            record = self._observed_record
        self._report()
        if lease_object is None or record is None or record.holder_identity != self.identity:
            return False
        released = released_record(record, now)
        body = {**lease_object, "spec": {**(lease_object.get("spec") or {}), **released.to_spec()}}
        try:
            written = self._request("PUT", _LEASE_PATH, body)
        except Exception as error:
            status = error.status if isinstance(error, ApiException) else None
            log.warning(
                "lease release failed",
                extra=self._fields(status=status, error=f"{type(error).__name__}: {error}"),
            )
            return False
        with self._lock:
            self._lease_object = written
            self._observed_record = released
            self._observed_time = now
        log.info("lease released", extra=self._fields())
        return True

    # --- loop ------------------------------------------------------------------------------
    def _report(self) -> None:
        """Publish a change of is_leader: metric, log line, on_change. Called by the loop."""
        with self._lock:
            leading = self._leading(self._clock())
            if leading == self._reported:
                return
            self._reported = leading
        if self.leader_gauge is not None:
            self.leader_gauge.set(1 if leading else 0)
        log.info("leadership acquired" if leading else "leadership lost", extra=self._fields())
        if self._on_change is not None:
            try:
                self._on_change(leading)
            except Exception:
                log.exception("leadership on_change callback failed", extra=self._fields())

    def _wait_seconds(self, step_started: float) -> float:
        """Until the next step, or until our leadership lapses if that comes first."""
        wait = self.retry_period_seconds - (time.monotonic() - step_started)
        with self._lock:
            if self._renewed_at is not None:
                deadline = self._renewed_at + timedelta(seconds=self.renew_deadline_seconds)
                left = (deadline - self._clock()).total_seconds()
                if left > 0:  # leading: wake when it lapses, to report it on time
                    wait = min(wait, left + 0.001)
        return max(0.0, wait)

    def run(self, stop: threading.Event) -> None:
        """Acquire or renew every retry period until ``stop`` is set, then step down.

        On the way out leadership ends at once (``on_change(False)``) and, unless ``stop()`` was
        called with ``release=False``, the Lease is released for the other replica.
        """
        log.info("leader election started", extra=self._fields())
        try:
            while not stop.is_set():
                step_started = time.monotonic()
                self.try_acquire_or_renew()
                self._report()
                stop.wait(self._wait_seconds(step_started))
                self._report()
        finally:
            if self._release_on_stop:
                self.release()
            else:
                with self._lock:
                    self._renewed_at = None
                self._report()
            log.info("leader election stopped", extra=self._fields())

    def start(self) -> None:
        """Run the loop in a daemon thread."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError(f"leader election for {self.lease} is already running")
        self._release_on_stop = True
        self._stop_event = threading.Event()
        self._thread = threading.Thread(
            target=self.run, args=(self._stop_event,), name=f"leader-{self.name}", daemon=True
        )
        self._thread.start()

    def stop(self, *, release: bool = True, timeout: float | None = None) -> None:
        """Stop the loop and wait for it. ``release=False`` leaves the Lease to expire (tests: a crash)."""
        if self._thread is None or self._stop_event is None:
            return
        self._release_on_stop = release
        self._stop_event.set()
        self._thread.join(timeout)
        self._thread = None
        self._stop_event = None
