"""The shipped manifests, accepted by the real API server (server-side dry run, nothing persisted)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from certs.issue import issue_ca, issue_serving_cert, write_bundle
from tests.e2e.cluster import REPO, LocalCluster

# cert-manager is not part of this control plane: stand-in CRDs of our own that accept any
# Certificate and Issuer, so the rest of the production overlay is still checked by the server.
CERT_MANAGER_STAND_IN = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: certificates.cert-manager.io}
spec:
  group: cert-manager.io
  scope: Namespaced
  names: {kind: Certificate, plural: certificates, singular: certificate}
  versions:
    - name: v1
      served: true
      storage: true
      schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: issuers.cert-manager.io}
spec:
  group: cert-manager.io
  scope: Namespaced
  names: {kind: Issuer, plural: issuers, singular: issuer}
  versions:
    - name: v1
      served: true
      storage: true
      schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"""


@pytest.fixture(scope="module")
def prepared(cluster: LocalCluster) -> LocalCluster:
    # A dry run creates nothing, so the namespace the objects live in must exist for real.
    cluster.kubectl("apply", "-f", str(REPO / "manifests" / "base" / "namespace.yaml"))
    cluster.kubectl("apply", "-f", "-", input_text=CERT_MANAGER_STAND_IN)
    cluster.kubectl(
        "wait",
        "--for=condition=Established",
        "crd/certificates.cert-manager.io",
        "crd/issuers.cert-manager.io",
        "--timeout=60s",
    )
    return cluster


@pytest.mark.parametrize("overlay", ["base", "overlays/production"])
def test_server_side_dry_run_accepts(prepared: LocalCluster, overlay: str) -> None:
    out = prepared.kubectl("apply", "--dry-run=server", "-k", str(REPO / "manifests" / overlay))
    assert "mutatingwebhookconfiguration.admissionregistration.k8s.io/eco-pulse" in out
    assert "deployment.apps/eco-pulse-webhook" in out


def test_server_side_dry_run_accepts_the_kind_overlay(prepared: LocalCluster, tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    shutil.copytree(REPO / "manifests", manifests)
    ca = issue_ca("kind test CA")
    write_bundle(
        manifests / "overlays" / "kind" / "tls",
        ca=ca,
        leaf=issue_serving_cert(ca, service="eco-pulse-webhook", namespace="eco-pulse"),
    )
    out = prepared.kubectl("apply", "--dry-run=server", "-k", str(manifests / "overlays" / "kind"))
    assert "secret/eco-pulse-webhook-tls" in out
    assert "mutatingwebhookconfiguration.admissionregistration.k8s.io/eco-pulse" in out
