"""Idle keep-alive connections: the API server, not the webhook, is the one to close them.

The API server's webhook client (client-go over net/http) keeps idle connections for 90 s
(http.DefaultTransport's IdleConnTimeout, which client-go keeps). A server that closes sooner
races it: a review sent on a connection the server is closing fails, and with
failurePolicy Ignore the pod is admitted unplaced; the next burst also pays fresh TLS handshakes.
"""

from __future__ import annotations

from tests.conftest import StartWebhook

API_SERVER_IDLE_CONNECTION_SECONDS = 90


def test_the_webhook_keeps_idle_connections_longer_than_the_api_server(start_webhook: StartWebhook) -> None:
    webhook = start_webhook()
    assert webhook.running.server.config.timeout_keep_alive > API_SERVER_IDLE_CONNECTION_SECONDS
