"""Hostile input at volume: over 10,000 malformed AdmissionReviews and ExtenderArgs, over TLS, to the
real webhook process (``python -m webhook``, as deployed, on loopback).

Seeded (hypothesis, derandomized), so a failure replays. Every answer is checked: never a 5xx; a
review with a readable envelope is allowed with its own uid, whatever its pod; anything else is
refused with a 400 (or a 413 past the documented body cap, the constants in webhook/); and the
process's resident memory stays bounded from the first batch to the last.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.conftest import MOCK_CONFIG, issue_tls
from tests.e2e.cluster import free_port
from webhook.admission.review import MAX_BODY_BYTES as REVIEW_MAX_BODY_BYTES
from webhook.extender.types import MAX_BODY_BYTES as EXTENDER_MAX_BODY_BYTES

REPO = Path(__file__).resolve().parents[2]
BATCH = 50
CLIENTS = 4
BATCHES = 105  # per endpoint family: 105 x 50 x 2 = 10,500 requests
RSS_GROWTH_LIMIT_BYTES = 64 * 1024 * 1024

# Wrong types, unicode (astral, combining, RTL, NUL), deep nesting, big strings. Lone surrogates
# only where the body may be refused: JSON with one is not valid UTF-8 text (the API server never
# sends one), so a review carrying one is answered 400, not decided.
SPECIAL_TEXT = ["", "\x00", "\u202e", "e\u0301", "\U0001f600" * 20, "a" * 2_000]


def texts(*, surrogates: bool) -> st.SearchStrategy[str]:
    alphabet = st.characters(codec=None) if surrogates else st.characters(exclude_categories=["Cs"])
    return st.text(alphabet=alphabet, max_size=40) | st.sampled_from(
        SPECIAL_TEXT + (["\ud800"] if surrogates else [])
    )


def values(text: st.SearchStrategy[str]) -> st.SearchStrategy[object]:
    leaf = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        text,
    )
    return st.recursive(
        leaf,
        lambda children: st.lists(children, max_size=5) | st.dictionaries(text, children, max_size=5),
        max_leaves=12,
    )


def pods(
    text: st.SearchStrategy[str], value: st.SearchStrategy[object]
) -> st.SearchStrategy[dict[str, object]]:
    """Pod-shaped objects with every field possibly of the wrong type."""
    annotations = st.dictionaries(
        st.sampled_from(["ecopulse.io/opt-out", "ecopulse.io/max-carbon", "x"]), value, max_size=3
    )
    requests = st.dictionaries(st.sampled_from(["cpu", "memory"]), text | value)
    container = st.fixed_dictionaries(
        {},
        optional={
            "name": text | value,
            "resources": st.fixed_dictionaries({}, optional={"requests": requests}) | value,
        },
    )
    return st.fixed_dictionaries(
        {},
        optional={
            "apiVersion": st.just("v1") | value,
            "kind": st.just("Pod") | value,
            "metadata": st.fixed_dictionaries(
                {},
                optional={
                    "name": text | value,
                    "namespace": text | value,
                    "annotations": annotations | value,
                    "labels": value,
                    "ownerReferences": value,
                },
            )
            | value,
            "spec": st.fixed_dictionaries(
                {},
                optional={
                    "containers": st.lists(container, max_size=3) | value,
                    "affinity": value,
                    "nodeSelector": value,
                    "tolerations": value,
                },
            )
            | value,
        },
    )


clean_text = texts(surrogates=False)
text = texts(surrogates=True)
value = values(text)
pod = pods(text, value)
clean_pod = pods(clean_text, values(clean_text))
uid = st.text(alphabet=st.characters(exclude_categories=["Cs"]), min_size=1, max_size=40)
readable_review = st.builds(
    lambda uid, obj, namespace, operation, dry_run: {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "operation": operation,
            "namespace": namespace,
            "object": obj,
            "dryRun": dry_run,
        },
    },
    uid,
    clean_pod,
    clean_text,
    st.sampled_from(["CREATE", "UPDATE", "DELETE", "CONNECT", ""]) | clean_text,
    st.booleans(),
)
broken_review = st.one_of(
    value,
    st.fixed_dictionaries(
        {"apiVersion": st.just("admission.k8s.io/v1") | value, "kind": st.just("AdmissionReview") | value},
        optional={
            "request": st.fixed_dictionaries(
                {}, optional={"uid": uid | value, "kind": value, "operation": value, "object": value | pod}
            )
            | value
        },
    ),
)
raw_junk = st.one_of(
    st.binary(max_size=300),
    st.integers(1, 5_000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(1, 5_000).map(lambda depth: b'{"a":' * depth + b"1" + b"}" * depth),
    st.just(b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "x"'),
)
extender_args = st.one_of(
    value,
    st.fixed_dictionaries(
        {},
        optional={
            "Pod": pod | value,
            "NodeNames": st.lists(text, max_size=20) | value,
            "Nodes": st.fixed_dictionaries({}, optional={"items": st.lists(value, max_size=5) | value})
            | value,
        },
    ),
)


class RealWebhook:
    def __init__(self, directory: Path) -> None:
        ca_file = issue_tls(directory / "tls")
        (directory / "config.yaml").write_text(MOCK_CONFIG)
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "webhook"],
            env={
                **os.environ,
                "ECOPULSE_CONFIG": str(directory / "config.yaml"),
                "ECOPULSE_TLS_DIR": str(directory / "tls"),
                "ECOPULSE_BIND_ADDRESS": "127.0.0.1",
                "ECOPULSE_WEBHOOK_PORT": str(self.port),
                "ECOPULSE_METRICS_BIND_ADDRESS": "127.0.0.1",
                "ECOPULSE_METRICS_PORT": str(free_port()),
                "ECOPULSE_WATCH_CLUSTER": "false",
                "ECOPULSE_LOG_LEVEL": "WARNING",  # decision lines at this volume are not the subject
                "PYTHONPATH": str(REPO),
            },
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=directory,
        )
        self.client = httpx.Client(
            base_url=f"https://localhost:{self.port}",
            verify=ssl.create_default_context(cafile=str(ca_file)),
            timeout=30,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if self.client.get("/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("the webhook did not become ready")
            time.sleep(0.1)
        self.rss_after_warm_up_bytes = 0
        # Several connections at once, as the API server and the scheduler call: the volume
        # takes a fraction of the time, and requests overlap in the server.
        self.clients = ThreadPoolExecutor(CLIENTS)

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def post(self, path: str, body: bytes) -> httpx.Response:
        return self.client.post(path, content=body, headers={"Content-Type": "application/json"})

    def stop(self) -> None:
        self.clients.shutdown()
        self.client.close()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def webhook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealWebhook]:
    running = RealWebhook(tmp_path_factory.mktemp("fuzz"))
    yield running
    running.stop()


def encode(document: object) -> bytes:
    return json.dumps(document).encode()


def check_admission(webhook: RealWebhook, body: bytes, *, readable_uid: str | None) -> None:
    answer = webhook.post("/mutate", body)
    assert answer.status_code < 500, (answer.status_code, answer.text[:300], body[:300])
    if readable_uid is not None:
        assert answer.status_code == 200, (answer.text[:300], body[:300])
    if answer.status_code == 200:
        response = answer.json()["response"]
        assert response["allowed"] is True
        assert readable_uid is None or response["uid"] == readable_uid
    else:
        assert answer.status_code in (400, 413), answer.status_code


def remember_rss(webhook: RealWebhook) -> None:
    if not webhook.rss_after_warm_up_bytes:
        webhook.rss_after_warm_up_bytes = webhook.rss_bytes()


FUZZ = settings(
    max_examples=BATCHES,
    derandomize=True,  # seeded: the same 10,500 bodies every run
    database=None,
    # No shrinking: a batch of 50 against a live server shrinks slowly; the failing body is in the message.
    phases=(Phase.explicit, Phase.generate),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)


@FUZZ
@given(
    st.lists(
        st.one_of(
            readable_review.map(lambda r: ("readable", r)),
            broken_review.map(lambda r: ("broken", r)),
            raw_junk.map(lambda b: ("raw", b)),
        ),
        min_size=BATCH,
        max_size=BATCH,
    )
)
def test_admission_reviews_at_volume(webhook: RealWebhook, batch: list[tuple[str, object]]) -> None:
    def one(entry: tuple[str, object]) -> None:
        kind, item = entry
        if kind == "raw":
            assert isinstance(item, bytes)
            check_admission(webhook, item, readable_uid=None)
        elif kind == "readable":
            assert isinstance(item, dict)
            check_admission(webhook, encode(item), readable_uid=item["request"]["uid"])
        else:
            check_admission(webhook, encode(item), readable_uid=None)

    list(webhook.clients.map(one, batch))  # list(): raises the first failure
    remember_rss(webhook)


@FUZZ
@given(st.lists(st.one_of(extender_args.map(encode), raw_junk), min_size=BATCH, max_size=BATCH))
def test_extender_args_at_volume(webhook: RealWebhook, batch: list[bytes]) -> None:
    def one(entry: tuple[int, bytes]) -> None:
        index, body = entry
        answer = webhook.post("/filter" if index % 2 else "/prioritize", body)
        assert answer.status_code in (200, 400, 413), (answer.status_code, answer.text[:300], body[:300])

    list(webhook.clients.map(one, enumerate(batch)))
    remember_rss(webhook)


def test_the_documented_body_caps_are_enforced(webhook: RealWebhook) -> None:
    envelope = b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{},"operation":"CREATE","object":{"pad":"'
    closing = b'"}}}'
    for path, cap in (("/mutate", REVIEW_MAX_BODY_BYTES), ("/filter", EXTENDER_MAX_BODY_BYTES)):
        over = envelope + b"x" * (cap + 1 - len(envelope) - len(closing)) + closing
        assert len(over) == cap + 1
        assert webhook.post(path, over).status_code == 413
    under = envelope + b"x" * (REVIEW_MAX_BODY_BYTES - len(envelope) - len(closing)) + closing
    answer = webhook.post("/mutate", under)
    assert answer.status_code == 200 and answer.json()["response"]["uid"] == "u"
    remember_rss(webhook)


def test_memory_stays_bounded_after_the_volume(webhook: RealWebhook) -> None:
    """Runs last in this module: from the first batch's RSS to now, no more than the limit."""
    assert webhook.rss_after_warm_up_bytes, "run with the volume tests"
    grown = webhook.rss_bytes() - webhook.rss_after_warm_up_bytes
    assert grown < RSS_GROWTH_LIMIT_BYTES, f"RSS grew by {grown / 2**20:.0f} MiB"
    assert webhook.post("/mutate", b"{}").status_code == 400  # and it still answers
