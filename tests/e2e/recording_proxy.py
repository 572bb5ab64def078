"""A plain-HTTP reverse proxy in front of the real API server that records every request.

The rebalancer under test gets a kubeconfig whose server is this proxy (and whose credentials are
a ServiceAccount token, passed through untouched): every verb and resource it uses is recorded with
the API server's status. Watches stream through chunk by chunk. A test can intercept a request
after it was forwarded (the API server acted) and hold or replace the answer the client sees: that
is how an eviction whose outcome the client cannot know is made.
"""

from __future__ import annotations

import http.client
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "proxy-connection", "host"}


@dataclass(frozen=True)
class Call:
    """One request as the RBAC authorizer sees it: verb, API group, resource[/subresource], name."""

    method: str
    path: str
    status: int  # what the API server answered (before any interception)
    verb: str
    group: str
    resource: str
    namespace: str
    name: str
    at: float  # time.monotonic() when the answer came


def authorizer_view(method: str, target: str) -> tuple[str, str, str, str, str]:
    """(verb, group, resource, namespace, name) of a request, as Kubernetes' RBAC names them."""
    split = urlsplit(target)
    query = parse_qs(split.query)
    parts = [p for p in split.path.split("/") if p]
    if parts[:1] == ["api"]:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"]:
        group, rest = parts[1], parts[3:]
    else:
        return (method.lower(), "", split.path, "", "")  # a non-resource URL (/version, /healthz)
    namespace = ""
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    resource = rest[0] if rest else ""
    name = rest[1] if len(rest) > 1 else ""
    if len(rest) > 2:
        resource = f"{resource}/{rest[2]}"
    if resource == "namespaces" and name:
        namespace = name
    if method == "GET":
        verb = "watch" if query.get("watch", ["false"])[0] in ("true", "1") else ("get" if name else "list")
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method, method)
        if method == "DELETE" and not name:
            verb = "deletecollection"
    return verb, group, resource, namespace, name


# Called after the API server answered a request: return None to pass its answer on, or a status
# to answer the client with instead (an empty-bodied error). It may block to hold the answer.
Intercept = Callable[[Call], int | None]


class RecordingProxy:
    def __init__(self, *, upstream_host: str, upstream_port: int, ca_file: str) -> None:
        self.calls: list[Call] = []
        self.intercept: Intercept = lambda _call: None
        self._lock = threading.Lock()
        self._upstream = (upstream_host, upstream_port)
        self._context = ssl.create_default_context(cafile=ca_file)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                proxy._forward(self)

            do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def snapshot(self) -> list[Call]:
        with self._lock:
            return list(self.calls)

    def _forward(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else None
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP}
        upstream = http.client.HTTPSConnection(*self._upstream, context=self._context, timeout=None)
        try:
            upstream.request(handler.command, handler.path, body=body, headers=headers)
            answer = upstream.getresponse()
            verb, group, resource, namespace, name = authorizer_view(handler.command, handler.path)
            call = Call(
                handler.command,
                handler.path,
                answer.status,
                verb,
                group,
                resource,
                namespace,
                name,
                time.monotonic(),
            )
            with self._lock:
                self.calls.append(call)
            replaced = self.intercept(call)
            if replaced is not None:
                answer.read()
                handler.send_response(replaced)
                handler.send_header("Content-Type", "application/json")
                handler.send_header("Content-Length", "2")
                handler.end_headers()
                handler.wfile.write(b"{}")
                return
            handler.send_response(answer.status)
            for key, value in answer.getheaders():
                if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                    handler.send_header(key, value)
            handler.send_header("Transfer-Encoding", "chunked")
            handler.end_headers()
            # Chunk by chunk: a watch streams for minutes and each event must go on at once.
            while chunk := answer.read1(65536):
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                handler.wfile.flush()
            handler.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True
        finally:
            upstream.close()

    def start(self) -> None:
        threading.Thread(target=self._server.serve_forever, name="recording-proxy", daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def recording_proxy(*, upstream: str, ca_file: str) -> Iterator[RecordingProxy]:
    split = urlsplit(upstream)
    assert split.hostname is not None and split.port is not None, upstream
    proxy = RecordingProxy(upstream_host=split.hostname, upstream_port=split.port, ca_file=ca_file)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
