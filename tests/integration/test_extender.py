"""The scheduler extender (/filter, /prioritize) through the real app over TLS, both modes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from tests.conftest import MOCK_CONFIG, StartWebhook, Webhook, launch_webhook
from tests.factories import pod

REGION = "topology.kubernetes.io/region"
NODES = {"us-1": "us-east-1", "us-2": "us-east-1", "ie-1": "eu-west-1", "se-1": "eu-north-1", "bare": None}


def node(name: str, region: str | None) -> dict[str, Any]:
    labels = {"kubernetes.io/hostname": name}
    if region:
        labels[REGION] = region
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "status": {"allocatable": {"cpu": "8", "memory": "32Gi"}},
    }


def args_nodes(p: dict[str, Any]) -> dict[str, Any]:
    return {
        "Pod": p,
        "Nodes": {"metadata": {}, "items": [node(n, r) for n, r in NODES.items()]},
        "NodeNames": None,
    }


def args_names(p: dict[str, Any], names: list[str] | None = None) -> dict[str, Any]:
    return {"Pod": p, "Nodes": None, "NodeNames": names if names is not None else list(NODES)}


@pytest.fixture(scope="module")
def webhook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webhook]:
    started = launch_webhook(tmp_path_factory.mktemp("extender"))
    started.wait_ready()
    yield started
    started.running.stop()


@pytest.fixture(scope="module")
def client(webhook: Webhook) -> Iterator[httpx.Client]:
    with webhook.client() as c:
        yield c


def call(client: httpx.Client, verb: str, body: object) -> Any:
    answer = client.post(f"/{verb}", content=json.dumps(body))
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_prioritize_with_full_nodes_ranks_the_greenest_region_highest(client: httpx.Client) -> None:
    scores = {h["Host"]: h["Score"] for h in call(client, "prioritize", args_nodes(pod()))}
    assert scores["se-1"] == 10  # eu-north-1, 30 g/kWh
    assert scores["us-1"] == scores["us-2"] == 0  # us-east-1, 450 g/kWh, equal prices
    assert 0 < scores["ie-1"] < 10
    assert scores["bare"] == 5  # no region label: neutral
    assert set(scores) == set(NODES)


def test_filter_with_full_nodes_returns_node_objects(client: httpx.Client) -> None:
    result = call(
        client, "filter", args_nodes(pod(annotations={"ecopulse.io/allowed-regions": "eu-north-1,eu-west-1"}))
    )
    assert result["NodeNames"] is None
    assert [n["metadata"]["name"] for n in result["Nodes"]["items"]] == ["ie-1", "se-1", "bare"]
    assert set(result["FailedAndUnresolvableNodes"]) == {"us-1", "us-2"}
    assert "allowed-regions" in result["FailedAndUnresolvableNodes"]["us-1"]
    assert result["Error"] == ""


def test_filter_by_latency(client: httpx.Client) -> None:
    # us-east-1 <-> eu-west-1 is ~84 ms by the bundled estimate; eu-west-1 <-> eu-north-1 ~26 ms.
    result = call(
        client,
        "filter",
        args_nodes(
            pod(annotations={"ecopulse.io/max-latency-ms": "50", "ecopulse.io/data-region": "eu-west-1"})
        ),
    )
    kept = [n["metadata"]["name"] for n in result["Nodes"]["items"]]
    assert kept == ["ie-1", "se-1", "bare"]
    assert "max-latency" in result["FailedAndUnresolvableNodes"]["us-1"]


def test_node_names_mode_uses_the_node_cache(webhook: Webhook, client: httpx.Client) -> None:
    names = list(NODES)
    # Without a cache every region is unknown: every node passes, every score is neutral.
    scores = {h["Host"]: h["Score"] for h in call(client, "prioritize", args_names(pod(), names))}
    assert set(scores.values()) == {5}
    result = call(
        client, "filter", args_names(pod(annotations={"ecopulse.io/allowed-regions": "eu-north-1"}), names)
    )
    assert result == {
        "Nodes": None,
        "NodeNames": names,
        "FailedNodes": {},
        "FailedAndUnresolvableNodes": {},
        "Error": "",
    }


def test_node_names_mode_with_regions(tmp_path_factory: pytest.TempPathFactory) -> None:
    # The node -> region lookup a node watch would provide (the e2e tests run the real watch).
    started = launch_webhook(tmp_path_factory.mktemp("names"), node_region=NODES.get)
    try:
        started.wait_ready()
        with started.client() as c:
            scores = {h["Host"]: h["Score"] for h in call(c, "prioritize", args_names(pod()))}
            assert scores == {"us-1": 0, "us-2": 0, "ie-1": scores["ie-1"], "se-1": 10, "bare": 5}
            result = call(
                c, "filter", args_names(pod(annotations={"ecopulse.io/allowed-regions": "eu-north-1"}))
            )
        assert result["Nodes"] is None
        assert result["NodeNames"] == ["se-1", "bare"]
        assert set(result["FailedAndUnresolvableNodes"]) == {"us-1", "us-2", "ie-1"}
    finally:
        started.running.stop()


@pytest.mark.parametrize("verb", ["filter", "prioritize"])
@pytest.mark.parametrize(
    "annotations",
    [{"ecopulse.io/opt-out": "true"}, {"kubernetes.io/config.mirror": "x"}],
)
def test_opted_out_pods_get_every_node_and_neutral_scores(
    client: httpx.Client, verb: str, annotations: dict[str, str]
) -> None:
    answer = call(
        client,
        verb,
        args_nodes(pod(annotations={**annotations, "ecopulse.io/allowed-regions": "eu-north-1"})),
    )
    if verb == "filter":
        assert len(answer["Nodes"]["items"]) == len(NODES)
        assert answer["FailedAndUnresolvableNodes"] == {}
    else:
        assert {h["Score"] for h in answer} == {5}


def test_system_and_user_constrained_pods_are_left_to_the_scheduler(client: httpx.Client) -> None:
    for p in (pod(namespace="kube-system"), pod(nodeSelector={REGION: "us-east-1"})):
        assert {h["Score"] for h in call(client, "prioritize", args_nodes(p))} == {5}


def test_no_signals_fails_open(start_webhook: StartWebhook, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELECTRICITYMAPS_API_TOKEN", "t")
    monkeypatch.setenv("ECOPULSE_ALLOW_INSECURE_PROVIDER_URLS", "true")  # the unreachable fake is http://
    config = MOCK_CONFIG.replace(
        "  provider: mock\n",
        "  provider: electricitymaps\n  requestTimeoutSeconds: 0.2\n  electricitymaps: {baseUrl: 'http://127.0.0.1:9/v3'}\n",
    )
    webhook = start_webhook(config)
    before = (
        REGISTRY.get_sample_value(
            "ecopulse_extender_fail_open_total", {"verb": "prioritize", "reason": "no-usable-signals"}
        )
        or 0.0
    )
    with webhook.client() as c:
        scores = call(c, "prioritize", args_nodes(pod()))
        result = call(c, "filter", args_nodes(pod()))
    assert {h["Score"] for h in scores} == {5}
    assert len(result["Nodes"]["items"]) == len(NODES)
    after = REGISTRY.get_sample_value(
        "ecopulse_extender_fail_open_total", {"verb": "prioritize", "reason": "no-usable-signals"}
    )
    assert after == before + 1


def test_deadline_fails_open(start_webhook: StartWebhook) -> None:
    webhook = start_webhook(extender_deadline_seconds=1e-9)
    webhook.wait_ready()
    with webhook.client() as c:
        scores = call(c, "prioritize", args_nodes(pod()))
        result = call(c, "filter", args_nodes(pod(annotations={"ecopulse.io/allowed-regions": "eu-north-1"})))
    assert {h["Score"] for h in scores} == {5}
    assert len(result["Nodes"]["items"]) == len(NODES)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"nope", "not JSON"),
        (b"[]", "Expected `object`, got `array`"),
        (b"{}", "missing required field `Pod`"),
        (b'{"Pod": {}}', "neither Nodes nor NodeNames"),
        (b'{"Pod": {}, "NodeNames": [1]}', "$.NodeNames[0]"),
        (b'{"Pod": {}, "Nodes": {"items": [1]}}', "$.Nodes.items[0]"),
        (
            b'{"Pod": {}, "Nodes": {"items": [{"metadata": {"labels": {"topology.kubernetes.io/region": 1}}}]}}',
            "not ExtenderArgs",
        ),
        # Within the byte cap, but 3x more nodes than Kubernetes supports: refused before judging.
        (b'{"Pod": {}, "NodeNames": [' + b'"n",' * 15_000 + b'"n"]}', "more than 15000 nodes (15001)"),
        (
            b'{"Pod": {}, "Nodes": {"items": [' + b'{"metadata": {}},' * 15_000 + b'{"metadata": {}}]}}',
            "more than 15000 nodes (15001)",
        ),
    ],
)
def test_malformed_is_400(client: httpx.Client, body: bytes, message: str) -> None:
    for verb in ("filter", "prioritize"):
        answer = client.post(f"/{verb}", content=body)
        assert answer.status_code == 400
        assert message in answer.json()["message"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=15,
)
hostile_pod = st.fixed_dictionaries(
    {},
    optional={
        "metadata": st.fixed_dictionaries(
            {},
            optional={
                "namespace": json_values,
                "annotations": st.one_of(
                    st.dictionaries(
                        st.sampled_from(
                            [
                                "ecopulse.io/allowed-regions",
                                "ecopulse.io/max-latency-ms",
                                "ecopulse.io/opt-out",
                                "x",
                            ]
                        ),
                        st.text(max_size=10),
                    ),
                    json_values,
                ),
            },
        ),
        "spec": json_values,
    },
)
hostile_args = st.one_of(
    st.fixed_dictionaries({"Pod": hostile_pod, "NodeNames": st.lists(st.text(max_size=6), max_size=5)}),
    st.fixed_dictionaries(
        {
            "Pod": hostile_pod,
            "Nodes": st.fixed_dictionaries(
                {
                    "items": st.lists(
                        st.fixed_dictionaries(
                            {
                                "metadata": st.fixed_dictionaries(
                                    {"name": st.text(max_size=5)},
                                    optional={
                                        "labels": st.one_of(
                                            st.dictionaries(
                                                st.sampled_from([REGION, "x"]),
                                                st.sampled_from(["us-east-1", "eu-north-1", "mars-1"]),
                                            ),
                                            json_values,
                                        )
                                    },
                                )
                            }
                        ),
                        max_size=5,
                    )
                }
            ),
        }
    ),
    json_values,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=hostile_args, verb=st.sampled_from(["filter", "prioritize"]))
def test_hostile_input_never_gets_a_5xx(client: httpx.Client, body: object, verb: str) -> None:
    answer = client.post(f"/{verb}", content=json.dumps(body))
    assert answer.status_code in (200, 400), answer.text
    if answer.status_code == 200:
        result = answer.json()
        if verb == "prioritize":
            assert all(0 <= h["Score"] <= 10 for h in result)
        else:
            assert (result["Nodes"] is None) != (result["NodeNames"] is None)
