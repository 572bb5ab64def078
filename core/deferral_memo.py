"""Pure. What each held Job asks, read once and reused from pass to pass.

A release pass (the rebalancer's, fleet mode's) re-plans every held Job each cycle, but what a Job
asks (its intent, hints and the planner's request) only changes when the Job does, or what its
reading depends on (its namespace's annotations, the policies, the configuration, the regions it
may use). A watch replaces a Job's record when its resourceVersion changes, and a reload or a
watch event replaces those inputs whole, so "the same objects as last pass" means "nothing it
reads changed": the entry is reused. Anything else is read again. Without it a pass over 10,000
held Jobs spends most of its time re-reading the same annotations (bench/release.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from core.config import EcoPulseConfiguration
from core.deferral_hints import JobFacts
from core.model import PlacementHints

T = TypeVar("T")
# (hints, region) costs kept at most: past it they are forgotten and read again (a bound on memory
# whatever hints come and go; a pass over 10,000 held Jobs and 20 regions needs about 50,000).
MAX_EXTRAS = 250_000


def _same(a: object, b: object) -> bool:
    return a is b or a == b


class JobMemo(Generic[T]):
    """One entry per Job uid: ``read(job)``, reused while the Job record is the same object (its
    resourceVersion) and each of ``depends`` is the same object, or equal."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[JobFacts, tuple[object, ...], T]] = {}

    def get(self, job: JobFacts, depends: tuple[object, ...], read: Callable[[JobFacts], T]) -> T:
        found = self._entries.get(job.uid)
        if (
            found is not None
            and found[0] is job
            and len(found[1]) == len(depends)
            and all(_same(a, b) for a, b in zip(found[1], depends, strict=True))
        ):
            return found[2]
        value = read(job)
        if job.uid:
            self._entries[job.uid] = (job, depends, value)
        return value

    def keep_only(self, uids: Iterable[str]) -> None:
        """Forget the Jobs not in ``uids`` (released, deleted): the memo never outgrows the holds."""
        keep = set(uids)
        self._entries = {uid: entry for uid, entry in self._entries.items() if uid in keep}

    def __len__(self) -> int:
        return len(self._entries)


class PassMemo(Generic[T]):
    """What a release pass keeps from pass to pass: what each held Job asks (:attr:`jobs`), and
    the egress and latency cost of an hour by (hints, region) for the configuration in force
    (``core.deferral.ForecastTable``'s ``extras``), forgotten when it changes."""

    def __init__(self) -> None:
        self.jobs: JobMemo[T] = JobMemo()
        self._config: EcoPulseConfiguration | None = None
        self._extras: dict[tuple[PlacementHints, str], float] = {}

    def extras(self, config: EcoPulseConfiguration) -> dict[tuple[PlacementHints, str], float]:
        if not _same(self._config, config) or len(self._extras) > MAX_EXTRAS:
            self._config, self._extras = config, {}
        return self._extras
