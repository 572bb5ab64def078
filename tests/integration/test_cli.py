"""First contact with every entry point, as a new user would make it.

`python -m webhook`, `python -m rebalancer` (and its subcommands) and `python -m certs` run as real
subprocesses with KUBECONFIG pointing at a fake API server on 127.0.0.1 that records every request,
valid TLS files in place, and free ports configured, so a process that wrongly starts would talk to
the fake cluster and bind its ports. An audit hook (a ``sitecustomize`` module on PYTHONPATH, loaded
by the interpreter before ``-m`` runs) records every socket bind and connect and every file opened
for writing. ``--help``, ``--version`` and usage errors must touch none of them.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import issue_tls, write_kubeconfig

REPO = Path(__file__).resolve().parents[2]
# Long enough for a loaded 2-core machine to import kubernetes and uvicorn; it only bounds how long
# a wrongly started server is left running before the test kills it and fails.
WATCHDOG_SECONDS = 60
ECO_PULSE = Path(sys.executable).parent / "eco-pulse"

AUDIT_HOOK = """\
import json, os, sys

# Opened before the hook is installed, so recording never records itself.
_log = open(os.environ["ECOPULSE_TEST_AUDIT_LOG"], "a", buffering=1)
_WRITES = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _record(event, detail):
    _log.write(json.dumps({"event": event, "detail": detail}) + "\\n")


def _hook(event, args):
    if event in ("socket.bind", "socket.connect"):
        _record(event, repr(args[1]))
    elif event == "open":
        path, mode, flags = args
        writes = isinstance(mode, str) and any(c in mode for c in "wax+")
        if writes or (isinstance(flags, int) and flags & _WRITES):
            _record(event, repr(path))
    elif event in ("os.mkdir", "os.rename", "os.remove", "subprocess.Popen"):
        _record(event, repr(args[0]))


sys.addaudithook(_hook)
"""


class FakeApiServer:
    """Answers every request like an API server that forbids everything, and records it."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        recorded = self.requests

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                recorded.append(f"{self.command} {self.path}")
                body = json.dumps(
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "status": "Failure",
                        "reason": "Forbidden",
                        "code": 403,
                    }
                ).encode()
                self.send_response(403)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeApiServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def kubeconfig(self, path: Path) -> Path:
        return write_kubeconfig(path, self.url)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _serves(audit_text: str) -> bool:
    # A bind to a real port means serving. Port 0 is urllib3's IPv6 probe when the Kubernetes client
    # is imported, which a real run does before it finds out there is no cluster.
    for line in audit_text.splitlines():
        effect = json.loads(line)
        if effect["event"] == "socket.bind" and not effect["detail"].endswith(", 0)"):
            return True
    return False


@dataclass(frozen=True)
class Run:
    returncode: int | None  # None: it was still running when the watchdog killed it
    stdout: str
    stderr: str
    requests: list[str]
    effects: list[dict[str, str]]


