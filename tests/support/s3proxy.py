"""An HTTP proxy in front of moto's S3 for what moto does not do on its own:

- `forbid_missing`: answer a request for a missing key with 403 AccessDenied instead of 404, as S3 does
  when the caller may not s3:ListBucket the key's prefix (a HEAD carries no prefix, so a role whose
  ListBucket is limited by an `s3:prefix` condition always gets 403 for a missing key);
- `hold`: trickle the body of chosen responses (16 KiB every 0.25 s) until `release()` - a transfer
  that is in flight for as long as a test needs (e.g. to deliver SIGTERM mid-run) while bytes still flow,
  as from a slow but live S3 connection.

Loopback only; every request is recorded as "METHOD path status" for the assertions.
"""

from __future__ import annotations

import http.client
import threading
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

HoldRule = Callable[[str, str, dict[str, str]], bool]

_DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>Access Denied</Message><RequestId>proxy</RequestId></Error>"
)


def read_request(handler: BaseHTTPRequestHandler) -> tuple[bytes, dict[str, str]]:
    """A proxied request's body and the headers to forward it with: a chunked body (botocore streams
    uploads that way) is read whole and sent on with a Content-Length, as http.client needs."""
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int(handler.rfile.readline().strip().split(b";")[0], 16)
            if size == 0:
                handler.rfile.readline()
                break
            body += handler.rfile.read(size)
            handler.rfile.readline()
    else:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
    headers = {k: v for k, v in handler.headers.items() if k.lower() != "transfer-encoding"}
    if body or "Content-Length" in handler.headers or "Transfer-Encoding" in handler.headers:
        headers["Content-Length"] = str(len(body))
    return body, headers


class S3Proxy:
    def __init__(self, upstream: str, *, forbid_missing: bool = False, hold: HoldRule | None = None) -> None:
        self.upstream = urllib.parse.urlparse(upstream)
        self.forbid_missing = forbid_missing
        self.hold = hold
        self.requests: list[str] = []
        self.holding = threading.Event()  # set once a request is being held
        self._release = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                return None

            def _handle(self) -> None:
                body, headers = read_request(self)
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=120)
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                payload = resp.read()
                status = resp.status
                if proxy.forbid_missing and status == 404 and b"NoSuchBucket" not in payload:
                    status, payload = 403, (b"" if self.command == "HEAD" else _DENIED)
                    out_headers = [("Content-Type", "application/xml")]
                else:
                    out_headers = [
                        (k, v)
                        for k, v in resp.getheaders()
                        if k.lower() not in ("transfer-encoding", "connection", "content-length")
                    ]
                proxy.requests.append(f"{self.command} {self.path} {status}")
                held = proxy.hold is not None and proxy.hold(self.command, self.path, headers)
                self.send_response(status)
                for key, value in out_headers:
                    self.send_header(key, value)
                if self.command == "HEAD" and status != 403:  # a HEAD has no body but the object's length
                    self.send_header("Content-Length", resp.getheader("Content-Length") or "0")
                else:
                    self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if held:  # trickle the body (16 KiB every 0.25 s) until released: in flight, never stalled
                    proxy.holding.set()
                    view = memoryview(payload)
                    while len(view) and not proxy._release.wait(0.25):
                        self.wfile.write(view[:16384])
                        self.wfile.flush()
                        view = view[16384:]
                    payload = bytes(view)
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def release(self) -> None:
        self._release.set()

    def __enter__(self) -> S3Proxy:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()
