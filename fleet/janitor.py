"""``python -m fleet release-overdue``: release every held Job on the Karmada API server past its
release-by, and exit.

The fleet's janitor: a CronJob beside fleet mode, with its own identity on the Karmada API server
(manifests/fleet/deferral/karmada-janitor-rbac.yaml: list and patch Jobs and ResourceBindings, nothing
else). It needs no signals, no configuration and no Lease: it lifts the Job's suspension and
resumes its binding's scheduling, unpinned, so Karmada places it by the user's policy. It also
finishes a release whose binding write failed. ``--all`` releases every hold (uninstall). Exit
status 0 when every release was accepted (or there was none), 1 when some were not, 2 when no
Karmada API server.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from core.deferral import StartReason
from core.kube.caches import job_reflector
from core.logs import configure_logging
from fleet.deferral import FleetRelease, overdue_releases
from fleet.karmada import KarmadaApi, WriteOutcome, job_binding_reflector
from fleet.main import karmada_api_client
from fleet.settings import FleetProcessSettings

log = logging.getLogger("ecopulse.fleet")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fleet release-overdue",
        description="Release every Job Eco-Pulse holds on the Karmada API server whose release-by has "
        "passed (with --all: every one).",
    )
    p.add_argument("--all", action="store_true", help="release every hold now (uninstall)")
    return p


def main(argv: Sequence[str]) -> int:
    arguments = parser().parse_args(list(argv))
    configure_logging("INFO")
    api_client = karmada_api_client(FleetProcessSettings.from_env())
    if api_client is None:
        log.error("no Karmada API server to talk to: set ECOPULSE_KARMADA_KUBECONFIG or KUBECONFIG")
        return 2
    jobs = job_reflector(api_client)
    bindings = job_binding_reflector(api_client)
    jobs.relist()  # one list each, no watch: the janitor runs and exits
    bindings.relist()
    by_job = {b.job_key: b for b in bindings.items.values()}
    now = datetime.now(UTC)
    releases: tuple[FleetRelease, ...] = (
        tuple(
            FleetRelease(job=job, binding=by_job.get((job.namespace, job.name)), reason=StartReason.JANITOR)
            for job in jobs.items.values()
            if job.held
        )
        if arguments.all
        else overdue_releases(jobs.items.values(), bindings=by_job, now=now, reason=StartReason.JANITOR)
    )
    api = KarmadaApi(api_client, reporting_instance="fleet-janitor")
    accepted = 0
    for release in releases:
        job_result, binding_result = api.release_job(release, now=datetime.now(UTC))
        if job_result.outcome is WriteOutcome.WRITTEN and (
            binding_result is None or binding_result.outcome is WriteOutcome.WRITTEN
        ):
            accepted += 1
    log.info(
        "release-overdue done", extra={"released": accepted, "attempted": len(releases), "all": arguments.all}
    )
    return 0 if accepted == len(releases) else 1