@dataclass
class Sandbox:
    """A clean environment for one entry point run: fake cluster, TLS files, ports, audit hook."""

    root: Path
    fake: FakeApiServer
    env: dict[str, str]

    @property
    def cwd(self) -> Path:
        return self.root / "cwd"

    def run(self, module: str, *args: str, env: Mapping[str, str] | None = None) -> Run:
        return self.run_argv([sys.executable, "-m", module, *args], env=env)

    def command(self, *args: str, env: Mapping[str, str] | None = None) -> Run:
        """``eco-pulse ARGS``: the console script pip installed beside this interpreter."""
        return self.run_argv([str(ECO_PULSE), *args], env=env)

    def run_argv(self, argv: list[str], *, env: Mapping[str, str] | None = None) -> Run:
        audit_log = self.root / "audit.jsonl"
        audit_log.write_text("")
        out, err = self.root / "stdout", self.root / "stderr"
        with out.open("w") as stdout, err.open("w") as stderr:
            process = subprocess.Popen(
                argv,
                cwd=self.cwd,
                env={**self.env, **(env or {}), "ECOPULSE_TEST_AUDIT_LOG": str(audit_log)},
                stdout=stdout,
                stderr=stderr,
            )
            deadline = time.monotonic() + WATCHDOG_SECONDS
            # Stop at the first sign of acting: a request, a bound port; else wait for the exit.
            while process.poll() is None and time.monotonic() < deadline:
                if self.fake.requests or _serves(audit_log.read_text()):
                    break
                time.sleep(0.05)
            returncode = process.poll()
            if returncode is None:
                process.kill()
                process.wait()
        effects = [json.loads(line) for line in audit_log.read_text().splitlines()]
        return Run(returncode, out.read_text(), err.read_text(), list(self.fake.requests), effects)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    hook_dir = tmp_path / "hook"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(AUDIT_HOOK)
    (tmp_path / "cwd").mkdir()
    (tmp_path / "home").mkdir()
    tls_dir = tmp_path / "tls"
    issue_tls(tls_dir)
    with FakeApiServer() as fake:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp_path / "home"),
            "LANG": "C.UTF-8",
            "COLUMNS": "100",
            "PYTHONPATH": os.pathsep.join([str(hook_dir), str(REPO)]),
            "PYTHONDONTWRITEBYTECODE": "1",  # importing must not count as writing a file
            "KUBECONFIG": str(fake.kubeconfig(tmp_path / "kubeconfig")),
            "ECOPULSE_TLS_DIR": str(tls_dir),
            "ECOPULSE_BIND_ADDRESS": "127.0.0.1",
            "ECOPULSE_WEBHOOK_PORT": str(free_port()),
            "ECOPULSE_METRICS_BIND_ADDRESS": "127.0.0.1",
            "ECOPULSE_METRICS_PORT": str(free_port()),
            "POD_NAMESPACE": "eco-pulse",
        }
        yield Sandbox(root=tmp_path, fake=fake, env=env)


def assert_touched_nothing(run: Run, sandbox: Sandbox) -> None:
    assert run.returncode is not None, (
        f"still running after {WATCHDOG_SECONDS}s or acting: {run.stdout[:2000]}"
    )
    assert run.requests == [], "sent requests to the cluster"
    assert run.effects == [], "bound or connected a socket, or wrote a file"
    assert list(sandbox.cwd.iterdir()) == []
    assert "Traceback" not in run.stderr


def pyproject_version() -> str:
    version: str = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    return version


# --- --help and --version ---------------------------------------------------------------------

HELP = [
    pytest.param("webhook", ["--help"], id="webhook --help"),
    pytest.param("webhook", ["-h"], id="webhook -h"),
    pytest.param("rebalancer", ["--help"], id="rebalancer --help"),
    pytest.param("rebalancer", ["-h"], id="rebalancer -h"),
    pytest.param("rebalancer", ["simulate", "--help"], id="rebalancer simulate --help"),
    pytest.param("report", ["--help"], id="report --help"),
    pytest.param("certs", ["--help"], id="certs --help"),
    pytest.param("certs", ["issue", "--help"], id="certs issue --help"),
    pytest.param("fleet", ["--help"], id="fleet --help"),
    pytest.param("fleet", ["-h"], id="fleet -h"),
]


@pytest.mark.parametrize(("module", "args"), HELP)
def test_help_prints_usage_and_touches_nothing(sandbox: Sandbox, module: str, args: list[str]) -> None:
    run = sandbox.run(module, *args)
    assert_touched_nothing(run, sandbox)
    assert run.returncode == 0
    assert run.stdout.startswith(f"usage: python -m {module}")
    assert run.stderr == ""


@pytest.mark.parametrize("module", ["webhook", "rebalancer", "certs", "fleet"])
def test_version_prints_the_package_version_and_touches_nothing(sandbox: Sandbox, module: str) -> None:
    run = sandbox.run(module, "--version")
    assert_touched_nothing(run, sandbox)
    assert run.returncode == 0
    assert run.stdout == f"eco-pulse {module} {pyproject_version()}\n"
    assert run.stderr == ""


def test_the_installed_version_is_the_pyproject_version() -> None:
    # One source: pyproject.toml's [project] version, read back through the package metadata.
    assert importlib.metadata.version("eco-pulse") == pyproject_version()


