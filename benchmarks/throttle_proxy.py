"""A TCP proxy on loopback that caps server→client bytes at a fixed aggregate rate.

On loopback a 228 MB download takes ~0.4 s, so a stream-mode run cannot show that it overlaps transfer
and compute. Behind this proxy the same object arrives as over a link of N MB/s, shared by all of a
client's connections (as an instance's network share is), so stage ≈ start-up + transfer + compute and
stream ≈ start-up + max(transfer, compute) become visible. Requests (client→server) are not limited.
Benchmarks only; the product never uses it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

CHUNK = 64 * 1024


class LinkBudget:
    """One shared pacing clock: each chunk moves `next_free` on by len/rate; a sender sleeps until its
    slot. Bursts are not allowed to build up while the link is idle (that would overstate the rate)."""

    def __init__(self, bytes_per_second: float) -> None:
        self.rate = bytes_per_second
        self.lock = threading.Lock()
        self.next_free = time.monotonic()

    def take(self, n: int) -> None:
        with self.lock:
            now = time.monotonic()
            start = max(self.next_free, now)
            self.next_free = start + n / self.rate
        delay = start - now
        if delay > 0:
            time.sleep(delay)


class ThrottleProxy:
    def __init__(self, upstream_port: int, mb_per_s: float) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.budget = LinkBudget(mb_per_s * 1e6)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            threading.Thread(target=self._pump, args=(client, server, None), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, self.budget), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, budget: LinkBudget | None) -> None:
        try:
            while True:
                data = src.recv(CHUNK)
                if not data:
                    break
                if budget is not None:
                    budget.take(len(data))
                dst.sendall(data)
        except OSError:
            pass
        finally:
            # Half-close so the other direction can finish; the last pump out closes both.
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)
            with contextlib.suppress(OSError):
                src.shutdown(socket.SHUT_RD)

    def close(self) -> None:
        self.closed.set()
        with contextlib.suppress(OSError):
            self.listener.close()
