"""The webhook's one write to the Kubernetes API: events.k8s.io/v1 ``create``, off the request path.

Kept apart from webhook.events so that the routes never import the Kubernetes client. The Event is
written by core.kube.events, the one Event writer every app shares.
"""

from __future__ import annotations

from collections.abc import Callable

from kubernetes import client

from core.kube.events import EventRecorder, EventRequest
from webhook.events import REPORTING_CONTROLLER, AnnotationEvent

REQUEST_TIMEOUT_SECONDS = 5


def api_poster(api_client: client.ApiClient, *, reporting_instance: str) -> Callable[[AnnotationEvent], bool]:
    """Post with events.k8s.io/v1 ``create``: the webhook's one write to the API. Never raises."""
    recorder = EventRecorder(
        api_client,
        reporting_controller=REPORTING_CONTROLLER,
        reporting_instance=reporting_instance,
        request_timeout_seconds=REQUEST_TIMEOUT_SECONDS,
    )

    def post(event: AnnotationEvent) -> bool:
        return recorder.post(
            EventRequest(
                namespace=event.namespace,
                involved=event.regarding,
                reason=event.reason,
                message=event.note,
                event_type=event.event_type,
                action=event.action,
            )
        )

    return post
