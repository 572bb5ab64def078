"""A real HTTP server on 127.0.0.1 that answers every GET with an endless JSON-ish body.

It counts the bytes it manages to write, so a test can prove a client stopped reading early
(the kernel's socket buffers absorb a few MiB at most; far below the flood size).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FLOOD_BYTES = 50 * 1024 * 1024
_CHUNK = b"[" + b"0," * 32767 + b"0"  # 64 KiB of a JSON array that never ends


@dataclass
class FloodServer:
    url: str
    sent_bytes: int = 0
    paths: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)


@contextmanager
def flood_server(*, declare_length: bool) -> Iterator[FloodServer]:
    """Streams FLOOD_BYTES to every request; with declare_length the Content-Length says so up front."""
    state = FloodServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.paths.append(self.path)
            state.headers.append({k.lower(): v for k, v in self.headers.items()})
            self.send_response(200)
            self.send_header("content-type", "application/json")
            if declare_length:
                self.send_header("content-length", str(FLOOD_BYTES))
            self.end_headers()
            try:
                while state.sent_bytes < FLOOD_BYTES:
                    self.wfile.write(_CHUNK)
                    state.sent_bytes += len(_CHUNK)
            except OSError:  # the client hung up: that is what the test wants
                pass
            finally:
                self.close_connection = True
                state.done.set()

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_port}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5.0)
