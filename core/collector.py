"""Python's cyclic garbage collector, paused around a burst of allocation that makes no cycles.

A rebalancer plan allocates a record for most of the pods it reads (refusals, candidates, keys),
and they all live until the plan is returned. Every 700 allocations the collector runs and walks
the young ones, and now and then the whole pod cache: about a quarter of a plan's time at 100,000
pods (bench/planner.py), for no garbage, since reference counting frees what a plan drops."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collections_paused() -> Iterator[None]:
    """No automatic collection inside the block; the collector's state is restored after it. Other
    threads' cycles wait until then too: keep the block to a bounded computation."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
