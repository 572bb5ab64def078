"""The sizes of the largest requests the webhook must accept, from which its body caps are chosen.

Builds, in the wire shape the senders use (Go encoding/json: ExtenderArgs with Go field names,
AdmissionReview v1), and prints the encoded sizes of:

- ExtenderArgs for 5,000 nodes in NodeNames mode (nodeCacheCapable: true, what we ship), with
  cloud-style node names and with names at the 253-character limit, with a typical pod and with
  the largest pod the API server stores (about 1.5 MiB: etcd's default request limit);
- ExtenderArgs for 5,000 nodes in full mode (nodeCacheCapable: false): kwok-sized Nodes as
  bench/extender.py sends them, and production-sized Nodes (managedFields, 50 images: the
  kubelet's default nodeStatusMaxImages; the scheduler trims managedFields from pods, not nodes);
- the AdmissionReview of a CREATE of that largest pod (our webhook sees CREATE only, so no
  oldObject).

Usage: python bench/request_sizes.py [--nodes 5000]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [str(HERE.parent), *(p for p in sys.path if Path(p or ".").resolve() != HERE)]

from bench.extender import POD, full_node, node_name
from bench.webhook import REVIEW

# etcd's default --max-request-bytes (1.5 MiB): no stored object is bigger than this (protobuf;
# the JSON of the same pod is a little bigger, which the margin covers).
ETCD_MAX_REQUEST_BYTES = 1_572_864
# kube-apiserver refuses request bodies over 3 MiB (MaxRequestBodyBytes).
APISERVER_MAX_REQUEST_BYTES = 3 * 1024 * 1024
REGIONS = ["us-east-1", "eu-west-1", "eu-north-1"]


def go_json(value: object) -> bytes:
    """Go encoding/json: compact, non-ASCII as is, and <, >, & escaped (it does so by default)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode()


def long_name(index: int) -> str:
    """A DNS subdomain name at its 253-character limit, unique per node."""
    head = f"n{index:05d}."
    label = "a" * 62 + "."
    return (head + label * 4)[:253].rstrip(".")