def test_help_lists_every_setting_the_app_reads_from_the_environment(sandbox: Sandbox) -> None:
    # core/settings.py: what the controller apps (rebalancer, fleet mode) read alike.
    for module, settings in (
        ("webhook", ("webhook/settings.py",)),
        ("rebalancer", ("rebalancer/settings.py", "core/settings.py")),
        ("fleet", ("fleet/settings.py", "core/settings.py")),
    ):
        source = "".join((REPO / path).read_text() for path in settings)
        names = set(re.findall(r'"(ECOPULSE_[A-Z_]+)"', source))
        assert names, settings
        help_text = sandbox.run(module, "--help").stdout
        missing = sorted(name for name in names if name not in help_text)
        assert not missing, f"python -m {module} --help does not mention {missing}"


# --- usage errors -----------------------------------------------------------------------------

USAGE_ERRORS = [
    pytest.param("webhook", ["--bogus"], "--bogus", id="webhook --bogus"),
    pytest.param("webhook", ["serve"], "serve", id="webhook serve"),
    pytest.param("rebalancer", ["simlate"], "simlate", id="rebalancer simlate"),
    pytest.param("rebalancer", ["--dry-run"], "--dry-run", id="rebalancer --dry-run"),
    pytest.param("rebalancer", ["simulate", "--bogus"], "--bogus", id="rebalancer simulate --bogus"),
    pytest.param("report", ["--bogus"], "--bogus", id="report --bogus"),
    pytest.param("certs", ["isue"], "isue", id="certs isue"),
    pytest.param("certs", ["--bogus"], "--bogus", id="certs --bogus"),
    pytest.param("certs", ["issue", "--bogus"], "--bogus", id="certs issue --bogus"),
    pytest.param("fleet", ["--dry-run"], "--dry-run", id="fleet --dry-run"),
    pytest.param("fleet", ["run"], "run", id="fleet run"),
]


@pytest.mark.parametrize(("module", "args", "named"), USAGE_ERRORS)
def test_unknown_commands_and_flags_are_usage_errors(
    sandbox: Sandbox, module: str, args: list[str], named: str
) -> None:
    run = sandbox.run(module, *args)
    assert_touched_nothing(run, sandbox)
    assert run.returncode == 2
    assert run.stdout == ""
    assert f"usage: python -m {module}" in run.stderr
    assert "error:" in run.stderr
    assert named in run.stderr


# --- the rebalancer's mode --------------------------------------------------------------------

REBALANCER_CONFIG = """\
apiVersion: ecopulse.io/v1alpha1
kind: EcoPulseConfiguration
regions:
  - {name: us-east-1, zone: US-MIDA-PJM}
  - {name: eu-north-1, zone: SE-SE3}
baselineRegion: us-east-1
carbon: {provider: static}
"""


def first_log_line(
    sandbox: Sandbox, config_text: str | None, module: str = "rebalancer"
) -> dict[str, object]:
    env = dict(sandbox.env)
    del env["KUBECONFIG"]  # no cluster: the rebalancer says how it would run, then stops (exit 2)
    if config_text is not None:
        config = sandbox.root / "config.yaml"
        config.write_text(config_text)
        env["ECOPULSE_CONFIG"] = str(config)
    sandbox.env = env
    run = sandbox.run(module)
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.requests == []
    line: dict[str, object] = json.loads(run.stdout.splitlines()[0])
    return line


def first_command_log_line(sandbox: Sandbox, command: str) -> dict[str, object]:
    env = dict(sandbox.env)
    del env["KUBECONFIG"]
    sandbox.env = env
    run = sandbox.command(command)
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.requests == []
    line: dict[str, object] = json.loads(run.stdout.splitlines()[0])
    return line


@pytest.mark.parametrize(
    "config_text",
    [
        pytest.param(None, id="embedded default"),
        pytest.param(REBALANCER_CONFIG, id="file without dryRun"),
        pytest.param(REBALANCER_CONFIG + "rebalancer: {dryRun: true}\n", id="dryRun true"),
    ],
)
def test_the_rebalancer_runs_dry_unless_told_and_says_so_first(
    sandbox: Sandbox, config_text: str | None
) -> None:
    line = first_log_line(sandbox, config_text)
    assert line["mode"] == "dry-run"
    assert "dry run" in str(line["msg"])
    assert line["version"] == pyproject_version()


def test_the_rebalancer_acts_only_on_an_explicit_dry_run_false_and_says_so_first(sandbox: Sandbox) -> None:
    line = first_log_line(sandbox, REBALANCER_CONFIG + "rebalancer: {dryRun: false}\n")
    assert line["mode"] == "live"
    assert "LIVE" in str(line["msg"])


