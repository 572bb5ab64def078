"""Certificate rotation under load: handshakes during a reload never fail (issue 20, defect 10)."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

import pytest

from certs.issue import CertificateAuthority, issue_ca
from tests.conftest import StartWebhook, Webhook, issue_tls

RELOADS = 300


@pytest.fixture
def webhook(start_webhook: StartWebhook) -> Webhook:
    return start_webhook()


def _leaf_bundle(ca: CertificateAuthority, directory: Path) -> tuple[bytes, bytes]:
    """Write a fresh serving pair from ``ca`` into ``directory``; return (tls.crt, tls.key) bytes."""
    issue_tls(directory, ca=ca)
    return (directory / "tls.crt").read_bytes(), (directory / "tls.key").read_bytes()


def _install(webhook: Webhook, pair: tuple[bytes, bytes]) -> None:
    # Key first, then certificate, each by rename: a reader sees whole files, and a reload that
    # falls between the two renames is refused as a mismatched pair (not a handshake failure).
    for name, data in (("tls.key", pair[1]), ("tls.crt", pair[0])):
        staged = webhook.tls_dir / f".{name}.staged"
        staged.write_bytes(data)
        staged.replace(webhook.tls_dir / name)


def _presented(webhook: Webhook, ca_file: Path, *, sni: bool) -> bytes:
    """One fresh handshake; the DER certificate the server presented."""
    context = ssl.create_default_context(cafile=str(ca_file))
    if not sni:
        context.check_hostname = False  # still verified against the CA, just no server_name sent
    with (
        socket.create_connection(("127.0.0.1", webhook.running.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost" if sni else None) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def _der(pem: bytes) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem.decode())


@pytest.mark.parametrize("sni", [True, False], ids=["sni", "no-sni"])
def test_handshakes_never_fail_while_the_key_pair_reloads(
    webhook: Webhook, tmp_path: Path, sni: bool
) -> None:
    # Both pairs come from one CA the client trusts, so any failure is the server's doing.
    ca = issue_ca("rotation CA")
    ca_file = tmp_path / "a" / "ca.crt"
    pair_a = _leaf_bundle(ca, tmp_path / "a")
    pair_b = _leaf_bundle(ca, tmp_path / "b")
    _install(webhook, pair_a)
    webhook.running.tls.reload()
    assert _presented(webhook, ca_file, sni=sni) == _der(pair_a[0])

    failures: list[str] = []
    handshakes = 0
    done = threading.Event()

    def handshake_loop() -> None:
        nonlocal handshakes
        while not done.is_set():
            try:
                _presented(webhook, ca_file, sni=sni)
            except (OSError, ssl.SSLError) as error:
                failures.append(repr(error))
            handshakes += 1

    client = threading.Thread(target=handshake_loop, name="handshakes")
    client.start()
    try:
        for index in range(RELOADS):
            _install(webhook, pair_b if index % 2 == 0 else pair_a)
            webhook.running.tls.reload()
    finally:
        done.set()
        client.join(timeout=30)
    _install(webhook, pair_b)
    webhook.running.tls.reload()

    assert handshakes > 0
    assert failures == [], f"{len(failures)} of {handshakes} handshakes failed: {failures[:3]}"
    assert _presented(webhook, ca_file, sni=sni) == _der(pair_b[0])


def test_a_reloaded_context_keeps_the_serving_settings(webhook: Webhook) -> None:
    issue_tls(webhook.tls_dir, common_name="rotated CA")
    webhook.running.tls.reload()
    assert webhook.running.tls.current.minimum_version == ssl.TLSVersion.TLSv1_2
    assert webhook.running.tls.listening.minimum_version == ssl.TLSVersion.TLSv1_2