def largest_pod(target_bytes: int = ETCD_MAX_REQUEST_BYTES) -> dict[str, object]:
    """A pod whose JSON is just under ``target_bytes``: 1,000 env vars in each of 4 containers
    (config blobs in env is how real pods get this big), managedFields as the API server adds."""
    containers = []
    for c in range(4):
        containers.append(
            {
                "name": f"app-{c}",
                "image": "123456789012.dkr.ecr.eu-north-1.amazonaws.com/team/service:v1.2.3",
                "env": [{"name": f"SETTING_{i:04d}", "value": ""} for i in range(1000)],
                "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "1Gi"}},
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent",
            }
        )
    pod: dict[str, object] = {
        "metadata": {
            "name": "big-7d9f8c6b5-x2x4q",
            "generateName": "big-7d9f8c6b5-",
            "namespace": "shop",
            "uid": "b3c1f0de-7c9a-4d3e-9a51-0c3b2f7e8d11",
            "labels": {"app": "big", "pod-template-hash": "7d9f8c6b5"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "big-7d9f8c6b5",
                    "uid": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {"containers": containers, "restartPolicy": "Always", "dnsPolicy": "ClusterFirst"},
        "status": {"phase": "Pending", "qosClass": "Burstable"},
    }
    # Fill the env values until the pod is as big as etcd stores.
    filler = target_bytes - len(go_json(pod)) - 1024
    per_value = filler // 4000
    for container in containers:
        for variable in container["env"]:  # type: ignore[attr-defined]
            variable["value"] = "x" * per_value
    return pod


def production_node(index: int) -> dict[str, object]:
    """A Node as a cloud cluster stores it: the kwok shape plus managedFields and 50 images."""
    node = full_node(index)
    metadata = node["metadata"]
    assert isinstance(metadata, dict)
    metadata["labels"].update(  # type: ignore[union-attr]
        {
            "eks.amazonaws.com/nodegroup": "general-purpose",
            "eks.amazonaws.com/nodegroup-image": "ami-0123456789abcdef0",
            "eks.amazonaws.com/capacityType": "ON_DEMAND",
            "k8s.io/cloud-provider-aws": "0123456789abcdef0123456789abcdef",
            "failure-domain.beta.kubernetes.io/region": REGIONS[index % 3],
            "failure-domain.beta.kubernetes.io/zone": f"{REGIONS[index % 3]}a",
            "topology.ebs.csi.aws.com/zone": f"{REGIONS[index % 3]}a",
        }
    )
    metadata["annotations"].update(  # type: ignore[union-attr]
        {
            "alpha.kubernetes.io/provided-node-ip": f"10.{index // 250}.{index % 250}.10",
            "csi.volume.kubernetes.io/nodeid": json.dumps({"ebs.csi.aws.com": f"i-{index:017x}"}),
        }
    )
    fields = {f"f:{key}": {} for key in ("metadata", "spec", "status")}
    metadata["managedFields"] = [
        {
            "manager": manager,
            "operation": "Update",
            "apiVersion": "v1",
            "time": "2026-11-20T10:00:00Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                **fields,
                "f:status": {
                    "f:conditions": {
                        f'k:{{"type":"{t}"}}': {"f:lastHeartbeatTime": {}, "f:message": {}, "f:reason": {}}
                        for t in ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")
                    },
                    "f:images": {},
                    "f:nodeInfo": {"f:bootID": {}, "f:kubeletVersion": {}},
                },
            },
            **({"subresource": "status"} if manager != "kubelet" else {}),
        }
        for manager in (
            "kubelet",
            "kube-controller-manager",
            "aws-cloud-controller-manager",
            "kubelet-status",
        )
    ]
    status = node["status"]
    assert isinstance(status, dict)
    registry = "123456789012.dkr.ecr.eu-north-1.amazonaws.com"
    status["images"] = [
        {
            "names": [
                f"{registry}/team-{i % 7}/service-{i}@sha256:{(str(i) * 64)[:64]}",
                f"{registry}/team-{i % 7}/service-{i}:v2026.11.{i}",
            ],
            "sizeBytes": 123_456_789 + i,
        }
        for i in range(50)
    ]
    status["daemonEndpoints"] = {"kubeletEndpoint": {"Port": 10250}}
    return node


def sizes(nodes: int) -> list[tuple[str, int]]:
    big = largest_pod()
    names = [node_name(i) for i in range(nodes)]
    long_names = [long_name(i) for i in range(nodes)]
    # The envelope bench/webhook.py sends, carrying the largest pod.
    review = {**REVIEW, "request": {**REVIEW["request"], "object": big}}  # type: ignore[dict-item]

    def args(pod: object, *, names_: list[str] | None = None, items: list[object] | None = None) -> int:
        nodes_field = None if items is None else {"metadata": {}, "items": items}
        return len(go_json({"Pod": pod, "Nodes": nodes_field, "NodeNames": names_}))

    kwok_nodes: list[object] = [full_node(i) for i in range(nodes)]
    real_nodes: list[object] = [production_node(i) for i in range(nodes)]
    return [
        ("largest pod (JSON)", len(go_json(big))),
        ("AdmissionReview, CREATE of the largest pod", len(go_json(review))),
        (f"ExtenderArgs NodeNames x{nodes}, typical pod, cloud names", args(POD, names_=names)),
        (f"ExtenderArgs NodeNames x{nodes}, typical pod, 253-char names", args(POD, names_=long_names)),
        (f"ExtenderArgs NodeNames x{nodes}, largest pod, 253-char names", args(big, names_=long_names)),
        (f"ExtenderArgs full x{nodes}, typical pod, kwok-sized Nodes", args(POD, items=kwok_nodes)),
        (f"ExtenderArgs full x{nodes}, largest pod, kwok-sized Nodes", args(big, items=kwok_nodes)),
        (f"ExtenderArgs full x{nodes}, typical pod, production Nodes", args(POD, items=real_nodes)),
        ("one kwok-sized Node", len(go_json(full_node(0)))),
        ("one production Node", len(go_json(production_node(0)))),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=5000)
    options = parser.parse_args()
    for label, size in sizes(options.nodes):
        print(f"{label:<62} {size:>12,} bytes {size / 2**20:>8.2f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
