"""The webhook's one write to the Kubernetes API: events.k8s.io/v1 ``create``, off the request path.

Kept apart from webhook.events so that the routes never import the Kubernetes client.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import cast

import urllib3
from kubernetes import client

from core.kube.events import event_body
from webhook.events import REASON, REPORTING_CONTROLLER, AnnotationEvent

log = logging.getLogger("ecopulse.webhook")

REQUEST_TIMEOUT_SECONDS = 5


def api_poster(api_client: client.ApiClient, *, reporting_instance: str) -> Callable[[AnnotationEvent], bool]:
    """Post with events.k8s.io/v1 ``create``: the webhook's one write to the API. Never raises."""
    events = client.EventsV1Api(api_client)

    def post(event: AnnotationEvent) -> bool:
        try:
            body = client.EventsV1Event.model_validate(
                event_body(
                    namespace=event.namespace,
                    involved=event.regarding,
                    reason=REASON,
                    message=event.note,
                    action="Admit",
                    event_type="Warning",
                    reporting_controller=REPORTING_CONTROLLER,
                    reporting_instance=reporting_instance,
                )
            )
            response = cast(
                urllib3.BaseHTTPResponse,
                events.create_namespaced_event(
                    event.namespace, body, _preload_content=False, _request_timeout=REQUEST_TIMEOUT_SECONDS
                ),
            )
            response.drain_conn()
            response.release_conn()
        except client.ApiException as error:
            log.warning(
                "annotation event not recorded",
                extra={"namespace": event.namespace, "status": error.status, "detail": str(error.reason)},
            )
            return False
        except Exception as error:  # timeouts, refused connections, a value the model rejects
            log.warning(
                "annotation event not recorded",
                extra={"namespace": event.namespace, "detail": repr(error)[:300]},
            )
            return False
        return True

    return post
