"""The shipped manifests, accepted by the real API server (server-side dry run, nothing persisted)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from certs.issue import issue_ca, issue_serving_cert, write_bundle
from tests.e2e.cluster import REPO, ClusterError, LocalCluster

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


# What an operator adds on top of an overlay (docs/hardening.md): the control plane's range.
CONTROL_PLANE_OVERLAY = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [{target}]
patches:
  - target: {{kind: NetworkPolicy, name: eco-pulse-webhook}}
    patch: |-
      - op: replace
        path: /spec/ingress/0/from/0/ipBlock/cidr
        value: 10.0.0.0/24
"""


def with_control_plane_cidr(tmp_path: Path, overlay: str) -> Path:
    manifests = tmp_path / "manifests"
    shutil.copytree(REPO / "manifests", manifests, ignore=shutil.ignore_patterns("tls"))
    mine = tmp_path / "mine"
    mine.mkdir()
    target = Path("..") / "manifests" / overlay
    (mine / "kustomization.yaml").write_text(CONTROL_PLANE_OVERLAY.format(target=target))
    return mine


@pytest.mark.parametrize("overlay", ["base", "overlays/production"])
def test_server_side_dry_run_accepts(prepared: LocalCluster, overlay: str, tmp_path: Path) -> None:
    out = prepared.kubectl("apply", "--dry-run=server", "-k", str(with_control_plane_cidr(tmp_path, overlay)))
    assert "mutatingwebhookconfiguration.admissionregistration.k8s.io/eco-pulse" in out
    assert "deployment.apps/eco-pulse-webhook" in out
    assert "networkpolicy.networking.k8s.io/eco-pulse-webhook" in out


def test_an_unset_control_plane_cidr_is_refused_loudly_and_only_the_policy(prepared: LocalCluster) -> None:
    with pytest.raises(ClusterError) as refused:
        prepared.kubectl(
            "apply", "--dry-run=server", "-k", str(REPO / "manifests" / "overlays" / "production")
        )
    message = str(refused.value)
    assert 'The NetworkPolicy "eco-pulse-webhook" is invalid' in message
    assert "spec.ingress[0].from[0].ipBlock.cidr" in message
    assert "SET-THE-CONTROL-PLANE-CIDR-see-docs-hardening.md" in message


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
    assert "networkpolicy.networking.k8s.io/eco-pulse-webhook" in out  # kind's range is set
