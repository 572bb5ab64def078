"""kube-scheduler extender wire types (k8s.io/kube-scheduler/extender/v1), parsed once.

The Go structs have no json tags, so their keys are the Go field names (``Pod``, ``NodeNames``,
``FailedNodes``, ``Host``, ``Score``); nested Kubernetes objects keep their camelCase keys.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

import orjson

# A full NodeList for a big cluster is megabytes: 5,000 nodes at ~4 KiB each is 20 MiB.
MAX_BODY_BYTES = 128 * 1024 * 1024
MIN_PRIORITY = 0
MAX_PRIORITY = 10


class MalformedArgs(ValueError):
    """Not ExtenderArgs; the message says what is wrong."""


class NodeListWire(TypedDict):
    metadata: dict[str, object]
    items: list[Any]


class FilterResultWire(TypedDict):
    Nodes: NodeListWire | None
    NodeNames: list[str] | None
    FailedNodes: dict[str, str]
    FailedAndUnresolvableNodes: dict[str, str]
    Error: str


class HostPriorityWire(TypedDict):
    Host: str
    Score: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtenderArgs:
    pod: Mapping[str, object]
    # Exactly one of these: full Node objects (nodeCacheCapable false) or names (true).
    nodes: Sequence[Mapping[str, Any]] | None
    node_names: Sequence[str] | None

    @property
    def names(self) -> list[str]:
        if self.node_names is not None:
            return list(self.node_names)
        assert self.nodes is not None
        return [str((node.get("metadata") or {}).get("name", "")) for node in self.nodes]


def parse_args(body: bytes) -> ExtenderArgs:
    if len(body) > MAX_BODY_BYTES:
        raise MalformedArgs(f"body is larger than {MAX_BODY_BYTES} bytes")
    try:
        document: Any = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise MalformedArgs(f"body is not JSON: {str(error)[:80]}") from None
    if not isinstance(document, dict):
        raise MalformedArgs("body is not a JSON object")
    pod = document.get("Pod")
    if not isinstance(pod, dict):
        raise MalformedArgs("Pod is missing or not an object")
    names = document.get("NodeNames")
    node_list = document.get("Nodes")
    if names is not None:
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            raise MalformedArgs("NodeNames is not a list of strings")
        return ExtenderArgs(pod=pod, nodes=None, node_names=names)
    if node_list is None:
        raise MalformedArgs("neither Nodes nor NodeNames is given")
    if not isinstance(node_list, dict) or not isinstance(node_list.get("items"), list | None):
        raise MalformedArgs("Nodes is not a NodeList")
    items = node_list.get("items") or []
    if not all(isinstance(node, dict) and isinstance(node.get("metadata"), dict) for node in items):
        raise MalformedArgs("Nodes.items holds something that is not a Node")
    return ExtenderArgs(pod=pod, nodes=items, node_names=None)
