"""The local cluster holds still under load: with every core busy for a while, no kwok node's Ready
condition changes and the node lifecycle controller records no NodeNotReady.

The window is longer than the controller's --node-monitor-grace-period (120 s, tests/e2e/cluster.py):
a node nobody heartbeats is marked NotReady once that long has passed without a status update or a
Lease renewal. kwok flips it back within a second, so only the transition times and the Events show
it afterwards; sampling the condition would miss it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime

from tests.e2e.cluster import LocalCluster

GRACE_SECONDS = 120  # kube-controller-manager --node-monitor-grace-period in tests/e2e/cluster.py
LOAD_SECONDS = 90
WATCH_SECONDS = GRACE_SECONDS + 15  # a whole grace period, and the controller's 5 s monitor period


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_nodes_stay_ready_while_the_machine_is_busy(cluster: LocalCluster) -> None:
    started = datetime.now(UTC).replace(microsecond=0)
    burners = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"import time\nend = time.time() + {LOAD_SECONDS}\nwhile time.time() < end: pass",
            ]
        )
        for _ in range((os.cpu_count() or 2) + 1)
    ]
    try:
        time.sleep(WATCH_SECONDS)
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    nodes = cluster.get("/api/v1/nodes?labelSelector=type%3Dkwok")["items"]
    assert nodes
    flipped = {}
    for node in nodes:
        ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        if ready["status"] != "True" or _parse(ready["lastTransitionTime"]) >= started:
            flipped[node["metadata"]["name"]] = (
                ready["status"],
                ready.get("reason"),
                ready["lastTransitionTime"],
            )
    assert not flipped, f"Ready changed since {started.isoformat()}: {flipped}"
    events = cluster.get("/api/v1/events?fieldSelector=reason%3DNodeNotReady")["items"]
    recent = [
        (e["involvedObject"]["name"], e.get("lastTimestamp") or e.get("eventTime"))
        for e in events
        if _parse(e.get("lastTimestamp") or e.get("eventTime") or "1970-01-01T00:00:00Z") >= started
    ]
    assert not recent, f"NodeNotReady since {started.isoformat()}: {recent}"
    # kwok renews a Lease for each node, as a kubelet does: what the controller's heartbeat is.
    leases = cluster.get("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases")["items"]
    renewed = {lease["metadata"]["name"]: _parse(lease["spec"]["renewTime"]) for lease in leases}
    for node in nodes:
        assert renewed.get(node["metadata"]["name"], started) > started, node["metadata"]["name"]
