"""kube-scheduler extender wire types (k8s.io/kube-scheduler/extender/v1), parsed once.

The Go structs have no json tags, so their keys are the Go field names (``Pod``, ``NodeNames``,
``FailedNodes``, ``Host``, ``Score``); nested Kubernetes objects keep their camelCase keys.
"""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from core.model import REGION_LABEL

# Measured (bench/request_sizes.py): for 5,000 nodes, NodeNames mode (what we ship) is 0.2 MiB
# with a typical pod and 2.7 MiB at worst (253-character names, a 1.5 MiB pod); full mode is
# 10-12 MiB with kwok-sized Nodes and 84 MiB with production Nodes (managedFields, 50 images).
# 8 MiB: 3x the worst NodeNames call; full mode up to ~3,500 small or ~450 production Nodes.
# Beyond: nodeCacheCapable (shipped), or raise the cap and the memory limit together.
MAX_BODY_BYTES = 8 * 1024 * 1024
# Kubernetes supports clusters of up to 5,000 nodes; 3x that. Checked right after decoding: a
# list of millions of tiny names fits in the byte cap and would cost ~300 bytes each to judge.
MAX_NODES = 15_000
MAX_PRIORITY = 10


class MalformedArgs(ValueError):
    """Not ExtenderArgs; the message says what is wrong."""


class HostPriority(msgspec.Struct, frozen=True):
    """One entry of a HostPriorityList; a Struct encodes faster than a dict (5,000 per call)."""

    Host: str
    Score: int


# gc=False: thousands per call, holding only strings, so never in a reference cycle; the
# collector need not track them.
class _Labels(msgspec.Struct, frozen=True, gc=False):
    # The one label we read; the decoder skips the others without building a dict per node.
    region: str | None = msgspec.field(name=REGION_LABEL, default=None)


class _Metadata(msgspec.Struct, frozen=True, gc=False):
    name: str = ""
    labels: _Labels | None = None


class _NodeSlim(msgspec.Struct, frozen=True, gc=False):
    metadata: _Metadata


class _NodeListSlim(msgspec.Struct, frozen=True):
    items: list[_NodeSlim] | None = None


class _NodeListRaw(msgspec.Struct, frozen=True):
    items: list[msgspec.Raw] | None = None


_NULL = msgspec.Raw(b"null")


class _Args(msgspec.Struct, frozen=True):
    Pod: dict[str, Any]
    Nodes: msgspec.Raw = _NULL  # kept raw: decoded below only as far as we need
    NodeNames: list[str] | None = None


class _ArgsNamesOnly(msgspec.Struct, frozen=True):
    """One pass, for callers that answer with node names only (/prioritize)."""

    Pod: dict[str, Any]
    Nodes: _NodeListSlim | None = None
    NodeNames: list[str] | None = None


# Typed decoders read only what we keep and skip the rest of each Node in C: a full NodeList is
# megabytes, and building Python objects for all of it would cost more than the whole decision.
_ARGS = msgspec.json.Decoder(_Args)
_ARGS_NAMES_ONLY = msgspec.json.Decoder(_ArgsNamesOnly)
_NODES_SLIM = msgspec.json.Decoder(_NodeListSlim)
_NODES_RAW = msgspec.json.Decoder(_NodeListRaw)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtenderArgs:
    pod: Mapping[str, object]
    # Exactly one mode: full Node objects (nodeCacheCapable false) or names (true).
    node_list: msgspec.Raw | None
    node_names: Sequence[str] | None
    # In Node-objects mode, (name, region label) of each node, in the order given.
    node_regions: Sequence[tuple[str, str | None]] = ()

    @property
    def node_count(self) -> int:
        return len(self.node_names) if self.node_names is not None else len(self.node_regions)

    @property
    def names(self) -> list[str]:
        if self.node_names is not None:
            return list(self.node_names)
        return [name for name, _ in self.node_regions]

    def nodes_except(self, failed: Container[str]) -> msgspec.Raw | list[msgspec.Raw]:
        """The Node objects as we received them, minus the failed ones."""
        assert self.node_list is not None
        if not any(name in failed for name, _ in self.node_regions):
            return self.node_list
        items = _NODES_RAW.decode(self.node_list).items or []
        return [raw for raw, (name, _) in zip(items, self.node_regions, strict=True) if name not in failed]


def parse_args(
    body: bytes, *, keep_node_objects: bool = True, max_body_bytes: int = MAX_BODY_BYTES
) -> ExtenderArgs:
    """Decode ExtenderArgs once. ``keep_node_objects`` keeps the Node objects as received (raw), for
    /filter, which answers with them; /prioritize answers with names and decodes in one pass."""
    if len(body) > max_body_bytes:
        raise MalformedArgs(f"body is larger than {max_body_bytes} bytes")
    args = _parse_args(body, keep_node_objects=keep_node_objects)
    if args.node_count > MAX_NODES:
        raise MalformedArgs(f"more than {MAX_NODES} nodes ({args.node_count})")
    return args


def _parse_args(body: bytes, *, keep_node_objects: bool) -> ExtenderArgs:
    try:
        if not keep_node_objects:
            slim = _ARGS_NAMES_ONLY.decode(body)
            if slim.NodeNames is not None:
                return ExtenderArgs(pod=slim.Pod, node_list=None, node_names=slim.NodeNames)
            if slim.Nodes is None:
                raise MalformedArgs("neither Nodes nor NodeNames is given")
            return ExtenderArgs(
                pod=slim.Pod, node_list=None, node_names=None, node_regions=_regions(slim.Nodes)
            )
        args = _ARGS.decode(body)
        if args.NodeNames is not None:
            return ExtenderArgs(pod=args.Pod, node_list=None, node_names=args.NodeNames)
        if _is_null(args.Nodes):
            raise MalformedArgs("neither Nodes nor NodeNames is given")
        try:
            nodes = _NODES_SLIM.decode(args.Nodes)
        except msgspec.ValidationError as error:
            # Decoded on its own, the NodeList's paths start at `$`: say where it is in the body.
            raise msgspec.ValidationError(str(error).replace("`$", "`$.Nodes", 1)) from None
    except msgspec.ValidationError as error:
        raise MalformedArgs(f"not ExtenderArgs: {str(error)[:120]}") from None
    except msgspec.DecodeError as error:
        raise MalformedArgs(f"body is not JSON: {str(error)[:80]}") from None
    except RecursionError:
        raise MalformedArgs("body is nested too deeply") from None
    return ExtenderArgs(pod=args.Pod, node_list=args.Nodes, node_names=None, node_regions=_regions(nodes))


def _regions(nodes: _NodeListSlim) -> list[tuple[str, str | None]]:
    return [
        (node.metadata.name, node.metadata.labels.region if node.metadata.labels is not None else None)
        for node in nodes.items or ()
    ]


def _is_null(raw: msgspec.Raw) -> bool:
    # A view, not bytes(raw): that would copy a NodeList of megabytes to look at four bytes.
    view = memoryview(raw)
    return len(view) <= 8 and bytes(view).strip() == b"null"
