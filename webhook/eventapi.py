"""The webhook's one write to the Kubernetes API: events.k8s.io/v1 ``create``, off the request path.

Kept apart from webhook.events so that the routes never import the Kubernetes client.
"""

from __future__ import annotations

from collections.abc import Callable

from kubernetes import client

from core.kube.events import EventRecorder
from webhook.events import REASON, REPORTING_CONTROLLER, AnnotationEvent


def api_poster(api_client: client.ApiClient, *, reporting_instance: str) -> Callable[[AnnotationEvent], bool]:
    """Post through core's EventRecorder (it never raises; False when the Event was not recorded)."""
    recorder = EventRecorder(
        api_client, reporting_controller=REPORTING_CONTROLLER, reporting_instance=reporting_instance
    )

    def post(event: AnnotationEvent) -> bool:
        return recorder.post(
            namespace=event.namespace,
            involved=event.regarding,
            reason=REASON,
            message=event.note,
            event_type="Warning",
            action="Admit",
        )

    return post
