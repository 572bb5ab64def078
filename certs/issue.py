"""Issue a private CA and the certificates it signs, and write them to disk.

A webhook's serving certificate, the caBundle the API server needs to trust it, and (for a local
test control plane) kube-apiserver serving and client certificates. Only stdlib and `cryptography`.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeAlias

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes, PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address

CA_VALIDITY_DAYS = 3650
LEAF_VALIDITY_DAYS = 365
# Guards against datetime overflow and obvious typos; nothing legitimate needs a century.
MAX_VALIDITY_DAYS = 36500
# Another machine's clock may lag ours; a cert "not yet valid" there fails the handshake.
CLOCK_SKEW_BACKDATE_MINUTES = 5
RSA_KEY_SIZES_BITS = (2048, 3072, 4096)
DEFAULT_CLUSTER_DOMAIN = "cluster.local"

CA_CERT_FILENAME = "ca.crt"
CA_KEY_FILENAME = "ca.key"
TLS_CERT_FILENAME = "tls.crt"
TLS_KEY_FILENAME = "tls.key"
CERT_FILE_MODE = 0o644
KEY_FILE_MODE = 0o600

# X.520 upper bound for commonName and organizationName.
_MAX_NAME_ATTRIBUTE_CHARS = 64
_MAX_DNS_NAME_CHARS = 253
_DNS_LABEL = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
_DNS_NAME_RE = re.compile(rf"(?:\*\.)?{_DNS_LABEL}(?:\.{_DNS_LABEL})*")
# Kubernetes: Service names are DNS-1035 labels, namespaces DNS-1123 labels.
_DNS1035_LABEL_RE = re.compile(r"[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?")
_DNS1123_LABEL_RE = re.compile(_DNS_LABEL)
_DNS1035_RULE = "DNS-1035 label (a-z, 0-9 and '-', starting with a letter, ending alphanumeric, max 63 chars)"
_DNS1123_RULE = "DNS-1123 label (a-z, 0-9 and '-', starting and ending alphanumeric, max 63 chars)"


class CertsError(Exception):
    """Base of every error this package raises on purpose."""


class InvalidInputError(CertsError, ValueError):
    """An argument is unusable: bad name, IP, validity, key size, mismatched CA."""


class CertFileError(CertsError):
    """A certificate or key file or directory can't be read, parsed or written."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CertifiedKey:
    """A private key and the certificate for it, either role: a CA or a leaf (serving) certificate."""

    key: PrivateKey
    cert: x509.Certificate

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return _key_to_pem(self.key)


# The roles, named where they are taken or given; one class (the extensions make the difference).
CertificateAuthority = CertifiedKey
LeafCertificate = CertifiedKey


@dataclass(frozen=True, slots=True, kw_only=True)
class BundlePaths:
    ca_cert: Path
    tls_cert: Path
    tls_key: Path
    ca_key: Path | None  # None unless the CA key was asked for


# --- keys -----------------------------------------------------------------------------------------


def generate_ec_key() -> ec.EllipticCurvePrivateKey:
    """ECDSA P-256: small, fast, and accepted by every Kubernetes component."""
    return ec.generate_private_key(ec.SECP256R1())


def generate_rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    """RSA, for peers that want it (kube-apiserver's service-account key is commonly RSA)."""
    if isinstance(bits, bool) or bits not in RSA_KEY_SIZES_BITS:
        raise InvalidInputError(f"RSA key size must be one of {RSA_KEY_SIZES_BITS} bits, got {bits!r}")
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


# --- issuing --------------------------------------------------------------------------------------


def issue_ca(
    common_name: str,
    *,
    validity_days: int = CA_VALIDITY_DAYS,
    key: PrivateKey | None = None,
) -> CertificateAuthority:
    """A self-signed CA that may sign leaf certificates only (path length 0)."""
    _check_name_attribute("CA common name", common_name)
    _check_validity_days(validity_days)
    ca_key = key if key is not None else generate_ec_key()
    not_before = _now() - timedelta(minutes=CLOCK_SKEW_BACKDATE_MINUTES)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + timedelta(days=validity_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
    )
    return CertificateAuthority(key=ca_key, cert=builder.sign(ca_key, hashes.SHA256()))