# --- fleet mode's mode ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config_text",
    [
        pytest.param(None, id="embedded default"),
        pytest.param(REBALANCER_CONFIG, id="file without fleet.dryRun"),
        pytest.param(REBALANCER_CONFIG + "rebalancer: {dryRun: false}\n", id="only the rebalancer live"),
    ],
)
def test_fleet_mode_runs_dry_unless_told_and_says_so_first(sandbox: Sandbox, config_text: str | None) -> None:
    line = first_log_line(sandbox, config_text, module="fleet")
    assert line["mode"] == "dry-run"
    assert "dry run" in str(line["msg"])
    assert line["version"] == pyproject_version()


def test_fleet_mode_acts_only_on_an_explicit_dry_run_false_and_says_so_first(sandbox: Sandbox) -> None:
    line = first_log_line(sandbox, REBALANCER_CONFIG + "fleet: {dryRun: false}\n", module="fleet")
    assert line["mode"] == "live"
    assert "LIVE" in str(line["msg"])


# --- one command: eco-pulse COMMAND is python -m APP -------------------------------------------

COMMANDS = ["webhook", "rebalancer", "fleet", "simulate", "report", "certs"]


def test_the_package_declares_the_eco_pulse_command() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"eco-pulse": "eco_pulse.cli:main"}
    assert ECO_PULSE.exists(), "make venv installs the console script"


def test_eco_pulse_help_names_every_command_and_touches_nothing(sandbox: Sandbox) -> None:
    run = sandbox.command("--help")
    assert_touched_nothing(run, sandbox)
    assert run.returncode == 0 and run.stderr == ""
    assert run.stdout.startswith("usage: eco-pulse")
    for command in COMMANDS:
        assert f"\n    {command}" in run.stdout, command


def test_eco_pulse_version_is_the_package_version(sandbox: Sandbox) -> None:
    run = sandbox.command("--version")
    assert_touched_nothing(run, sandbox)
    assert (run.returncode, run.stdout) == (0, f"eco-pulse {pyproject_version()}\n")


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_s_help_is_the_entry_point_s_and_touches_nothing(sandbox: Sandbox, command: str) -> None:
    run = sandbox.command(command, "--help")
    assert_touched_nothing(run, sandbox)
    assert run.returncode == 0 and run.stderr == ""
    assert run.stdout.startswith(f"usage: eco-pulse {command}")
    module = {"simulate": "rebalancer simulate"}.get(command, command)
    # The same options and environment as python -m (the usage lines wrap at the longer name).
    same = sandbox.run(*module.split(), "--help").stdout
    assert run.stdout.split("\n\n", 1)[1] == same.split("\n\n", 1)[1]


@pytest.mark.parametrize("command", ["webhook", "rebalancer", "certs", "fleet"])
def test_each_command_s_version_and_touches_nothing(sandbox: Sandbox, command: str) -> None:
    run = sandbox.command(command, "--version")
    assert_touched_nothing(run, sandbox)
    assert (run.returncode, run.stdout) == (0, f"eco-pulse {command} {pyproject_version()}\n")


@pytest.mark.parametrize(
    ("args", "usage", "named"),
    [
        pytest.param([], "usage: eco-pulse", "COMMAND", id="no command"),
        pytest.param(["serve"], "usage: eco-pulse", "serve", id="unknown command"),
        pytest.param(["webhook", "--bogus"], "usage: eco-pulse webhook", "--bogus", id="webhook --bogus"),
        pytest.param(["simulate", "--bogus"], "usage: eco-pulse simulate", "--bogus", id="simulate --bogus"),
        pytest.param(["certs", "isue"], "usage: eco-pulse certs", "isue", id="certs isue"),
    ],
)
def test_eco_pulse_usage_errors_exit_2(sandbox: Sandbox, args: list[str], usage: str, named: str) -> None:
    run = sandbox.command(*args)
    assert_touched_nothing(run, sandbox)
    assert run.returncode == 2 and run.stdout == ""
    assert usage in run.stderr and named in run.stderr


@pytest.mark.parametrize("command", ["rebalancer", "fleet"])
def test_eco_pulse_runs_the_app_itself(sandbox: Sandbox, command: str) -> None:
    line = first_command_log_line(sandbox, command)
    assert line["mode"] == "dry-run" and line["version"] == pyproject_version()
