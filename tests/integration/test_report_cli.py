"""``python -m report`` end to end: the real CLI ``main(argv)`` against a fake Prometheus that speaks
the HTTP API over a real socket, and against a REAL Prometheus (``test_report_against_real_prometheus``)."""

from __future__ import annotations

import csv
import itertools
import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from report.cli import main
from report.figures import PRICE_SOURCES_QUERY
from report.prometheus import PrometheusClient

START = datetime(2026, 7, 1, tzinfo=UTC)
END = START + timedelta(hours=6)
TOKEN = "prom-T0KEN-5ecr3t-9d1e"

# What the fake's queries select: `sum by (<labels>) (increase(<metric>[{namespace=~"re"}][<n>s]))`.
QUERY = re.compile(
    r'^sum by \((?P<by>[a-z_, ]+)\) \(increase\((?P<metric>[a-z_]+)(?:\{namespace=~(?P<re>"(?:[^"\\]|\\.)*")\})?'
    r"\[(?P<window>\d+)s\]\)\)$"
)

Labels = dict[str, str]


def ns(namespace: str, region: str, **extra: str) -> Labels:
    return {"namespace": namespace, "region": region, **extra}


# Per-series increase over the whole range (before the fake's `sum by`), per metric.
INSTANT: dict[str, list[tuple[Labels, float]]] = {
    "ecopulse_pod_seconds_total": [
        (ns("shop", "eu-north-1", cleaner_than_baseline="true", pod="a"), 7200),
        (ns("shop", "eu-north-1", cleaner_than_baseline="true", pod="b"), 3600),
        (ns("shop", "us-east-1", cleaner_than_baseline="false"), 3600),
        (ns("batch", "ap-south-1", cleaner_than_baseline="false"), 1800),
        (ns("dev", "eu-north-1", cleaner_than_baseline="true"), 900),
    ],
    "ecopulse_energy_kwh_total": [
        (ns("shop", "eu-north-1"), 1.5),
        (ns("shop", "us-east-1"), 0.25),
        (ns("batch", "ap-south-1"), 0.125),
        (ns("dev", "eu-north-1"), 0.0625),
    ],
    "ecopulse_emissions_grams_total": [
        (ns("shop", "eu-north-1"), 45),
        (ns("shop", "us-east-1"), 112.5),
        (ns("batch", "ap-south-1"), 80),
        (ns("dev", "eu-north-1"), 1.875),
    ],
    "ecopulse_cost_usd_total": [
        (ns("shop", "eu-north-1"), 0.0936),
        (ns("shop", "us-east-1"), 0.0312),
        (ns("batch", "ap-south-1"), 0.05),
        (ns("dev", "eu-north-1"), 0.0078),
    ],
    "ecopulse_carbon_avoided_grams_total": [(ns("shop", "eu-north-1"), 600), (ns("dev", "eu-north-1"), 105)],
    # batch only ever ran dirtier than the baseline: it has no `avoided` series at all
    "ecopulse_carbon_added_grams_total": [(ns("shop", "us-east-1"), 0), (ns("batch", "ap-south-1"), 250)],
    "ecopulse_cost_saved_usd_total": [(ns("shop", "eu-north-1"), 0.002)],
    "ecopulse_cost_added_usd_total": [(ns("batch", "ap-south-1"), 0.01)],
}
# Per-series increase over each step of a range query.
PER_STEP: dict[str, list[tuple[Labels, float]]] = {
    "ecopulse_carbon_avoided_grams_total": [(ns("shop", "eu-north-1"), 50), (ns("dev", "eu-north-1"), 10)],
    "ecopulse_carbon_added_grams_total": [(ns("batch", "ap-south-1"), 20)],
    "ecopulse_cost_saved_usd_total": [(ns("shop", "eu-north-1"), 0.001)],
    "ecopulse_cost_added_usd_total": [(ns("batch", "ap-south-1"), 0.002)],
}

