"""The Helm chart against the real API server: its rendered output passes a server-side dry-run
apply, and `helm install`, `helm upgrade` and `helm uninstall` work.

A control plane of its own (no webhook of ours, no Prometheus): the chart installs cluster-wide
objects named like the session cluster's (the MutatingWebhookConfiguration eco-pulse), which must
not replace the ones the other e2e tests use.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.cluster import REPO, LocalCluster
from tests.e2e.test_manifests_e2e import CERT_MANAGER_STAND_IN

CHART = REPO / "charts" / "eco-pulse"
PROMETHEUS_RULE_STAND_IN = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: prometheusrules.monitoring.coreos.com}
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: PrometheusRule, plural: prometheusrules, singular: prometheusrule}
  versions:
    - name: v1
      served: true
      storage: true
      schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"""


def helm_binary() -> Path:
    done = subprocess.run(
        [str(REPO / "hack" / "build-helm.sh")], capture_output=True, text=True, timeout=3600, check=True
    )
    return Path(done.stdout.strip().splitlines()[-1]) / "helm"


@pytest.fixture(scope="module")
def chart_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    local = LocalCluster(root=Path(tmp_path_factory.mktemp("chart-cluster")))
    local.up(webhook=False, prometheus=False)
    try:
        local.kubectl(
            "apply", "-f", "-", input_text=CERT_MANAGER_STAND_IN + "---\n" + PROMETHEUS_RULE_STAND_IN
        )
        local.kubectl(
            "wait",
            "--for=condition=Established",
            "crd/certificates.cert-manager.io",
            "crd/issuers.cert-manager.io",
            "crd/prometheusrules.monitoring.coreos.com",
            "--timeout=60s",
        )
        yield local
    finally:
        local.down()


def helm(cluster: LocalCluster, *args: str) -> str:
    done = subprocess.run(
        [str(helm_binary()), "--kubeconfig", str(cluster.kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"helm {' '.join(args)} failed: {done.stderr}"
    return done.stdout


@pytest.mark.parametrize(
    "values",
    [
        [],
        ["--set", "certificates.mode=cert-manager", "--set", "alerts.prometheusRule=true"],
        ["--set", "rebalancer.enabled=false", "--set", "extender.enabled=false"],
    ],
    ids=["defaults", "cert-manager-and-prometheus-rule", "webhook-only"],
)
def test_helm_template_passes_a_server_side_dry_run(chart_cluster: LocalCluster, values: list[str]) -> None:
    rendered = helm(
        chart_cluster,
        "template",
        "eco-pulse",
        str(CHART),
        "--namespace",
        "eco-pulse",
        "--include-crds",
        *values,
    )
    out = chart_cluster.kubectl("apply", "--dry-run=server", "-f", "-", input_text=rendered)
    assert (
        "mutatingwebhookconfiguration.admissionregistration.k8s.io/eco-pulse created (server dry run)" in out
    )
    assert "customresourcedefinition.apiextensions.k8s.io/ecopulsepolicies.ecopulse.io" in out


# Kwok runs no container: this label has it complete the janitor's pods, the uninstall hook's
# (the release of every held Job, docs/deferral.md) among them, as a kubelet would once the
# command exited 0. Given to every install and upgrade: the hook renders with the last values.
COMPLETES = ("--set-string", "janitor.podLabels.e2e\\.ecopulse\\.io/completes=true")


def test_helm_install_upgrade_and_uninstall(chart_cluster: LocalCluster) -> None:
    cluster = chart_cluster
    namespace = "eco-pulse-helm"
    helm(
        cluster,
        "install",
        "eco-pulse",
        str(CHART),
        "--namespace",
        namespace,
        "--create-namespace",
        *COMPLETES,
    )
    status = json.loads(helm(cluster, "status", "eco-pulse", "--namespace", namespace, "--output", "json"))
    assert status["info"]["status"] == "deployed"
    for kind, name in (
        ("deployment", "eco-pulse-webhook"),
        ("deployment", "eco-pulse-rebalancer"),
        ("configmap", "eco-pulse-config"),
        ("secret", "eco-pulse-webhook-tls"),
    ):
        cluster.kubectl("get", kind, name, "--namespace", namespace)
    cluster.kubectl("get", "crd", "ecopulsepolicies.ecopulse.io", "clusterecopulsepolicies.ecopulse.io")
    hook = json.loads(cluster.kubectl("get", "mutatingwebhookconfiguration", "eco-pulse", "-o", "json"))
    assert hook["webhooks"][0]["clientConfig"]["service"]["namespace"] == namespace
    excluded = hook["webhooks"][0]["namespaceSelector"]["matchExpressions"][0]["values"]
    assert namespace in excluded  # never mutate our own pods

    def ca() -> str:
        secret = json.loads(
            cluster.kubectl("get", "secret", "eco-pulse-webhook-tls", "-n", namespace, "-o", "json")
        )
        return str(secret["data"]["ca.crt"])

    before = ca()
    helm(
        cluster,
        "upgrade",
        "eco-pulse",
        str(CHART),
        "--namespace",
        namespace,
        "--set",
        "rebalancer.dryRun=false",
        *COMPLETES,
    )
    assert ca() == before  # the generated CA is kept: the caBundle stays valid across upgrades
    config = cluster.kubectl(
        "get", "configmap", "eco-pulse-config", "-n", namespace, "-o", "jsonpath={.data.config\\.yaml}"
    )
    assert "dryRun: false" in config

    helm(cluster, "uninstall", "eco-pulse", "--namespace", namespace, "--wait")
    # The pre-delete hook ran (and, succeeded, was deleted by its policy): its Job is gone too.
    assert "eco-pulse-release-all" not in cluster.kubectl("get", "jobs", "-n", namespace, "-o", "name")
    gone = cluster.kubectl_result("get", "deployment", "-n", namespace, "-o", "name").stdout
    assert gone.strip() == ""
    assert "eco-pulse" not in cluster.kubectl("get", "mutatingwebhookconfiguration", "-o", "name")
