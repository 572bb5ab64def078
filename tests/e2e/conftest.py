"""The session's real control plane. Built from pinned upstream sources by hack/build-k8s.sh.

Set ECOPULSE_SKIP_E2E=1 to skip these tests explicitly (say why in the commit); they never skip
on their own: a control plane that cannot be built is a failure, not a pass.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.cluster import LocalCluster
from tests.e2e.fleet import Fleet, binaries_built
from tests.e2e.kueue import LocalKueue


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.path):
            item.add_marker(pytest.mark.e2e)
            if os.environ.get("ECOPULSE_SKIP_E2E") == "1":
                item.add_marker(pytest.mark.skip(reason="ECOPULSE_SKIP_E2E=1"))


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    root = Path(tmp_path_factory.mktemp("cluster"))
    local = LocalCluster(root=root)
    local.up()
    try:
        yield local
    finally:
        local.down()


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """A real Karmada fleet (tests/e2e/fleet.py): Karmada and three member clusters, one region each.

    Skipped only when its binaries are not built (`make karmada`; `make test` builds them first). In CI
    (``CI`` set) a missing build is a failure, never a skip.
    """
    missing = binaries_built()
    if missing is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the fleet's binaries are not built in CI: {missing}")
        pytest.skip(f"the fleet's binaries are not built: {missing}")
    local = Fleet(root=Path(tmp_path_factory.mktemp("fleet")))
    local.up()
    try:
        yield local
    finally:
        local.down()


@pytest.fixture(scope="session")
def kueue(cluster: LocalCluster) -> Iterator[LocalKueue]:
    """A real Kueue (tests/e2e/kueue.py) on the session's cluster: started on first use, stopped at the end."""
    local = LocalKueue(cluster=cluster, root=cluster.root / "kueue")
    local.start()
    try:
        yield local
    finally:
        local.stop()