NAMESPACES_CSV = """\
namespace,pod_hours,share_pod_hours_cleaner_than_baseline,energy_kwh,emissions_kg,net_carbon_avoided_kg,cost_usd,net_cost_saved_usd
shop,4,0.75,1.75,0.1575,0.6,0.1248,0.002
dev,0.25,1,0.0625,0.001875,0.105,0.0078,0
batch,0.5,0,0.125,0.08,-0.25,0.05,-0.01
TOTAL,4.75,0.684211,1.9375,0.239375,0.455,0.1826,-0.008
"""
REGIONS_CSV = """\
region,pod_hours,share_pod_hours_cleaner_than_baseline,energy_kwh,emissions_kg,net_carbon_avoided_kg,cost_usd,net_cost_saved_usd
eu-north-1,3.25,1,1.5625,0.046875,0.705,0.1014,0.002
us-east-1,1,0,0.25,0.1125,0,0.0312,0
ap-south-1,0.5,0,0.125,0.08,-0.25,0.05,-0.01
TOTAL,4.75,0.684211,1.9375,0.239375,0.455,0.1826,-0.008
"""
FILES = ["namespaces.csv", "regions.csv", "report.html", "report.json"]


@dataclass
class Forced:
    status: int
    body: bytes
    content_type: str = "application/json"


