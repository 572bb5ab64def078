"""The Helm chart against the real API server, in the session's cluster: its rendered output passes a
server-side dry-run apply; two releases install side by side next to the kustomize-style objects the
session already has (its MutatingWebhookConfiguration eco-pulse), one of them upgrades, both
uninstall; and an object that would collide is named before anything is installed.

A release's webhook has no server here (kwok runs no containers): its MutatingWebhookConfiguration
fails open (failurePolicy Ignore), and every release is uninstalled before its test ends.
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
def chart_cluster(cluster: LocalCluster) -> LocalCluster:
    cluster.kubectl("apply", "-f", "-", input_text=CERT_MANAGER_STAND_IN + "---\n" + PROMETHEUS_RULE_STAND_IN)
    cluster.kubectl(
        "wait",
        "--for=condition=Established",
        "crd/certificates.cert-manager.io",
        "crd/issuers.cert-manager.io",
        "crd/prometheusrules.monitoring.coreos.com",
        "--timeout=60s",
    )
    return cluster


# Kwok runs no container: this label has it complete the janitor's pods, the uninstall hook's
# (the release of every held Job, docs/deferral.md) among them, as a kubelet would once the
# command exited 0. Given to every install and upgrade: the hook renders with the last values.
COMPLETES = ("--set-string", "janitor.podLabels.e2e\\.ecopulse\\.io/completes=true")


def helm_result(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    extra = COMPLETES if args[:1] in (("install",), ("upgrade",)) else ()
    return subprocess.run(
        [str(helm_binary()), "--kubeconfig", str(cluster.kubeconfig), *args, *extra],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def helm(cluster: LocalCluster, *args: str) -> str:
    done = helm_result(cluster, *args)
    assert done.returncode == 0, f"helm {' '.join(args)} failed: {done.stderr}"
    return done.stdout


@pytest.fixture
def releases(chart_cluster: LocalCluster) -> Iterator[list[tuple[str, str]]]:
    """(release, namespace) pairs a test installs; each is uninstalled and its namespace deleted."""
    installed: list[tuple[str, str]] = []
    yield installed
    for release, namespace in installed:
        helm_result(chart_cluster, "uninstall", release, "--namespace", namespace, "--wait")
    for namespace in {namespace for _, namespace in installed}:
        chart_cluster.kubectl_result("delete", "namespace", namespace, "--wait=false", "--ignore-not-found")


def cluster_name(base: str, release: str, namespace: str) -> str:
    return f"{base}.{namespace}" + ("" if release == "eco-pulse" else f".{release}")


def webhook_configurations(cluster: LocalCluster) -> set[str]:
    out = cluster.kubectl("get", "mutatingwebhookconfiguration", "-o", "name")
    return {line.rsplit("/", 1)[-1] for line in out.split()}


def server_dry_run(cluster: LocalCluster, *values: str) -> str:
    """The release eco-pulse in namespace eco-pulse as `helm template` renders it (with its CRDs),
    applied as a server-side dry run; kubectl's report."""
    rendered = helm(
        cluster, "template", "eco-pulse", str(CHART), "--namespace", "eco-pulse", "--include-crds", *values
    )
    return cluster.kubectl("apply", "--dry-run=server", "-f", "-", input_text=rendered)


@pytest.mark.parametrize(
    "values",
    [
        [],
        ["--set", "certificates.mode=cert-manager", "--set", "alerts.prometheusRule=true"],
        ["--set", "rebalancer.enabled=false", "--set", "extender.enabled=false"],
        ["--set", "fleet.deferral.enabled=true"],
    ],
    ids=["defaults", "cert-manager-and-prometheus-rule", "webhook-only", "fleet-deferral-host"],
)
def test_helm_template_passes_a_server_side_dry_run(chart_cluster: LocalCluster, values: list[str]) -> None:
    out = server_dry_run(chart_cluster, *values)
    name = cluster_name("eco-pulse", "eco-pulse", "eco-pulse")
    assert f"mutatingwebhookconfiguration.admissionregistration.k8s.io/{name} created (server dry run)" in out
    assert "customresourcedefinition.apiextensions.k8s.io/ecopulsepolicies.ecopulse.io" in out