def issue_leaf_cert(
    ca: CertificateAuthority,
    *,
    common_name: str,
    organizations: Sequence[str] = (),
    dns_names: Iterable[str] = (),
    ip_addresses: Iterable[str | IPAddress] = (),
    server: bool = True,
    client: bool = False,
    validity_days: int = LEAF_VALIDITY_DAYS,
    key: PrivateKey | None = None,
) -> LeafCertificate:
    """A certificate signed by `ca` for TLS servers, clients, or both.

    `organizations` become O attributes, which Kubernetes reads as group names
    (O=system:masters for an admin client). A server certificate needs at least one SAN,
    since modern verifiers ignore the common name. The expiry is capped at the CA's.
    """
    _check_name_attribute("common name", common_name)
    for organization in organizations:
        _check_name_attribute("organization", organization)
    _check_validity_days(validity_days)
    if not (server or client):
        raise InvalidInputError("a leaf certificate must be for server use, client use, or both")
    dns = _normalize_dns_names(dns_names)
    ips = _parse_ip_addresses(ip_addresses)
    if server and not (dns or ips):
        raise InvalidInputError("a server certificate needs at least one DNS name or IP address")

    now = _now()
    ca_not_after = ca.cert.not_valid_after_utc
    if ca_not_after <= now:
        raise InvalidInputError(f"the CA certificate expired at {ca_not_after.isoformat()}")
    not_before = now - timedelta(minutes=CLOCK_SKEW_BACKDATE_MINUTES)
    not_after = min(not_before + timedelta(days=validity_days), ca_not_after)

    leaf_key = key if key is not None else generate_ec_key()
    subject = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
        + [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    )
    usages: list[x509.ObjectIdentifier] = []
    if server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.cert.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        # RSA TLS key exchange encrypts with the key; ECDSA keys only ever sign.
        .add_extension(
            _key_usage(digital_signature=True, key_encipherment=isinstance(leaf_key, rsa.RSAPrivateKey)),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .add_extension(_authority_key_identifier(ca.cert), critical=False)
    )
    if dns or ips:
        sans: list[x509.GeneralName] = [x509.DNSName(name) for name in dns]
        sans += [x509.IPAddress(ip) for ip in ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return LeafCertificate(key=leaf_key, cert=builder.sign(ca.key, hashes.SHA256()))


def service_dns_names(
    service: str, namespace: str, *, cluster_domain: str = DEFAULT_CLUSTER_DOMAIN
) -> tuple[str, ...]:
    """Every name a Service is reachable by in-cluster, shortest first."""
    _check_label("service name", service, _DNS1035_LABEL_RE, _DNS1035_RULE)
    _check_label("namespace", namespace, _DNS1123_LABEL_RE, _DNS1123_RULE)
    domain = cluster_domain.strip(".").lower()
    if not domain or not _is_dns_name(domain) or domain.startswith("*"):
        raise InvalidInputError(f"invalid cluster domain {cluster_domain!r}")
    return (
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.{domain}",
    )


def issue_serving_cert(
    ca: CertificateAuthority,
    *,
    service: str,
    namespace: str,
    dns_names: Iterable[str] = (),
    ip_addresses: Iterable[str | IPAddress] = (),
    validity_days: int = LEAF_VALIDITY_DAYS,
    cluster_domain: str = DEFAULT_CLUSTER_DOMAIN,
    key: PrivateKey | None = None,
) -> LeafCertificate:
    """Serving certificate for a Service (e.g. an admission webhook) plus any extra names."""
    service_names = service_dns_names(service, namespace, cluster_domain=cluster_domain)
    common_name = service_names[2]  # service.namespace.svc: what the API server dials
    if len(common_name) > _MAX_NAME_ATTRIBUTE_CHARS:
        common_name = service  # the SANs carry the full names; CN is informational only
    return issue_leaf_cert(
        ca,
        common_name=common_name,
        dns_names=(*service_names, *dns_names),
        ip_addresses=ip_addresses,
        server=True,
        client=False,
        validity_days=validity_days,
        key=key,
    )


def ca_bundle_b64(ca_pem: bytes) -> str:
    """Base64 of the CA PEM: the form `clientConfig.caBundle` in webhook configurations wants."""
    if b"-----BEGIN CERTIFICATE-----" not in ca_pem:
        raise InvalidInputError("caBundle input is not a PEM certificate")
    return base64.b64encode(ca_pem).decode("ascii")


# --- files ----------------------------------------------------------------------------------------


def write_bundle(
    out_dir: str | os.PathLike[str],
    *,
    ca: CertificateAuthority,
    leaf: LeafCertificate,
    keep_ca_key: bool = False,
) -> BundlePaths:
    """Write ca.crt, tls.crt, tls.key (and ca.key if `keep_ca_key`) into `out_dir`.

    Every file is staged as a temp file in `out_dir`, fsynced, then renamed into place, so readers
    never see a half-written file and a failure while staging leaves the old files untouched.
    Keys are 0600 from creation; certificates 0644. Creates `out_dir` if needed.
    """
    try:
        leaf.cert.verify_directly_issued_by(ca.cert)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise InvalidInputError("the leaf certificate was not issued by this CA") from exc
    directory = Path(out_dir)
    _ensure_directory(directory)
    files: list[tuple[str, bytes, int]] = [
        (CA_CERT_FILENAME, ca.cert_pem, CERT_FILE_MODE),
        (TLS_CERT_FILENAME, leaf.cert_pem, CERT_FILE_MODE),
        (TLS_KEY_FILENAME, leaf.key_pem, KEY_FILE_MODE),
    ]
    if keep_ca_key:
        files.append((CA_KEY_FILENAME, ca.key_pem, KEY_FILE_MODE))
    else:
        _refuse_stale_ca_key(directory / CA_KEY_FILENAME, ca)
    _write_files_atomically(directory, files)
    return BundlePaths(
        ca_cert=directory / CA_CERT_FILENAME,
        tls_cert=directory / TLS_CERT_FILENAME,
        tls_key=directory / TLS_KEY_FILENAME,
        ca_key=directory / CA_KEY_FILENAME if keep_ca_key else None,
    )


def load_ca(cert_path: str | os.PathLike[str], key_path: str | os.PathLike[str]) -> CertificateAuthority:
    """Load a CA certificate and its unencrypted PEM key, checking they belong together."""
    cert_pem = _read_file(Path(cert_path), "CA certificate")
    key_pem = _read_file(Path(key_path), "CA private key")
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise CertFileError(f"{cert_path}: not a PEM certificate") from exc
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise CertFileError(f"{key_path}: not an unencrypted PEM private key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise CertFileError(f"{key_path}: only ECDSA and RSA keys are supported")
    if _public_der(key.public_key()) != _public_der(cert.public_key()):
        raise CertFileError(f"{key_path} is not the private key of {cert_path}")
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise CertFileError(f"{cert_path} is not a CA certificate")
    return CertificateAuthority(key=key, cert=cert)


def load_ca_from_dir(directory: str | os.PathLike[str]) -> CertificateAuthority:
    """Load the ca.crt/ca.key pair `write_bundle(..., keep_ca_key=True)` left in `directory`."""
    return load_ca(Path(directory) / CA_CERT_FILENAME, Path(directory) / CA_KEY_FILENAME)


# --- helpers --------------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _key_to_pem(key: PrivateKey) -> bytes:
    # PKCS#8 reads in every consumer we target: Python ssl, Go crypto/tls, kube-apiserver.
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _public_der(public_key: CertificatePublicKeyTypes | PublicKeyTypes) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _key_usage(
    *,
    digital_signature: bool = False,
    key_encipherment: bool = False,
    key_cert_sign: bool = False,
    crl_sign: bool = False,
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _authority_key_identifier(ca_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        # A CA loaded from elsewhere may lack an SKI; derive the identifier from its key instead.
        public = ca_cert.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
            raise InvalidInputError("the CA's key type is not supported") from None
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(public)
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _check_name_attribute(what: str, value: str) -> None:
    if not value or not value.strip():
        raise InvalidInputError(f"{what} must not be empty")
    if len(value) > _MAX_NAME_ATTRIBUTE_CHARS:
        raise InvalidInputError(f"{what} is longer than {_MAX_NAME_ATTRIBUTE_CHARS} characters: {value!r}")


def _check_validity_days(validity_days: int) -> None:
    if isinstance(validity_days, bool) or not isinstance(validity_days, int):
        raise InvalidInputError(f"validity_days must be an integer, got {validity_days!r}")
    if not 1 <= validity_days <= MAX_VALIDITY_DAYS:
        raise InvalidInputError(
            f"validity_days must be between 1 and {MAX_VALIDITY_DAYS}, got {validity_days}"
        )


def _check_label(what: str, value: str, pattern: re.Pattern[str], rule: str) -> None:
    if not value:
        raise InvalidInputError(f"{what} must not be empty")
    if not pattern.fullmatch(value):
        raise InvalidInputError(f"invalid {what} {value!r}: must be a {rule}")


def _is_dns_name(name: str) -> bool:
    return len(name) <= _MAX_DNS_NAME_CHARS and _DNS_NAME_RE.fullmatch(name) is not None


def _normalize_dns_names(names: Iterable[str]) -> list[str]:
    if isinstance(names, str):  # a bare string would be split into one-letter "names"
        raise InvalidInputError("dns_names must be a sequence of names, not a single string")
    normalized: dict[str, None] = {}  # ordered set: keep the caller's order, drop repeats
    for raw in names:
        name = raw.strip().lower()
        if not name:
            raise InvalidInputError("DNS name must not be empty")
        if _is_ip_address(name):
            raise InvalidInputError(f"{raw!r} is an IP address; pass it as an IP address, not a DNS name")
        if not _is_dns_name(name):
            raise InvalidInputError(
                f"invalid DNS name {raw!r}: expected dot-separated labels of a-z, 0-9 and '-' "
                "(each at most 63 characters, 253 in all), optionally starting with '*.'"
            )
        normalized[name] = None
    return list(normalized)


def _is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _parse_ip_addresses(addresses: Iterable[str | IPAddress]) -> list[IPAddress]:
    if isinstance(addresses, str):
        raise InvalidInputError("ip_addresses must be a sequence of addresses, not a single string")
    parsed: dict[IPAddress, None] = {}
    for raw in addresses:
        if isinstance(raw, ipaddress.IPv4Address | ipaddress.IPv6Address):
            parsed[raw] = None
            continue
        try:
            parsed[ipaddress.ip_address(raw.strip())] = None
        except ValueError:
            raise InvalidInputError(f"invalid IP address {raw!r}") from None
    return list(parsed)


def _read_file(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CertFileError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc


def _ensure_directory(directory: Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise CertFileError(f"output path {directory} exists and is not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CertFileError(f"cannot create output directory {directory}: {exc.strerror or exc}") from exc


def _refuse_stale_ca_key(path: Path, ca: CertificateAuthority) -> None:
    # A ca.key left from an earlier CA would no longer match the ca.crt we are about to write.
    if not path.exists():
        return
    try:
        existing = serialization.load_pem_private_key(path.read_bytes(), password=None)
        matches = _public_der(existing.public_key()) == _public_der(ca.key.public_key())
    except (OSError, ValueError, TypeError, UnsupportedAlgorithm):
        matches = False
    if not matches:
        raise CertFileError(
            f"{path} is not the key of the CA being written; remove it, "
            "or keep the new CA key (keep_ca_key=True, --keep-ca-key) to replace it"
        )


def _write_files_atomically(directory: Path, files: Sequence[tuple[str, bytes, int]]) -> None:
    staged: list[tuple[Path, Path]] = []
    try:
        # Stage everything before renaming anything, so the likely failures (disk full,
        # permissions) leave the previous bundle whole.
        for name, data, mode in files:
            staged.append((_stage_file(directory, name, data, mode), directory / name))
        for temp_path, final_path in staged:
            temp_path.replace(final_path)
    except OSError as exc:
        for temp_path, _ in staged:
            temp_path.unlink(missing_ok=True)
        raise CertFileError(f"cannot write to {directory}: {exc.strerror or exc}") from exc
    _fsync_directory(directory)


def _stage_file(directory: Path, name: str, data: bytes, mode: int) -> Path:
    # mkstemp creates the file 0600 with O_EXCL, so a key is never readable by others, even briefly.
    fd, temp_name = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    temp_path = Path(temp_name)
    try:
        try:
            os.fchmod(fd, mode)  # exact mode, independent of the umask
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        temp_path.unlink(missing_ok=True)
        raise
    return temp_path


def _fsync_directory(directory: Path) -> None:
    # Makes the renames durable across a crash; some filesystems can't fsync a directory.
    with suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