@dataclass
class FakePrometheus:
    """Answers /api/v1/query and /api/v1/query_range (GET or form POST) as Prometheus does, summing the
    fixture series `by` the query's labels; checks the bearer token when it has one."""

    instant: dict[str, list[tuple[Labels, float]]] = field(default_factory=lambda: INSTANT)
    per_step: dict[str, list[tuple[Labels, float]]] = field(default_factory=lambda: PER_STEP)
    token: str | None = None
    forced: Forced | None = None  # answer every request with this...
    forced_after: int = 0  # ...once this many requests were answered normally
    delay_seconds: float = 0.0
    requests: list[tuple[str, dict[str, str], dict[str, str]]] = field(default_factory=list)
    url: str = ""

    def answer(self, path: str, params: dict[str, str], headers: dict[str, str]) -> tuple[int, bytes, str]:
        self.requests.append((path, params, headers))
        if self.delay_seconds:
            time.sleep(self.delay_seconds)
        if self.forced is not None and len(self.requests) > self.forced_after:
            return self.forced.status, self.forced.body, self.forced.content_type
        if self.token is not None and headers.get("authorization") != f"Bearer {self.token}":
            return 401, b"Unauthorized\n", "text/plain"
        if path not in ("/api/v1/query", "/api/v1/query_range"):
            return 404, b"404 page not found\n", "text/plain"
        if params.get("query") == PRICE_SOURCES_QUERY and path == "/api/v1/query":
            at = float(params["time"])
            return ok("vector", [{"metric": {"source": "azure"}, "value": [at, "12"]}])
        match = QUERY.match(params.get("query", ""))
        if match is None:
            return error(400, "bad_data", f'invalid parameter "query": cannot parse {params.get("query")!r}')
        by = [label.strip() for label in match["by"].split(",")]
        regex = json.loads(match["re"]) if match["re"] else None

        def sums(series: list[tuple[Labels, float]]) -> dict[tuple[tuple[str, str], ...], float]:
            out: dict[tuple[tuple[str, str], ...], float] = {}
            for labels, value in series:
                if regex is None or re.fullmatch(regex, labels["namespace"]):
                    key = tuple((name, labels[name]) for name in by if name in labels)
                    out[key] = out.get(key, 0.0) + value
            return out

        if path == "/api/v1/query":
            at = float(params["time"])
            result: list[dict[str, Any]] = [
                {"metric": dict(key), "value": [at, repr(value)]}
                for key, value in sums(self.instant.get(match["metric"], [])).items()
            ]
            return ok("vector", result)
        start, end, step = float(params["start"]), float(params["end"]), float(params["step"])
        if end < start or step <= 0:
            return error(400, "bad_data", "invalid parameter: end timestamp must not be before start time")
        if (end - start) / step > 11000:
            return error(
                400,
                "bad_data",
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query "
                "resolution (?step=XX)",
            )
        times = [start + k * step for k in range(int((end - start) // step) + 1)]
        result = [
            {"metric": dict(key), "values": [[t, repr(value)] for t in times]}
            for key, value in sums(self.per_step.get(match["metric"], [])).items()
        ]
        return ok("matrix", result)

    def queries(self, path: str) -> list[dict[str, str]]:
        """The figures' queries (the price-sources query aside: prices_asked counts it)."""
        return [
            params
            for p, params, _ in self.requests
            if p == path and params.get("query") != PRICE_SOURCES_QUERY
        ]

    def prices_asked(self) -> int:
        return sum(1 for _, params, _ in self.requests if params.get("query") == PRICE_SOURCES_QUERY)


def ok(kind: str, result: list[dict[str, Any]]) -> tuple[int, bytes, str]:
    return (
        200,
        json.dumps({"status": "success", "data": {"resultType": kind, "result": result}}).encode(),
        "application/json",
    )


def error(status: int, kind: str, message: str) -> tuple[int, bytes, str]:
    return (
        status,
        json.dumps({"status": "error", "errorType": kind, "error": message}).encode(),
        "application/json",
    )


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def prometheus() -> Iterator[FakePrometheus]:
    fake = FakePrometheus()

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, params: dict[str, str]) -> None:
            status, body, content_type = fake.answer(
                urlsplit(self.path).path, params, {k.lower(): v for k, v in self.headers.items()}
            )
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._reply({k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = parse_qs(self.rfile.read(length).decode())
            self._reply({k: v[-1] for k, v in form.items()})

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield fake
    server.shutdown()
    server.server_close()


def run(
    prometheus_url: str,
    out: Path,
    *extra: str,
    start: str = "2026-07-01T00:00:00Z",
    end: str | None = "2026-07-01T06:00:00Z",
) -> int:
    argv = ["--prometheus", prometheus_url, "--start", start, "--out", str(out), *extra]
    if end is not None:
        argv += ["--end", end]
    return main(argv)


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_writes_the_csv_json_and_html_from_prometheus(
    prometheus: FakePrometheus, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "reports" / "q3"
    assert run(prometheus.url, out) == 0
    assert sorted(p.name for p in out.iterdir()) == FILES
    assert read(out / "namespaces.csv") == NAMESPACES_CSV
    assert read(out / "regions.csv") == REGIONS_CSV
    assert [p.name for p in (tmp_path / "reports").iterdir()] == ["q3"]  # no staging left behind

    # every total is one instant query at `end` over the whole range, grouped by namespace and region
    instants = prometheus.queries("/api/v1/query")
    assert len(instants) == 8
    assert {float(q["time"]) for q in instants} == {END.timestamp()}
    assert all("[21600s]" in q["query"] for q in instants)
    assert all(q["timeout"] == "30" for q in instants)  # seconds, as the API reads durations
    # the timeline: increase over each 1h step, from start + 1h to end
    ranges = prometheus.queries("/api/v1/query_range")
    assert len(ranges) == 4
    assert {(float(q["start"]), float(q["end"]), q["step"]) for q in ranges} == {
        ((START + timedelta(hours=1)).timestamp(), END.timestamp(), "3600")
    }
    assert all("[3600s]" in q["query"] for q in ranges)

    data = json.loads(read(out / "report.json"))
    meta = data["meta"]
    assert meta["prometheus"] == prometheus.url
    assert (meta["start"], meta["end"], meta["rangeSeconds"], meta["stepSeconds"]) == (
        "2026-07-01T00:00:00Z",
        "2026-07-01T06:00:00Z",
        21600,
        3600,
    )
    assert "increase" in meta["methodology"]
    assert "extrapolat" in meta["methodology"]
    assert set(meta["queries"]["totals"].values()) == {q["query"] for q in instants}
    assert meta["priceSources"] == ["azure"] and prometheus.prices_asked() == 1
    assert "Prices from: azure" in read(out / "report.html")
    assert set(meta["queries"]["timeline"].values()) == {q["query"] for q in ranges}
    assert datetime.fromisoformat(meta["generatedAt"]).tzinfo is not None
    assert meta["warnings"] == []
    assert [r["namespace"] for r in data["namespaces"]["rows"]] == ["shop", "dev", "batch"]
    assert data["namespaces"]["rows"][2] == {
        "namespace": "batch",
        "podHours": 0.5,
        "sharePodHoursCleanerThanBaseline": 0.0,
        "energyKwh": 0.125,
        "emissionsKg": 0.08,
        "netCarbonAvoidedKg": -0.25,
        "costUsd": 0.05,
        "netCostSavedUsd": -0.01,
    }
    assert data["namespaces"]["total"]["netCarbonAvoidedKg"] == 0.455
    namespace_total = {k: v for k, v in data["namespaces"]["total"].items() if k != "namespace"}
    assert data["regions"]["total"] == {"region": "TOTAL", **namespace_total}
    timeline = data["timeline"]
    assert timeline["times"] == [f"2026-07-01T0{h}:00:00Z" for h in range(7)]
    assert timeline["netCarbonAvoidedKg"] == {
        "shop": [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3],
        "dev": [0.0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06],
        "batch": [0.0, -0.02, -0.04, -0.06, -0.08, -0.1, -0.12],
    }
    assert timeline["netCostSavedUsd"]["batch"] == [0.0, -0.002, -0.004, -0.006, -0.008, -0.01, -0.012]

    page = read(out / "report.html")
    assert page.count("<svg") == 2
    assert "Cumulative net avoided CO2 per namespace" in page
    assert "Cumulative net cost saved per namespace" in page
    assert "<td>batch</td>" in page
    assert "<td>-0.25</td>" in page
    assert "<script" not in page
    assert not re.search(r"""(src|href)=["']https?:""", page)  # self-contained
    assert "matplotlib is not installed" not in page

    printed = capsys.readouterr()
    assert printed.err == ""
    assert "TOTAL" in printed.out
    assert f"{out}/report.html" in printed.out


def test_namespace_regex_step_and_relative_start(prometheus: FakePrometheus, tmp_path: Path) -> None:
    now = datetime(2026, 7, 8, 0, 0, 0, 123456, tzinfo=UTC)
    out = tmp_path / "week"
    code = main(
        [
            "--prometheus",
            prometheus.url + "/",
            "--start",
            "-7d",
            "--out",
            str(out),
            "--namespace",
            "shop|batch",
            "--step",
            "1d",
        ],
        now=now,
    )
    assert code == 0
    instants = prometheus.queries("/api/v1/query")
    assert {float(q["time"]) for q in instants} == {now.replace(microsecond=0).timestamp()}
    assert all('{namespace=~"shop|batch"}[604800s]' in q["query"] for q in instants)
    rows = list(csv.DictReader(read(out / "namespaces.csv").splitlines()))
    assert [r["namespace"] for r in rows] == ["shop", "batch", "TOTAL"]
    assert rows[-1]["net_carbon_avoided_kg"] == "0.35"
    ranges = prometheus.queries("/api/v1/query_range")
    assert {q["step"] for q in ranges} == {"86400"}
    data = json.loads(read(out / "report.json"))
    assert data["meta"]["namespaceRegex"] == "shop|batch"
    assert data["meta"]["start"] == "2026-07-01T00:00:00Z"
    assert len(data["timeline"]["times"]) == 8
    assert data["timeline"]["netCarbonAvoidedKg"]["shop"][-1] == pytest.approx(0.35)


def test_a_long_timeline_is_split_into_requests_prometheus_accepts(
    prometheus: FakePrometheus, tmp_path: Path
) -> None:
    # 6 h at 1 s is 21,600 points per series: more than the 11,000 Prometheus answers at once
    assert run(prometheus.url, tmp_path / "fine", "--step", "1s") == 0
    ranges = prometheus.queries("/api/v1/query_range")
    assert len(ranges) == 4 * 3
    data = json.loads(read(tmp_path / "fine" / "report.json"))
    shop = data["timeline"]["netCarbonAvoidedKg"]["shop"]
    assert len(shop) == 21601
    assert shop[:3] == [0.0, 0.05, 0.1]
    assert shop[-1] == pytest.approx(0.05 * 21600)
    assert all(b - a == pytest.approx(0.05) for a, b in itertools.pairwise(shop))  # no gap, no overlap


def test_bearer_token_is_sent_and_never_shown(
    prometheus: FakePrometheus, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prometheus.token = TOKEN
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    assert run(prometheus.url, tmp_path / "ok", "--bearer-token-file", str(token_file)) == 0
    assert TOKEN not in "".join(read(tmp_path / "ok" / name) for name in FILES)

    # a proxy that refuses the token and echoes it: the message does not repeat it
    token_file.write_text("wrong-" + TOKEN)
    refusal = {"status": "error", "errorType": "unauthorized", "error": f"invalid token wrong-{TOKEN}"}
    prometheus.forced = Forced(401, json.dumps(refusal).encode())
    prometheus.forced_after = len(prometheus.requests)
    assert run(prometheus.url, tmp_path / "refused", "--bearer-token-file", str(token_file)) == 2
    err = capsys.readouterr().err
    assert "HTTP 401, unauthorized: invalid token <redacted>" in err
    assert TOKEN not in err
    assert not (tmp_path / "refused").exists()

    # and the credential part of a URL is never printed or stored
    prometheus.forced = None
    prometheus.token = None
    url = prometheus.url.replace("http://", "http://finops:hunter2@")
    assert run(url, tmp_path / "basic") == 0
    assert "hunter2" not in read(tmp_path / "basic" / "report.json")
    assert prometheus.requests[-1][2]["authorization"].startswith("Basic ")


def only_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    ("forced", "after", "expected"),
    [
        (
            Forced(500, b"<html>internal error</html>", "text/html"),
            0,
            "HTTP 500 Internal Server Error (text/html, 27 bytes)",
        ),
        (
            Forced(
                400,
                json.dumps(
                    {"status": "error", "errorType": "bad_data", "error": "parse error: unexpected }"}
                ).encode(),
            ),
            0,
            "HTTP 400, bad_data: parse error: unexpected }",
        ),
        (
            Forced(
                503,
                json.dumps(
                    {
                        "status": "error",
                        "errorType": "timeout",
                        "error": "query timed out in expression evaluation",
                    }
                ).encode(),
            ),
            5,  # fails mid-way, after five queries went well
            "HTTP 503, timeout: query timed out in expression evaluation",
        ),
        (
            Forced(
                200,
                json.dumps(
                    {
                        "status": "error",
                        "errorType": "execution",
                        "error": "many-to-many matching not allowed",
                    }
                ).encode(),
            ),
            0,
            "status 'error', execution: many-to-many matching not allowed",
        ),
        (Forced(200, b"<!doctype html><title>Grafana</title>", "text/html"), 0, "the answer is not JSON"),
        (
            Forced(
                200,
                b'{"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, 2]}]}}',
            ),
            0,
            "unexpected answer",
        ),
        (
            Forced(200, b'{"status": "success", "data": {"resultType": "scalar", "result": [1, "2"]}}'),
            0,
            "expected a vector result, got scalar",
        ),
        (
            Forced(200, b'{"status": "success", "data": {"resultType": "vector", "result": []}}'),
            8,
            "expected a matrix result, got vector",
        ),
    ],
    ids=[
        "500",
        "400-bad-data",
        "503-mid-way",
        "status-error",
        "not-json",
        "wrong-shape",
        "scalar",
        "vector-for-range",
    ],
)
def test_prometheus_errors_exit_2_with_one_line_and_write_nothing(
    prometheus: FakePrometheus,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    forced: Forced,
    after: int,
    expected: str,
) -> None:
    prometheus.forced, prometheus.forced_after = forced, after
    assert run(prometheus.url, tmp_path / "out" / "q3") == 2
    line = only_line(capsys.readouterr().err)
    assert line.startswith(f"report: Prometheus at {prometheus.url}: ")
    assert expected in line
    assert "(query: sum by (namespace" in line
    assert not (tmp_path / "out").exists()


def test_unreachable_and_slow_prometheus(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], prometheus: FakePrometheus
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert run(f"http://127.0.0.1:{port}", tmp_path / "out") == 2
    line = only_line(capsys.readouterr().err)
    assert f"report: Prometheus at http://127.0.0.1:{port}: cannot reach it" in line

    prometheus.delay_seconds = 1.0
    began = time.monotonic()
    assert run(prometheus.url, tmp_path / "out", "--timeout-seconds", "0.2") == 2
    assert time.monotonic() - began < 1.0
    assert "no answer within 0.2 s" in only_line(capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--start", "2026-07-02T00:00:00Z", "--end", "2026-07-01T00:00:00Z"],
            "--end (2026-07-01T00:00:00Z) must be after --start",
        ),
        (["--start", "1 July", "--end", "2026-07-01T00:00:00Z"], "--start: not a time: '1 July'"),
        (["--start", "2026-07-01T00:00:00", "--end", "2026-07-02T00:00:00Z"], "has no timezone"),
        (["--start", "-7q"], "not a duration: '7q'"),
        (
            ["--start", "2026-07-01T00:00:00Z", "--end", "2026-07-02T00:00:00Z", "--step", "often"],
            "not a duration: 'often'",
        ),
        (
            ["--start", "2026-07-01T00:00:00Z", "--end", "2026-07-02T00:00:00Z", "--step", "500ms"],
            "--step: must be a whole number of seconds",
        ),
        (
            ["--start", "2026-07-01T00:00:00Z", "--end", "2026-07-01T01:00:00Z", "--step", "2h"],
            "is longer than the range",
        ),
        (["--start", "-365d", "--step", "10s"], "gives 3153600 points over the range"),
        (["--start", "-1d", "--timeout-seconds", "0"], "--timeout-seconds: must be > 0"),
        (["--start", "-1d", "--bearer-token-file", "/nonexistent/token"], "--bearer-token-file: cannot read"),
    ],
)
def test_bad_arguments_exit_2_with_one_line_before_any_query(
    prometheus: FakePrometheus,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    assert main(["--prometheus", prometheus.url, "--out", str(tmp_path / "out"), *argv]) == 2
    line = only_line(capsys.readouterr().err)
    assert line.startswith("report: ")
    assert message in line
    assert prometheus.requests == []
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("url", ["prometheus:9090", "ftp://prometheus", "http://"])
def test_bad_prometheus_url_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str) -> None:
    assert run(url, tmp_path / "out") == 2
    assert "--prometheus: " in only_line(capsys.readouterr().err)


def test_out_is_a_file_exits_2(
    prometheus: FakePrometheus, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "out").write_text("not a directory")
    assert run(prometheus.url, tmp_path / "out") == 2
    assert "--out: " in only_line(capsys.readouterr().err)
    assert prometheus.requests == []


def test_rerun_replaces_the_files_and_keeps_others(prometheus: FakePrometheus, tmp_path: Path) -> None:
    out = tmp_path / "q3"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "namespaces.csv").write_text("stale")
    assert run(prometheus.url, out) == 0
    assert read(out / "namespaces.csv") == NAMESPACES_CSV
    assert read(out / "notes.txt") == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q3"]


def test_no_series_in_range_still_writes_a_report_and_says_why(
    prometheus: FakePrometheus, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prometheus.instant, prometheus.per_step = {}, {}
    assert run(prometheus.url, tmp_path / "empty", "--namespace", "nothing-.*") == 0
    assert read(tmp_path / "empty" / "namespaces.csv").splitlines()[1:] == ["TOTAL,0,,0,0,0,0,0"]
    err = capsys.readouterr().err
    assert "no Eco-Pulse series in this range" in err
    assert "--namespace" in err
    assert (
        "no Eco-Pulse series" in json.loads(read(tmp_path / "empty" / "report.json"))["meta"]["warnings"][0]
    )


def test_without_matplotlib_the_page_has_tables_and_says_why_no_charts(
    prometheus: FakePrometheus,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # as if the `sim` extra were not installed: importing matplotlib fails
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert run(prometheus.url, tmp_path / "plain") == 0
    page = read(tmp_path / "plain" / "report.html")
    assert "<svg" not in page
    assert "matplotlib is not installed" in page
    assert "<td>shop</td>" in page
    assert "matplotlib is not installed" in capsys.readouterr().err
    assert read(tmp_path / "plain" / "namespaces.csv") == NAMESPACES_CSV


def test_prometheus_warnings_are_passed_on(prometheus: FakePrometheus, tmp_path: Path) -> None:
    body = {
        "status": "success",
        "warnings": ["PromQL warning: something odd"],
        "data": {"resultType": "vector", "result": []},
    }
    prometheus.forced = Forced(200, json.dumps(body).encode())
    with PrometheusClient(prometheus.url) as client:
        assert client.instant("up", END) == []
        assert client.warnings == ["Prometheus warning: PromQL warning: something odd (query: up)"]


# --------------------------------------------------------------------------------------------------
# Against a REAL Prometheus (the `prometheus` and `promtool` binaries; hack/install-prometheus.sh).
# --------------------------------------------------------------------------------------------------

REAL_BUDGET_SECONDS = 20.0
INSTALL_HINT = "run hack/install-prometheus.sh to install prometheus and promtool"
T0 = datetime(2024, 1, 1, tzinfo=UTC)  # first sample; samples every minute for 5 hours
SAMPLE_SECONDS = 60
SAMPLES = 5 * 60 + 1
REAL_START, REAL_END = T0 + timedelta(hours=1), T0 + timedelta(hours=4)  # 180 sample intervals inside


@dataclass(frozen=True)
class Counter:
    metric: str  # without _total (the OpenMetrics family name)
    labels: Labels
    per_minute: float
    reset_at: int | None = None  # sample index where a new leader starts the counter again


COUNTERS = [
    Counter("ecopulse_pod_seconds", ns("shop", "eu-north-1", cleaner_than_baseline="true"), 120),
    Counter("ecopulse_pod_seconds", ns("shop", "us-east-1", cleaner_than_baseline="false"), 60),
    Counter(
        "ecopulse_pod_seconds", ns("batch", "ap-south-1", cleaner_than_baseline="false"), 60, reset_at=150
    ),
    Counter("ecopulse_pod_seconds", ns("dev", "eu-north-1", cleaner_than_baseline="true"), 30),
    Counter("ecopulse_energy_kwh", ns("shop", "eu-north-1"), 0.25),
    Counter("ecopulse_energy_kwh", ns("shop", "us-east-1"), 0.125),
    Counter("ecopulse_energy_kwh", ns("batch", "ap-south-1"), 0.125, reset_at=150),
    Counter("ecopulse_emissions_grams", ns("shop", "eu-north-1"), 10),
    Counter("ecopulse_emissions_grams", ns("shop", "us-east-1"), 50),
    Counter("ecopulse_emissions_grams", ns("batch", "ap-south-1"), 80, reset_at=150),
    Counter("ecopulse_cost_usd", ns("shop", "eu-north-1"), 0.5),
    Counter("ecopulse_cost_usd", ns("batch", "ap-south-1"), 0.25, reset_at=150),
    Counter("ecopulse_carbon_avoided_grams", ns("shop", "eu-north-1"), 500),
    Counter("ecopulse_carbon_avoided_grams", ns("dev", "eu-north-1"), 100),
    Counter("ecopulse_carbon_added_grams", ns("shop", "us-east-1"), 100),
    Counter("ecopulse_carbon_added_grams", ns("batch", "ap-south-1"), 250, reset_at=150),  # only `added`
    Counter("ecopulse_cost_saved_usd", ns("shop", "eu-north-1"), 0.0625),
    Counter("ecopulse_cost_added_usd", ns("batch", "ap-south-1"), 0.03125, reset_at=150),
]
REAL_MINUTES = 180
# Expected (pod_hours, share, energy, emissions_kg, net_avoided_kg, cost, net_saved) per namespace:
# per-minute rate x 180 minutes (increase over samples that sit exactly on the range's edges is exact).
REAL_EXPECTED = {
    "shop": (9.0, 2 / 3, 67.5, 10.8, 72.0, 90.0, 11.25),
    "dev": (1.5, 1.0, 0.0, 0.0, 18.0, 0.0, 0.0),
    "batch": (3.0, 0.0, 22.5, 14.4, -45.0, 45.0, -5.625),
}


def openmetrics() -> str:
    families: dict[str, list[str]] = {}
    for c in COUNTERS:
        labels = ",".join(f'{k}="{v}"' for k, v in c.labels.items())
        lines = families.setdefault(c.metric, [])
        for i in range(SAMPLES):
            if c.reset_at is not None and i >= c.reset_at:
                value = c.per_minute * (i - c.reset_at + 1)  # restarted from 0 just after the last sample
            else:
                value = 1000 + c.per_minute * i
            at = T0.timestamp() + i * SAMPLE_SECONDS
            lines.append(f"{c.metric}_total{{{labels}}} {value!r} {at:.0f}")
    text = "".join(f"# TYPE {name} counter\n" + "\n".join(lines) + "\n" for name, lines in families.items())
    return text + "# EOF\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_report_against_real_prometheus(tmp_path: Path) -> None:
    """REAL Prometheus: a TSDB built by promtool from known counters (with a counter reset), served by the
    prometheus binary on loopback, and the report checked against the counters' exact increases."""
    began = time.monotonic()
    found = {name: shutil.which(name) for name in ("prometheus", "promtool")}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not found: {INSTALL_HINT}")
    binaries = {name: str(path) for name, path in found.items()}
    (tmp_path / "metrics.om").write_text(openmetrics())
    data_dir = tmp_path / "tsdb"
    subprocess.run(
        [
            binaries["promtool"],
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            str(tmp_path / "metrics.om"),
            str(data_dir),
        ],
        check=True,
        capture_output=True,
        timeout=REAL_BUDGET_SECONDS,
    )
    (tmp_path / "prometheus.yml").write_text("global:\n  scrape_interval: 1h\nscrape_configs: []\n")
    log = (tmp_path / "prometheus.log").open("wb")
    port = free_port()
    process = subprocess.Popen(
        [
            binaries["prometheus"],
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={data_dir}",
            "--storage.tsdb.retention.time=100y",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"prometheus exited with {process.returncode}: {(tmp_path / 'prometheus.log').read_text()[-2000:]}"
                )
            if time.monotonic() - began > REAL_BUDGET_SECONDS:
                pytest.fail(f"prometheus not ready within {REAL_BUDGET_SECONDS:.0f} s: {INSTALL_HINT}")
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)

        out = tmp_path / "report"
        code = main(
            [
                "--prometheus",
                url,
                "--start",
                REAL_START.isoformat(),
                "--end",
                REAL_END.isoformat(),
                "--out",
                str(out),
            ]
        )
        assert code == 0
        rows = {r["namespace"]: r for r in csv.DictReader(read(out / "namespaces.csv").splitlines())}
        assert list(rows) == ["shop", "dev", "batch", "TOTAL"]  # by net avoided; batch only has `added`
        columns = [
            "pod_hours",
            "share_pod_hours_cleaner_than_baseline",
            "energy_kwh",
            "emissions_kg",
            "net_carbon_avoided_kg",
            "cost_usd",
            "net_cost_saved_usd",
        ]
        for namespace, expected in REAL_EXPECTED.items():
            got = [float(rows[namespace][c]) for c in columns]
            assert got == pytest.approx(list(expected), rel=1e-6, abs=1e-6), namespace
        assert float(rows["TOTAL"]["net_carbon_avoided_kg"]) == pytest.approx(45.0, rel=1e-6)
        assert float(rows["TOTAL"]["pod_hours"]) == pytest.approx(13.5, rel=1e-6)
        regions = {r["region"]: r for r in csv.DictReader(read(out / "regions.csv").splitlines())}
        assert float(regions["eu-north-1"]["net_carbon_avoided_kg"]) == pytest.approx(108.0, rel=1e-6)
        assert float(regions["us-east-1"]["net_carbon_avoided_kg"]) == pytest.approx(-18.0, rel=1e-6)
        assert float(regions["ap-south-1"]["net_carbon_avoided_kg"]) == pytest.approx(-45.0, rel=1e-6)

        # the timeline: the sum of per-step increases, hour by hour
        timeline = json.loads(read(out / "report.json"))["timeline"]
        assert len(timeline["times"]) == 4
        assert timeline["netCarbonAvoidedKg"]["shop"] == pytest.approx([0.0, 24.0, 48.0, 72.0], rel=1e-6)
        assert timeline["netCarbonAvoidedKg"]["batch"] == pytest.approx([0.0, -15.0, -30.0, -45.0], rel=1e-6)
        assert timeline["netCostSavedUsd"]["batch"] == pytest.approx([0.0, -1.875, -3.75, -5.625], rel=1e-6)

        # the same server, scoped to some namespaces: PromQL's regex matching, fully anchored
        scoped = tmp_path / "scoped"
        argv = [
            "--prometheus",
            url,
            "--start",
            REAL_START.isoformat(),
            "--end",
            REAL_END.isoformat(),
            "--out",
            str(scoped),
        ]
        assert main([*argv, "--namespace", "sho.|batch"]) == 0
        assert [r["namespace"] for r in csv.DictReader(read(scoped / "namespaces.csv").splitlines())] == [
            "shop",
            "batch",
            "TOTAL",
        ]
        # a regex Prometheus (RE2) refuses: its own message, exit 2
        assert main([*argv, "--namespace", "(unclosed"]) == 2
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
    elapsed = time.monotonic() - began
    assert elapsed < REAL_BUDGET_SECONDS, f"the real-Prometheus test took {elapsed:.1f} s: {INSTALL_HINT}"
