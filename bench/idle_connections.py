"""Resident memory of the real webhook process while many clients hold idle TLS connections.

Starts `python -m webhook` (mock grid, no cluster), then opens --connections TLS connections that
complete the handshake and send nothing (or, with --partial, half a request line), and prints the
server's RSS before, once all are open, and after --wait seconds, with the number of connections the
server still holds (counted from its side: /proc/<pid>/fd sockets).

Usage: python bench/idle_connections.py [--connections 3000] [--wait 7] [--partial]
"""

from __future__ import annotations

import argparse
import socket
import ssl
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [str(HERE.parent), *(p for p in sys.path if Path(p or ".").resolve() != HERE)]

from tests.integration.webhook_process import WebhookProcess, webhook_process

MIB = 1024 * 1024


def server_sockets(webhook: WebhookProcess) -> int:
    fd_dir = Path(f"/proc/{webhook.pid}/fd")
    count = 0
    for fd in fd_dir.iterdir():
        try:
            if str(fd.readlink()).startswith("socket:"):
                count += 1
        except OSError:
            continue
    return count


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=3000)
    parser.add_argument("--wait", type=float, default=7.0, help="seconds to hold them after opening")
    parser.add_argument("--partial", action="store_true", help="send half a request line on each")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory, webhook_process(Path(directory)) as webhook:
        context = webhook.tls_context()
        time.sleep(1)
        baseline_rss, baseline_sockets = webhook.rss_bytes(), server_sockets(webhook)
        held: list[ssl.SSLSocket] = []
        failed = 0
        started = time.monotonic()
        for _ in range(options.connections):
            try:
                raw = socket.create_connection(("127.0.0.1", webhook.port), timeout=10)
                sock = context.wrap_socket(raw, server_hostname="localhost")
                if options.partial:
                    sock.sendall(b"POST /mutate HTT")
                held.append(sock)
            except OSError:
                failed += 1
        opened_seconds = time.monotonic() - started
        time.sleep(0.5)
        open_rss, open_sockets = webhook.rss_bytes(), server_sockets(webhook)
        time.sleep(options.wait)
        later_rss, later_sockets = webhook.rss_bytes(), server_sockets(webhook)
        peak = webhook.peak_rss_bytes()
        for sock in held:
            sock.close()
    print(f"connections attempted: {options.connections} ({failed} failed to open) in {opened_seconds:.1f} s")
    print(f"{'':<28} {'RSS MiB':>8} {'server sockets':>15}")
    print(f"{'before':<28} {baseline_rss / MIB:>8.0f} {baseline_sockets:>15}")
    print(f"{'all opened':<28} {open_rss / MIB:>8.0f} {open_sockets:>15}")
    print(f"{f'{options.wait:g} s later':<28} {later_rss / MIB:>8.0f} {later_sockets:>15}")
    print(f"{'peak (VmHWM)':<28} {peak / MIB:>8.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
