"""``python -m rebalancer release-overdue``: release every held Job past its release-by, and exit.

The janitor runs as a CronJob with its own ServiceAccount, allowed only to get, list and patch
Jobs: it needs no signals, no configuration and no Lease, so a deadline holds even while the
rebalancer is down, misconfigured or gone. ``--all`` releases every hold at once (what an
uninstall runs). Exit status 0 when every release was accepted (or there was none), 1 when
some were refused or unanswered (the CronJob then shows a failed run), 2 when no cluster.
"""

from __future__ import annotations

import argparse
import logging
import socket
from collections.abc import Sequence
from datetime import UTC, datetime

from core.kube.caches import job_reflector
from core.kube.client import load_api_client
from core.logs import configure_logging
from rebalancer.release import Release, ReleaseReason, release_overdue
from rebalancer.releaser import JobReleaser

log = logging.getLogger("ecopulse.rebalancer")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m rebalancer release-overdue",
        description="Release every Job Eco-Pulse holds whose release-by has passed (with --all: every one).",
    )
    p.add_argument("--all", action="store_true", help="release every hold now (uninstall)")
    return p


def main(argv: Sequence[str]) -> int:
    arguments = parser().parse_args(list(argv))
    configure_logging("INFO")
    api_client = load_api_client()
    if api_client is None:
        log.error("no cluster to talk to: run in-cluster or set KUBECONFIG")
        return 2
    jobs = job_reflector(api_client)
    jobs.relist()  # one list, no watch: the janitor runs and exits
    now = datetime.now(UTC)
    releaser = JobReleaser(
        api_client,
        reporting_instance=socket.gethostname(),
        clock=lambda: datetime.now(UTC),
        post_events=False,
    )
    releases: tuple[Release, ...] = (
        tuple(Release(job=job, reason=ReleaseReason.JANITOR) for job in jobs.items.values() if job.held)
        if arguments.all
        else release_overdue(jobs.items.values(), now=now, reason=ReleaseReason.JANITOR)
    )
    accepted = sum(1 for release in releases if releaser.release(release))
    log.info(
        "release-overdue done", extra={"released": accepted, "attempted": len(releases), "all": arguments.all}
    )
    return 0 if accepted == len(releases) else 1
