"""TLS certificates for Eco-Pulse: a private CA, serving and client certs, caBundle.

A leaf package: stdlib and `cryptography` only, nothing else of ours.
"""

from certs.issue import (
    CA_VALIDITY_DAYS,
    LEAF_VALIDITY_DAYS,
    MAX_VALIDITY_DAYS,
    BundlePaths,
    CertFileError,
    CertificateAuthority,
    CertifiedKey,
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
    service_dns_names,
    write_bundle,
)

__all__ = [
    "CA_VALIDITY_DAYS",
    "LEAF_VALIDITY_DAYS",
    "MAX_VALIDITY_DAYS",
    "BundlePaths",
    "CertFileError",
    "CertificateAuthority",
    "CertifiedKey",
    "CertsError",
    "InvalidInputError",
    "LeafCertificate",
    "PrivateKey",
    "ca_bundle_b64",
    "generate_ec_key",
    "generate_rsa_key",
    "issue_ca",
    "issue_leaf_cert",
    "issue_serving_cert",
    "load_ca",
    "load_ca_from_dir",
    "service_dns_names",
    "write_bundle",
]
