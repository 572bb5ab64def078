"""core.collector: the collector is paused inside the block and left as it was found after it."""

from __future__ import annotations

import gc

import pytest

from core.collector import collections_paused


@pytest.mark.parametrize("enabled_before", [True, False])
def test_the_collector_is_paused_inside_and_restored_after(enabled_before: bool) -> None:
    was = gc.isenabled()
    try:
        gc.enable() if enabled_before else gc.disable()
        with collections_paused():
            assert not gc.isenabled()
        assert gc.isenabled() is enabled_before
    finally:
        gc.enable() if was else gc.disable()


def test_the_collector_is_restored_when_the_block_raises() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collections_paused():
        raise RuntimeError("plan failed")
    assert gc.isenabled()
