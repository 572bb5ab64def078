"""Where our API client comes from: in-cluster service account, else KUBECONFIG, else nothing."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from kubernetes import client, config

log = logging.getLogger(__name__)


def load_api_client(environ: Mapping[str, str] | None = None) -> client.ApiClient | None:
    """An ApiClient for this process, or None when there is no cluster to talk to."""
    env = os.environ if environ is None else environ
    if env.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config()  # type: ignore[no-untyped-call]
        return client.ApiClient()
    kubeconfig = env.get("KUBECONFIG", "").strip()
    if kubeconfig:
        configuration = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)  # type: ignore[no-untyped-call]
        return client.ApiClient(configuration)
    return None
