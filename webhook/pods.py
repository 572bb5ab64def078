"""What the webhook and the extender both read of a pod before deciding anything. Pure.

Whether the pod is ours at all is core.managed's rule; this is how its namespace's defaults apply.
"""

from __future__ import annotations

from collections.abc import Mapping

from core.model import NamespaceInfo
from core.podspec import read_annotations


def effective_annotations(pod: Mapping[str, object], namespace_info: NamespaceInfo | None) -> dict[str, str]:
    """The pod's annotations over its namespace's ecopulse.io/ defaults (the pod's own win)."""
    annotations = read_annotations(pod)
    if namespace_info is not None and namespace_info.hint_annotations:
        return {**namespace_info.hint_annotations, **annotations}
    return annotations
