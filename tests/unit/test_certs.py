"""certs: what gets issued, what lands on disk, the CLI, and a real TLS handshake."""

from __future__ import annotations

import base64
import errno
import ipaddress
import os
import socket
import ssl
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import certs.issue
from certs.__main__ import main
from certs.issue import (
    CA_VALIDITY_DAYS,
    CLOCK_SKEW_BACKDATE_MINUTES,
    LEAF_VALIDITY_DAYS,
    CertFileError,
    CertificateAuthority,
    CertsError,
    InvalidInputError,
    LeafCertificate,
    PrivateKey,
    ca_bundle_b64,
    generate_ec_key,
    generate_rsa_key,
    issue_ca,
    issue_leaf_cert,
    issue_serving_cert,
    load_ca,
    load_ca_from_dir,
    write_bundle,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICE = "eco-pulse"
NAMESPACE = "eco"
SERVICE_DNS = (
    "eco-pulse",
    "eco-pulse.eco",
    "eco-pulse.eco.svc",
    "eco-pulse.eco.svc.cluster.local",
)
BUNDLE_FILES = {"ca.crt", "tls.crt", "tls.key"}

E = TypeVar("E", bound=x509.ExtensionType)


def _ext(cert: x509.Certificate, kind: type[E]) -> x509.Extension[E]:
    return cert.extensions.get_extension_for_class(kind)


def _san_dns(cert: x509.Certificate) -> list[str]:
    return _ext(cert, x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)


def _san_ips(cert: x509.Certificate) -> list[str]:
    ips = _ext(cert, x509.SubjectAlternativeName).value.get_values_for_type(x509.IPAddress)
    return [str(ip) for ip in ips]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# RSA key generation is the slow part of this file; do it once.
@pytest.fixture(scope="module")
def rsa_key() -> PrivateKey:
    return generate_rsa_key()


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return issue_ca("test CA")


@pytest.fixture(params=["ec", "rsa"])
def leaf_key(request: pytest.FixtureRequest, rsa_key: PrivateKey) -> PrivateKey:
    return rsa_key if request.param == "rsa" else generate_ec_key()


@pytest.fixture
def serving(ca: CertificateAuthority) -> LeafCertificate:
    return issue_serving_cert(ca, service=SERVICE, namespace=NAMESPACE)


# --- the CA ---------------------------------------------------------------------------------------


def test_ca_has_ca_extensions(ca: CertificateAuthority) -> None:
    constraints = _ext(ca.cert, x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca
    assert constraints.value.path_length == 0

    usage = _ext(ca.cert, x509.KeyUsage)
    assert usage.critical
    assert usage.value.key_cert_sign
    assert usage.value.crl_sign
    assert not usage.value.digital_signature

    ski = _ext(ca.cert, x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(ca.key.public_key())
    assert ca.cert.subject == ca.cert.issuer
    ca.cert.verify_directly_issued_by(ca.cert)


def test_ca_validity_is_ten_years_backdated_for_clock_skew(ca: CertificateAuthority) -> None:
    expected_start = datetime.now(UTC) - timedelta(minutes=CLOCK_SKEW_BACKDATE_MINUTES)
    assert abs(ca.cert.not_valid_before_utc - expected_start) < timedelta(minutes=1)
    lifetime = ca.cert.not_valid_after_utc - ca.cert.not_valid_before_utc
    assert lifetime == timedelta(days=CA_VALIDITY_DAYS)


def test_ca_pem_properties_round_trip(ca: CertificateAuthority) -> None:
    assert x509.load_pem_x509_certificate(ca.cert_pem) == ca.cert
    assert ca.key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")


# --- serving and leaf certificates ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("dns_names", "ip_addresses", "cluster_domain", "expected_dns", "expected_ips"),
    [
        pytest.param((), (), "cluster.local", SERVICE_DNS, [], id="service-names-only"),
        pytest.param(
            ("webhook.example.com",),
            ("10.0.0.7",),
            "cluster.local",
            (*SERVICE_DNS, "webhook.example.com"),
            ["10.0.0.7"],
            id="extra-dns-and-ip",
        ),
        pytest.param(
            ("Extra.Example.COM", "eco-pulse.eco.svc", "extra.example.com"),
            ("::1", "127.0.0.1", ipaddress.ip_address("127.0.0.1")),
            "cluster.local",
            (*SERVICE_DNS, "extra.example.com"),
            ["::1", "127.0.0.1"],
            id="lowercased-and-deduplicated",
        ),
        pytest.param(("*.eco.svc",), (), "cluster.local", (*SERVICE_DNS, "*.eco.svc"), [], id="wildcard"),
        pytest.param(
            (),
            (),
            "corp.internal.",
            (*SERVICE_DNS[:3], "eco-pulse.eco.svc.corp.internal"),
            [],
            id="custom-cluster-domain",
        ),
    ],
)
def test_serving_cert_sans(
    ca: CertificateAuthority,
    dns_names: tuple[str, ...],
    ip_addresses: tuple[str | ipaddress.IPv4Address | ipaddress.IPv6Address, ...],
    cluster_domain: str,
    expected_dns: tuple[str, ...],
    expected_ips: list[str],
) -> None:
    leaf = issue_serving_cert(
        ca,
        service=SERVICE,
        namespace=NAMESPACE,
        dns_names=dns_names,
        ip_addresses=ip_addresses,
        cluster_domain=cluster_domain,
    )
    assert _san_dns(leaf.cert) == list(expected_dns)
    assert _san_ips(leaf.cert) == expected_ips
    assert not _ext(leaf.cert, x509.SubjectAlternativeName).critical


def test_serving_cert_extensions(ca: CertificateAuthority, leaf_key: PrivateKey) -> None:
    leaf = issue_serving_cert(ca, service=SERVICE, namespace=NAMESPACE, key=leaf_key)
    cert = leaf.cert
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "eco-pulse.eco.svc"
    assert cert.issuer == ca.cert.subject

    constraints = _ext(cert, x509.BasicConstraints)
    assert constraints.critical
    assert not constraints.value.ca

    usage = _ext(cert, x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    # RSA key exchange encrypts with the key; ECDSA keys only sign.
    assert usage.value.key_encipherment == isinstance(leaf_key, rsa.RSAPrivateKey)
    assert not usage.value.key_cert_sign

    assert list(_ext(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    ca_ski = _ext(ca.cert, x509.SubjectKeyIdentifier).value
    assert _ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier == ca_ski.digest
    assert _ext(cert, x509.SubjectKeyIdentifier).value.digest != ca_ski.digest
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=LEAF_VALIDITY_DAYS)
    cert.verify_directly_issued_by(ca.cert)


def test_rsa_ca_signs_verifiable_leaves(rsa_key: PrivateKey) -> None:
    rsa_ca = issue_ca("rsa CA", key=rsa_key)
    leaf = issue_serving_cert(rsa_ca, service=SERVICE, namespace=NAMESPACE)
    leaf.cert.verify_directly_issued_by(rsa_ca.cert)


@pytest.mark.parametrize(
    ("other_name", "error"),
    [
        pytest.param("test CA", InvalidSignature, id="same-name-other-key"),
        pytest.param("someone else", ValueError, id="other-name"),
    ],
)
def test_chain_does_not_verify_against_another_ca(
    serving: LeafCertificate, other_name: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        serving.cert.verify_directly_issued_by(issue_ca(other_name).cert)


@pytest.mark.parametrize(
    ("kwargs", "expected_usages", "expected_orgs", "expected_dns", "expected_ips"),
    [
        pytest.param(
            {
                "common_name": "kube-apiserver",
                "dns_names": (
                    "localhost",
                    "kubernetes",
                    "kubernetes.default",
                    "kubernetes.default.svc",
                    "kubernetes.default.svc.cluster.local",
                ),
                "ip_addresses": ("127.0.0.1", "10.96.0.1"),
            },
            [ExtendedKeyUsageOID.SERVER_AUTH],
            [],
            [
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ],
            ["127.0.0.1", "10.96.0.1"],
            id="apiserver-serving",
        ),
        pytest.param(
            {"common_name": "admin", "organizations": ("system:masters",), "server": False, "client": True},
            [ExtendedKeyUsageOID.CLIENT_AUTH],
            ["system:masters"],
            None,
            None,
            id="admin-client",
        ),
        pytest.param(
            {
                "common_name": "etcd",
                "organizations": ("a", "b"),
                "dns_names": ("localhost",),
                "server": True,
                "client": True,
            },
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
            ["a", "b"],
            ["localhost"],
            [],
            id="server-and-client",
        ),
    ],
)
def test_issue_leaf_cert(
    ca: CertificateAuthority,
    kwargs: dict[str, Any],
    expected_usages: list[x509.ObjectIdentifier],
    expected_orgs: list[str],
    expected_dns: list[str] | None,
    expected_ips: list[str] | None,
) -> None:
    leaf = issue_leaf_cert(ca, **kwargs)
    cert = leaf.cert
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == kwargs["common_name"]
    orgs = [attr.value for attr in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    assert orgs == expected_orgs
    assert list(_ext(cert, x509.ExtendedKeyUsage).value) == expected_usages
    assert not _ext(cert, x509.BasicConstraints).value.ca
    if expected_dns is None:
        with pytest.raises(x509.ExtensionNotFound):
            _ext(cert, x509.SubjectAlternativeName)
    else:
        assert _san_dns(cert) == expected_dns
        assert _san_ips(cert) == expected_ips
    cert.verify_directly_issued_by(ca.cert)


def test_leaf_validity_days_and_cap_at_ca_expiry(ca: CertificateAuthority) -> None:
    short = issue_serving_cert(ca, service=SERVICE, namespace=NAMESPACE, validity_days=30)
    assert short.cert.not_valid_after_utc - short.cert.not_valid_before_utc == timedelta(days=30)

    short_lived_ca = issue_ca("short CA", validity_days=2)
    capped = issue_serving_cert(short_lived_ca, service=SERVICE, namespace=NAMESPACE, validity_days=365)
    assert capped.cert.not_valid_after_utc == short_lived_ca.cert.not_valid_after_utc


def test_longest_service_and_namespace_still_issue(ca: CertificateAuthority) -> None:
    service, namespace = "s" * 63, "n" * 63
    leaf = issue_serving_cert(ca, service=service, namespace=namespace)
    # CN is capped at 64 characters by X.509; the full names live in the SANs.
    assert leaf.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == service
    assert f"{service}.{namespace}.svc" in _san_dns(leaf.cert)


def test_expired_ca_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    short_lived_ca = issue_ca("short CA", validity_days=1)
    monkeypatch.setattr(certs.issue, "_now", lambda: datetime.now(UTC) + timedelta(days=2))
    with pytest.raises(InvalidInputError, match="CA certificate expired"):
        issue_serving_cert(short_lived_ca, service=SERVICE, namespace=NAMESPACE)


INVALID_INPUT: list[tuple[str, Callable[[CertificateAuthority], object], str]] = [
    (
        "empty-service",
        lambda ca: issue_serving_cert(ca, service="", namespace="ns"),
        "service name must not be empty",
    ),
    (
        "service-underscore",
        lambda ca: issue_serving_cert(ca, service="web_hook", namespace="ns"),
        "invalid service name 'web_hook'",
    ),
    (
        "service-uppercase",
        lambda ca: issue_serving_cert(ca, service="Webhook", namespace="ns"),
        "DNS-1035",
    ),
    (
        "service-leading-digit",
        lambda ca: issue_serving_cert(ca, service="1hook", namespace="ns"),
        "starting with a letter",
    ),
    (
        "empty-namespace",
        lambda ca: issue_serving_cert(ca, service="hook", namespace=""),
        "namespace must not be empty",
    ),
    (
        "namespace-too-long",
        lambda ca: issue_serving_cert(ca, service="hook", namespace="n" * 64),
        "invalid namespace",
    ),
    (
        "bad-cluster-domain",
        lambda ca: issue_serving_cert(ca, service="hook", namespace="ns", cluster_domain="a..b"),
        "invalid cluster domain",
    ),
    (
        "invalid-ip",
        lambda ca: issue_serving_cert(ca, service="hook", namespace="ns", ip_addresses=["300.1.1.1"]),
        "invalid IP address '300.1.1.1'",
    ),
    (
        "ip-as-bare-string",
        lambda ca: issue_serving_cert(ca, service="hook", namespace="ns", ip_addresses="10.0.0.1"),
        "not a single string",
    ),
    (
        "invalid-dns",
        lambda ca: issue_serving_cert(ca, service="hook", namespace="ns", dns_names=["bad..name"]),
        "invalid DNS name 'bad..name'",
    ),
    (
        "ip-as-dns",
        lambda ca: issue_serving_cert(ca, service="hook", namespace="ns", dns_names=["10.0.0.1"]),
        "is an IP address",
    ),
    (
        "zero-validity",
        lambda ca: issue_serving_cert(ca, service="hook", namespace="ns", validity_days=0),
        "validity_days must be between 1 and",
    ),
    (
        "negative-validity",
        lambda ca: issue_ca("ca", validity_days=-5),
        "validity_days must be between 1 and",
    ),
    ("empty-ca-name", lambda ca: issue_ca(""), "CA common name must not be empty"),
    ("ca-name-too-long", lambda ca: issue_ca("x" * 65), "longer than 64"),
    (
        "neither-server-nor-client",
        lambda ca: issue_leaf_cert(ca, common_name="x", server=False, client=False),
        "server use, client use, or both",
    ),
    (
        "server-without-sans",
        lambda ca: issue_leaf_cert(ca, common_name="x"),
        "at least one DNS name or IP address",
    ),
    (
        "empty-organization",
        lambda ca: issue_leaf_cert(ca, common_name="admin", organizations=[""], server=False, client=True),
        "organization must not be empty",
    ),
    ("weak-rsa", lambda ca: generate_rsa_key(1024), "RSA key size must be one of"),
    ("bundle-not-pem", lambda ca: ca_bundle_b64(b"not a cert"), "not a PEM certificate"),
]


@pytest.mark.parametrize(
    ("call", "message"), [pytest.param(call, msg, id=name) for name, call, msg in INVALID_INPUT]
)
def test_invalid_input_raises_clear_error(
    ca: CertificateAuthority, call: Callable[[CertificateAuthority], object], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message.replace(".", r"\.")) as info:
        call(ca)
    assert isinstance(info.value, CertsError)
    assert isinstance(info.value, ValueError)


def test_ca_bundle_b64_decodes_to_the_pem(ca: CertificateAuthority) -> None:
    encoded = ca_bundle_b64(ca.cert_pem)
    assert "\n" not in encoded
    assert base64.b64decode(encoded, validate=True) == ca.cert_pem


# --- files ----------------------------------------------------------------------------------------


@pytest.fixture(params=[0o000, 0o022, 0o077], ids=lambda m: f"umask-{m:03o}")
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


@pytest.mark.parametrize("keep_ca_key", [False, True])
def test_write_bundle_modes_and_no_leftovers(
    tmp_path: Path, ca: CertificateAuthority, serving: LeafCertificate, umask: int, keep_ca_key: bool
) -> None:
    out = tmp_path / "nested" / "out"
    paths = write_bundle(out, ca=ca, leaf=serving, keep_ca_key=keep_ca_key)

    expected = BUNDLE_FILES | ({"ca.key"} if keep_ca_key else set())
    assert {p.name for p in out.iterdir()} == expected  # no temp files left behind
    assert _mode(paths.tls_key) == 0o600
    assert _mode(paths.ca_cert) == 0o644
    assert _mode(paths.tls_cert) == 0o644
    assert paths.ca_cert.read_bytes() == ca.cert_pem
    assert paths.tls_cert.read_bytes() == serving.cert_pem
    assert paths.tls_key.read_bytes() == serving.key_pem
    if keep_ca_key:
        assert paths.ca_key is not None
        assert _mode(paths.ca_key) == 0o600
    else:
        assert paths.ca_key is None


def test_files_are_staged_in_place_with_final_mode_before_rename(
    tmp_path: Path, ca: CertificateAuthority, serving: LeafCertificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    renames: dict[str, tuple[str, int]] = {}
    key_modes_while_writing: list[int] = []
    real_replace, real_write = os.replace, os.write

    def write_spy(fd: int, data: bytes | memoryview) -> int:
        if bytes(data[:27]) == b"-----BEGIN PRIVATE KEY-----":
            key_modes_while_writing.append(stat.S_IMODE(os.fstat(fd).st_mode))
        return real_write(fd, data)

    def spy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        source, target = Path(src), Path(dst)
        assert source.parent == target.parent  # same filesystem, so the rename is atomic
        renames[target.name] = (source.name, _mode(source))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    monkeypatch.setattr(os, "write", write_spy)
    write_bundle(tmp_path, ca=ca, leaf=serving, keep_ca_key=True)

    assert key_modes_while_writing == [0o600, 0o600]  # tls.key and ca.key, private before any byte

    assert set(renames) == BUNDLE_FILES | {"ca.key"}
    for target, (source, mode) in renames.items():
        assert source.startswith(f".{target}.")
        assert mode == (0o600 if target.endswith(".key") else 0o644)


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_failed_write_leaves_old_bundle_and_no_temp_files(
    tmp_path: Path,
    ca: CertificateAuthority,
    serving: LeafCertificate,
    monkeypatch: pytest.MonkeyPatch,
    failing: str,
) -> None:
    write_bundle(tmp_path, ca=ca, leaf=serving)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, failing, boom)
    new_leaf = issue_serving_cert(ca, service=SERVICE, namespace=NAMESPACE)
    with pytest.raises(CertFileError, match="No space left on device"):
        write_bundle(tmp_path, ca=ca, leaf=new_leaf)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_rewrite_replaces_files_and_keeps_modes(
    tmp_path: Path, ca: CertificateAuthority, serving: LeafCertificate
) -> None:
    write_bundle(tmp_path, ca=ca, leaf=serving)
    renewed = issue_serving_cert(ca, service=SERVICE, namespace=NAMESPACE)
    paths = write_bundle(tmp_path, ca=ca, leaf=renewed)
    assert paths.tls_cert.read_bytes() == renewed.cert_pem
    assert _mode(paths.tls_key) == 0o600
    assert {p.name for p in tmp_path.iterdir()} == BUNDLE_FILES


@pytest.mark.parametrize(
    ("make_out", "message"),
    [
        pytest.param(lambda d: d / "file", "exists and is not a directory", id="out-is-a-file"),
        pytest.param(lambda d: d / "file" / "sub", "cannot create output directory", id="parent-is-a-file"),
    ],
)
def test_unusable_output_directory(
    tmp_path: Path,
    ca: CertificateAuthority,
    serving: LeafCertificate,
    make_out: Callable[[Path], Path],
    message: str,
) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(CertFileError, match=message):
        write_bundle(make_out(tmp_path), ca=ca, leaf=serving)


def test_write_refuses_leaf_from_another_ca(tmp_path: Path, serving: LeafCertificate) -> None:
    with pytest.raises(InvalidInputError, match="not issued by this CA"):
        write_bundle(tmp_path, ca=issue_ca("someone else"), leaf=serving)
    assert list(tmp_path.iterdir()) == []


def test_stale_ca_key_is_not_left_beside_a_new_ca(
    tmp_path: Path, ca: CertificateAuthority, serving: LeafCertificate
) -> None:
    write_bundle(tmp_path, ca=ca, leaf=serving, keep_ca_key=True)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    new_ca = issue_ca("new CA")
    new_leaf = issue_serving_cert(new_ca, service=SERVICE, namespace=NAMESPACE)
    with pytest.raises(CertFileError, match="not the key of the CA being written"):
        write_bundle(tmp_path, ca=new_ca, leaf=new_leaf)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before

    # Same CA again without keep_ca_key: the matching key is left alone, not deleted.
    write_bundle(tmp_path, ca=ca, leaf=serving)
    assert (tmp_path / "ca.key").read_bytes() == before["ca.key"]


@pytest.mark.parametrize("ca_kind", ["ec", "rsa"])
def test_kept_ca_loads_back_and_issues_more(tmp_path: Path, rsa_key: PrivateKey, ca_kind: str) -> None:
    original = issue_ca("kept CA", key=rsa_key if ca_kind == "rsa" else None)
    write_bundle(
        tmp_path,
        ca=original,
        leaf=issue_serving_cert(original, service=SERVICE, namespace=NAMESPACE),
        keep_ca_key=True,
    )
    loaded = load_ca_from_dir(tmp_path)
    assert loaded.cert == original.cert
    assert loaded.key_pem == original.key_pem
    later = issue_serving_cert(loaded, service="other", namespace=NAMESPACE)
    later.cert.verify_directly_issued_by(original.cert)
    assert (
        _ext(later.cert, x509.AuthorityKeyIdentifier).value.key_identifier
        == _ext(original.cert, x509.SubjectKeyIdentifier).value.digest
    )


@pytest.mark.parametrize(
    ("cert_bytes", "key_bytes", "message"),
    [
        pytest.param(None, "ca", "cannot read CA certificate", id="missing-cert"),
        pytest.param("ca", None, "cannot read CA private key", id="missing-key"),
        pytest.param(b"garbage", "ca", "not a PEM certificate", id="garbage-cert"),
        pytest.param("ca", b"garbage", "not an unencrypted PEM private key", id="garbage-key"),
        pytest.param("ca", "leaf", "is not the private key of", id="mismatched-key"),
        pytest.param("leaf", "leaf", "is not a CA certificate", id="leaf-not-ca"),
    ],
)
def test_load_ca_errors(
    tmp_path: Path,
    ca: CertificateAuthority,
    serving: LeafCertificate,
    cert_bytes: bytes | str | None,
    key_bytes: bytes | str | None,
    message: str,
) -> None:
    sources = {"ca": (ca.cert_pem, ca.key_pem), "leaf": (serving.cert_pem, serving.key_pem)}
    cert_path, key_path = tmp_path / "c.crt", tmp_path / "c.key"
    if cert_bytes is not None:
        cert_path.write_bytes(sources[cert_bytes][0] if isinstance(cert_bytes, str) else cert_bytes)
    if key_bytes is not None:
        key_path.write_bytes(sources[key_bytes][1] if isinstance(key_bytes, str) else key_bytes)
    with pytest.raises(CertFileError, match=message):
        load_ca(cert_path, key_path)


# --- CLI ------------------------------------------------------------------------------------------


def test_cli_writes_bundle_and_prints_only_the_ca_bundle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["issue", "--service", SERVICE, "--namespace", NAMESPACE, "--out", str(out)]
    argv += ["--dns", "a.example.com", "b.example.com", "--dns", "c.example.com", "--ip", "10.1.2.3"]
    assert main([*argv, "--validity-days", "7"]) == 0

    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 1
    assert base64.b64decode(lines[0], validate=True) == (out / "ca.crt").read_bytes()
    assert "wrote" in captured.err

    assert {p.name for p in out.iterdir()} == BUNDLE_FILES
    cert = x509.load_pem_x509_certificate((out / "tls.crt").read_bytes())
    assert _san_dns(cert) == [*SERVICE_DNS, "a.example.com", "b.example.com", "c.example.com"]
    assert _san_ips(cert) == ["10.1.2.3"]
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=7)
    assert _mode(out / "tls.key") == 0o600


def test_cli_keep_ca_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["issue", "--service", SERVICE, "--namespace", NAMESPACE, "--out", str(tmp_path), "--keep-ca-key"]
    assert main(argv) == 0
    assert _mode(tmp_path / "ca.key") == 0o600
    ca_bundle = capsys.readouterr().out.strip()
    assert base64.b64decode(ca_bundle) == load_ca_from_dir(tmp_path).cert_pem


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param([], "required", id="no-command"),
        pytest.param(["issue", "--service", "s", "--out", "{out}"], "--namespace", id="missing-namespace"),
        pytest.param(
            ["issue", "--service", "", "--namespace", "ns", "--out", "{out}"],
            "service name must not be empty",
            id="empty-service",
        ),
        pytest.param(
            ["issue", "--service", "s", "--namespace", "ns", "--out", "{out}", "--ip", "999.1.1.1"],
            "invalid IP address '999.1.1.1'",
            id="bad-ip",
        ),
        pytest.param(
            ["issue", "--service", "s", "--namespace", "ns", "--out", "{out}", "--dns", "a..b"],
            "invalid DNS name",
            id="bad-dns",
        ),
        pytest.param(
            ["issue", "--service", "s", "--namespace", "ns", "--out", "{out}", "--validity-days", "0"],
            "--validity-days: must be between 1 and",
            id="zero-days",
        ),
        pytest.param(
            ["issue", "--service", "s", "--namespace", "ns", "--out", "{out}", "--validity-days", "ten"],
            "--validity-days: not a whole number",
            id="non-numeric-days",
        ),
        pytest.param(
            ["issue", "--service", "s", "--namespace", "ns", "--out", "{file}"],
            "is not a directory",
            id="out-is-a-file",
        ),
    ],
)
def test_cli_bad_input_exits_2_with_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    out, file = tmp_path / "out", tmp_path / "file"
    file.write_text("keep me")
    argv = [a.format(out=out, file=file) for a in args]

    assert main(argv) == 2

    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.splitlines()) == 1
    assert captured.err.startswith("python -m certs")
    assert "error:" in captured.err
    assert message in captured.err
    assert "Traceback" not in captured.err
    assert not out.exists()
    assert file.read_text() == "keep me"


def _run_module(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "certs", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_cli_as_a_module_for_shell_substitution(tmp_path: Path) -> None:
    # The one check that `python -m certs` really runs as a program; the rest call main().
    ok = _run_module("issue", "--service", SERVICE, "--namespace", NAMESPACE, "--out", str(tmp_path / "out"))
    assert ok.returncode == 0, ok.stderr
    assert base64.b64decode(ok.stdout.strip(), validate=True) == (tmp_path / "out" / "ca.crt").read_bytes()

    bad = _run_module(
        "issue", "--service", "Bad_Name", "--namespace", NAMESPACE, "--out", str(tmp_path / "bad")
    )
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert len(bad.stderr.splitlines()) == 1
    assert "invalid service name" in bad.stderr
    assert not (tmp_path / "bad").exists()


# --- a real TLS handshake -------------------------------------------------------------------------

TLS_PAYLOAD = b"hello"


@contextmanager
def _tls_server(cert_file: Path, key_file: Path) -> Iterator[int]:
    """Serve one TLS connection on 127.0.0.1; yields the port."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        conn.settimeout(5)
        try:
            with context.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(TLS_PAYLOAD)
        except OSError:  # ssl.SSLError included: the client rejected us, as some cases intend
            pass
        finally:
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        thread.join(timeout=5)
        listener.close()


def _fetch_over_tls(port: int, cafile: Path, server_hostname: str) -> bytes:
    context = ssl.create_default_context(cafile=str(cafile))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=server_hostname) as tls,
    ):
        return tls.recv(len(TLS_PAYLOAD))


@pytest.fixture(scope="module")
def tls_dirs(tmp_path_factory: pytest.TempPathFactory, rsa_key: PrivateKey) -> dict[str, Path]:
    dirs: dict[str, Path] = {}
    for kind, key in (("ec", None), ("rsa", rsa_key)):
        ca = issue_ca(f"{kind} handshake CA")
        leaf = issue_serving_cert(
            ca, service=SERVICE, namespace=NAMESPACE, ip_addresses=["127.0.0.1"], key=key
        )
        dirs[kind] = write_bundle(tmp_path_factory.mktemp(kind), ca=ca, leaf=leaf).ca_cert.parent
    dirs["stranger"] = write_bundle(
        tmp_path_factory.mktemp("stranger"),
        ca=(stranger := issue_ca("stranger CA")),
        leaf=issue_serving_cert(stranger, service=SERVICE, namespace=NAMESPACE),
    ).ca_cert.parent
    return dirs


@pytest.mark.parametrize(
    ("key_kind", "server_hostname", "trusted", "failure"),
    [
        pytest.param("ec", "eco-pulse.eco.svc", "own", None, id="ec-svc-name"),
        pytest.param("rsa", "eco-pulse.eco.svc", "own", None, id="rsa-svc-name"),
        pytest.param("ec", "eco-pulse.eco.svc.cluster.local", "own", None, id="fqdn"),
        pytest.param("ec", "eco-pulse", "own", None, id="short-name"),
        pytest.param("ec", "127.0.0.1", "own", None, id="ip-san"),
        pytest.param("ec", "unknown.eco.svc", "own", "Hostname mismatch", id="unknown-host"),
        pytest.param("ec", "eco-pulse.other.svc", "own", "Hostname mismatch", id="other-namespace"),
        pytest.param("ec", "10.9.9.9", "own", "IP address mismatch", id="unknown-ip"),
        pytest.param("ec", "eco-pulse.eco.svc", "stranger", "unable to get local issuer", id="untrusted-ca"),
    ],
)
def test_tls_handshake(
    tls_dirs: dict[str, Path], key_kind: str, server_hostname: str, trusted: str, failure: str | None
) -> None:
    server_dir = tls_dirs[key_kind]
    cafile = (server_dir if trusted == "own" else tls_dirs["stranger"]) / "ca.crt"
    with _tls_server(server_dir / "tls.crt", server_dir / "tls.key") as port:
        if failure is None:
            assert _fetch_over_tls(port, cafile, server_hostname) == TLS_PAYLOAD
        else:
            with pytest.raises(ssl.SSLCertVerificationError) as info:
                _fetch_over_tls(port, cafile, server_hostname)
            assert failure in info.value.verify_message