def test_two_releases_side_by_side_then_one_upgrades(
    chart_cluster: LocalCluster, releases: list[tuple[str, str]]
) -> None:
    cluster = chart_cluster
    # The session's own webhook is registered from the kustomize base (MutatingWebhookConfiguration
    # eco-pulse): a release named eco-pulse must install next to it, and a second one next to both.
    assert "eco-pulse" in webhook_configurations(cluster)
    pairs = [("eco-pulse", "eco-pulse-helm-a"), ("green", "eco-pulse-helm-b")]
    for release, namespace in pairs:
        releases.append((release, namespace))
        helm(cluster, "install", release, str(CHART), "--namespace", namespace, "--create-namespace")
    for release, namespace in pairs:
        status = json.loads(helm(cluster, "status", release, "--namespace", namespace, "--output", "json"))
        assert status["info"]["status"] == "deployed"
        for kind, name in (
            ("deployment", "eco-pulse-webhook"),
            ("deployment", "eco-pulse-rebalancer"),
            ("configmap", "eco-pulse-config"),
            ("secret", "eco-pulse-webhook-tls"),
        ):
            cluster.kubectl("get", kind, name, "--namespace", namespace)
        hook = json.loads(
            cluster.kubectl(
                "get",
                "mutatingwebhookconfiguration",
                cluster_name("eco-pulse", release, namespace),
                "-o",
                "json",
            )
        )
        assert hook["webhooks"][0]["clientConfig"]["service"]["namespace"] == namespace
        excluded = hook["webhooks"][0]["namespaceSelector"]["matchExpressions"][0]["values"]
        assert namespace in excluded  # never mutate our own pods
        for component in ("webhook", "rebalancer"):
            name = cluster_name(f"eco-pulse-{component}", release, namespace)
            binding = json.loads(cluster.kubectl("get", "clusterrolebinding", name, "-o", "json"))
            assert binding["roleRef"]["name"] == name
            assert binding["subjects"] == [
                {"kind": "ServiceAccount", "name": f"eco-pulse-{component}", "namespace": namespace}
            ]
    cluster.kubectl("get", "crd", "ecopulsepolicies.ecopulse.io", "clusterecopulsepolicies.ecopulse.io")

    def ca(namespace: str) -> str:
        secret = json.loads(
            cluster.kubectl("get", "secret", "eco-pulse-webhook-tls", "-n", namespace, "-o", "json")
        )
        return str(secret["data"]["ca.crt"])

    (first, first_ns), (second, second_ns) = pairs
    before = {namespace: ca(namespace) for _, namespace in pairs}
    helm(cluster, "upgrade", first, str(CHART), "--namespace", first_ns, "--set", "rebalancer.dryRun=false")
    assert ca(first_ns) == before[first_ns]  # the generated CA is kept: the caBundle stays valid
    config = cluster.kubectl(
        "get", "configmap", "eco-pulse-config", "-n", first_ns, "-o", "jsonpath={.data.config\\.yaml}"
    )
    assert "dryRun: false" in config
    other = json.loads(helm(cluster, "status", second, "--namespace", second_ns, "--output", "json"))
    assert other["version"] == 1 and ca(second_ns) == before[second_ns]  # the other release untouched

    helm(cluster, "uninstall", first, "--namespace", first_ns, "--wait")
    # The pre-delete hook released every held Job and, succeeded, was deleted by its policy.
    assert "eco-pulse-release-all" not in cluster.kubectl("get", "jobs", "-n", first_ns, "-o", "name")
    gone = cluster.kubectl_result("get", "deployment", "-n", first_ns, "-o", "name").stdout
    assert gone.strip() == ""
    left = webhook_configurations(cluster)
    assert cluster_name("eco-pulse", first, first_ns) not in left
    assert {"eco-pulse", cluster_name("eco-pulse", second, second_ns)} <= left  # the others stay


def test_a_collision_is_named_and_nothing_is_installed(
    chart_cluster: LocalCluster, releases: list[tuple[str, str]]
) -> None:
    cluster = chart_cluster
    namespace = "eco-pulse-helm-c"
    releases.append(("eco-pulse", namespace))
    cluster.kubectl("create", "namespace", namespace)
    # A kustomize-style install already in the namespace, and a hand-made ClusterRole with the name
    # this release would give its own.
    cluster.kubectl(
        "create", "deployment", "eco-pulse-webhook", "--image=registry.example/x:1", "--namespace", namespace
    )
    role = cluster_name("eco-pulse-rebalancer", "eco-pulse", namespace)
    cluster.kubectl("create", "clusterrole", role, "--verb=get", "--resource=pods")
    try:
        done = helm_result(cluster, "install", "eco-pulse", str(CHART), "--namespace", namespace)
        assert done.returncode != 0
        message = done.stderr
        assert f"Deployment eco-pulse-webhook in namespace {namespace}: not managed by Helm" in message
        assert f"ClusterRole {role}: not managed by Helm" in message
        assert "nothing was installed" in message and "a namespace of its own" in message
        # nothing half-installed: no release, none of the release's objects
        status = helm_result(cluster, "status", "eco-pulse", "--namespace", namespace)
        assert status.returncode != 0 and "not found" in status.stderr, status.stdout  # not even a failed one
        assert helm(cluster, "list", "--namespace", namespace, "--short").strip() == ""
        made = cluster.kubectl(
            "get",
            "secret,configmap,serviceaccount",
            "-n",
            namespace,
            "-l",
            "app.kubernetes.io/instance",
            "-o",
            "name",
        )
        assert made.strip() == ""
        assert cluster_name("eco-pulse", "eco-pulse", namespace) not in webhook_configurations(cluster)
        # What the message says works: the same chart in a namespace of its own installs.
        helm(
            cluster, "install", "eco-pulse", str(CHART), "--namespace", f"{namespace}-2", "--create-namespace"
        )
        releases.append(("eco-pulse", f"{namespace}-2"))
    finally:
        cluster.kubectl_result("delete", "clusterrole", role, "--ignore-not-found")
