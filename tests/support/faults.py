"""Fault injection in front of moto: throttling, SlowDown, 500s and dropped connections, counted.

Moto never throttles and never drops a connection, so the failure modes the controller and the worker
are built for would go untested. This WSGI middleware sits between the HTTP server and moto's app and,
for requests matching a rule, answers with the error AWS would send (in that service's wire shape) or
cuts the connection part-way through the real response. Decisions come from one seeded RNG so a run can
be replayed, and every injected fault is counted by kind and API so a test can report what it survived.

Requests are named `service:operation` in lower case (`batch:submitjob`, `s3:getobject`,
`sqs:receivemessage`) from the SigV4 credential scope plus the operation marker of each protocol.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import random
import re
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WsgiApp = Callable[[Environ, StartResponse], Iterable[bytes]]

KINDS = ("throttle", "slowdown", "error500", "drop", "delay")

_SCOPE_RE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")


# -- naming requests (pure) ------------------------------------------------------------------------
def service_of(environ: Environ) -> str:
    """The SigV4 service name of a request ('s3', 'batch', 'sqs', ...), or '' when unsigned."""
    match = _SCOPE_RE.search(environ.get("HTTP_AUTHORIZATION", ""))
    if match:
        return match.group(1).lower()
    # Presigned URLs carry the scope in the query string.
    query = parse_qs(environ.get("QUERY_STRING", ""))
    cred = query.get("X-Amz-Credential", [""])[0]
    parts = cred.split("/")
    return parts[3].lower() if len(parts) >= 5 else ""


def s3_operation(method: str, path: str, query: dict[str, list[str]]) -> str:
    """Name an S3 REST call from its method, path-style path and query (path style is what moto serves)."""
    parts = path.lstrip("/").split("/", 1)
    has_key = len(parts) == 2 and parts[1] != ""
    if not has_key:
        if method == "GET":
            return "listobjectsv2" if "list-type" in query else "listobjects"
        return {"PUT": "createbucket", "HEAD": "headbucket", "DELETE": "deletebucket"}.get(method, "bucket")
    if method == "GET":
        return "getobject"
    if method == "HEAD":
        return "headobject"
    if method == "DELETE":
        return "abortmultipartupload" if "uploadId" in query else "deleteobject"
    if method == "POST":
        if "uploads" in query:
            return "createmultipartupload"
        if "uploadId" in query:
            return "completemultipartupload"
        return "postobject"
    if method == "PUT":
        if "partNumber" in query:
            return "uploadpart"
        return "putobject"
    return method.lower()


def operation_of(environ: Environ) -> str:
    """`service:operation` for a request, e.g. 'batch:submitjob'. Query-protocol bodies are not read."""
    service = service_of(environ)
    method = environ.get("REQUEST_METHOD", "GET")
    path = unquote(environ.get("PATH_INFO", ""))
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        return f"{service}:{target.rsplit('.', 1)[-1].lower()}"
    if service == "s3":
        return f"s3:{s3_operation(method, path, query)}"
    if "Action" in query:
        return f"{service}:{query['Action'][0].lower()}"
    if service == "batch" and path.startswith("/v1/"):
        return f"batch:{path[len('/v1/') :].strip('/').lower()}"
    return f"{service}:{method.lower()} {path}"


def s3_key_of(environ: Environ) -> str:
    """The object key of a path-style S3 request ('' for bucket-level calls)."""
    parts = unquote(environ.get("PATH_INFO", "")).lstrip("/").split("/", 1)
    return parts[1] if len(parts) == 2 else ""


# -- rules -----------------------------------------------------------------------------------------
@dataclass
class Rule:
    """Inject `kind` into requests on `channel` whose operation matches `api` (a glob), at `rate`.

    `key` (a glob) narrows S3 rules to matching object keys, `query` (a glob) to matching query strings
    (e.g. `*partNumber=2*` for one part of a multipart upload). `limit` caps how many times the rule fires
    (0 = unlimited). For `drop`, `after_bytes` response bytes are sent before the connection is cut
    (0 = cut before any response). `delay` holds the request `delay_seconds` before serving it normally
    (a slow network or a stalled peer: long enough, it lets SQS visibility timeouts expire mid-work).
    """

    api: str
    kind: str
    rate: float = 1.0
    channel: str = "*"
    key: str = "*"
    query: str = "*"
    limit: int = 0
    after_bytes: int = 0
    delay_seconds: float = 0.0
    fired: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"fault kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"fault rate {self.rate} is outside 0..1")

    def matches(self, channel: str, operation: str, key: str, query: str = "") -> bool:
        if self.limit and self.fired >= self.limit:
            return False
        if self.channel != "*" and self.channel != channel:
            return False
        if not fnmatch.fnmatchcase(operation, self.api):
            return False
        if self.query != "*" and not fnmatch.fnmatchcase(query, self.query):
            return False
        return self.key == "*" or fnmatch.fnmatchcase(key, self.key)


@dataclass
class FaultPlan:
    seed: int = 0
    rules: list[Rule] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultPlan:
        return cls(seed=int(data.get("seed", 0)), rules=[Rule(**r) for r in data.get("rules", [])])


# -- error bodies in each protocol's shape (pure) --------------------------------------------------
def error_response(kind: str, operation: str) -> tuple[str, list[tuple[str, str]], bytes]:
    """Status line, headers and body AWS would send for this fault on this operation."""
    service = operation.split(":", 1)[0]
    request_id = str(uuid.uuid4())
    if kind == "slowdown" or (service == "s3" and kind == "throttle"):
        return _xml("503 Slow Down", "SlowDown", "Please reduce your request rate.", request_id)
    if kind == "throttle":
        code, status = "TooManyRequestsException", "429 Too Many Requests"
        if service == "sqs":
            code, status = "ThrottlingException", "400 Bad Request"
        return _json(status, code, "Too Many Requests", request_id)
    if service == "s3":
        return _xml(
            "500 Internal Server Error", "InternalError", "We encountered an internal error.", request_id
        )
    return _json(
        "500 Internal Server Error", "ServerException", "Internal server error (injected)", request_id
    )


def _xml(status: str, code: str, message: str, request_id: str) -> tuple[str, list[tuple[str, str]], bytes]:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{request_id}</RequestId></Error>"
    ).encode()
    headers = [
        ("Content-Type", "application/xml"),
        ("Content-Length", str(len(body))),
        ("x-amz-request-id", request_id),
    ]
    return status, headers, body


def _json(status: str, code: str, message: str, request_id: str) -> tuple[str, list[tuple[str, str]], bytes]:
    body = json.dumps({"__type": code, "message": message}).encode()
    headers = [
        ("Content-Type", "application/x-amz-json-1.1"),
        ("Content-Length", str(len(body))),
        ("x-amzn-ErrorType", code),
        ("x-amzn-RequestId", request_id),
    ]
    return status, headers, body


# -- the middleware --------------------------------------------------------------------------------
class DroppedConnection(ConnectionError):
    """Raised inside the WSGI server after the socket was shut down on purpose."""


class FaultInjector:
    """Shared plan and counters; `wrap(app, channel)` gives the middleware for one listening port."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._plan = FaultPlan()
        self._rng = random.Random(0)
        self.injected: Counter[tuple[str, str, str]] = Counter()  # (channel, kind, operation)
        self.requests: Counter[tuple[str, str]] = Counter()  # (channel, operation)

    def configure(self, plan: FaultPlan) -> None:
        with self._lock:
            self._plan = plan
            self._rng = random.Random(plan.seed)

    def reset_counts(self) -> None:
        with self._lock:
            self.injected.clear()
            self.requests.clear()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "seed": self._plan.seed,
                "rules": [asdict(r) for r in self._plan.rules],
                "injected": [
                    {"channel": c, "kind": k, "api": a, "count": n}
                    for (c, k, a), n in sorted(self.injected.items())
                ],
                "requests": [
                    {"channel": c, "api": a, "count": n} for (c, a), n in sorted(self.requests.items())
                ],
            }

    def decide(self, channel: str, operation: str, key: str, query: str = "") -> Rule | None:
        with self._lock:
            self.requests[(channel, operation)] += 1
            for rule in self._plan.rules:
                if rule.matches(channel, operation, key, query) and self._rng.random() < rule.rate:
                    rule.fired += 1
                    self.injected[(channel, rule.kind, operation)] += 1
                    return rule
        return None

    def wrap(self, app: WsgiApp, channel: str) -> WsgiApp:
        def middleware(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
            operation = operation_of(environ)
            key = s3_key_of(environ) if operation.startswith("s3:") else ""
            rule = self.decide(channel, operation, key, environ.get("QUERY_STRING", ""))
            if rule is None:
                return app(environ, start_response)
            if rule.kind == "delay":
                time.sleep(rule.delay_seconds)
                return app(environ, start_response)
            if rule.kind == "drop":
                return _dropping(app, environ, start_response, rule.after_bytes)
            _drain_body(environ)
            status, headers, body = error_response(rule.kind, operation)
            start_response(status, headers)
            return [body]

        return middleware


def _drain_body(environ: Environ) -> None:
    """Read the request body so the keep-alive connection stays in a sane state after an error reply."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    stream = environ.get("wsgi.input")
    while stream is not None and length > 0:
        chunk = stream.read(min(length, 1 << 20))
        if not chunk:
            break
        length -= len(chunk)


def _cut(environ: Environ) -> None:
    sock: socket.socket | None = environ.get("werkzeug.socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    raise DroppedConnection("connection dropped by fault injection")


def _dropping(
    app: WsgiApp, environ: Environ, start_response: StartResponse, after_bytes: int
) -> Iterator[bytes]:
    """Serve the real response but cut the socket after `after_bytes` bytes of body."""
    if after_bytes <= 0:
        _drain_body(environ)
        _cut(environ)
    sent = 0
    result = app(environ, start_response)
    try:
        for chunk in result:
            if sent + len(chunk) >= after_bytes:
                yield chunk[: after_bytes - sent]
                _cut(environ)
            sent += len(chunk)
            yield chunk
        # The body was shorter than the cut point: still cut, so the client sees a broken connection.
        _cut(environ)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()


# -- S3 as a least-privilege role sees it ----------------------------------------------------------
def least_privilege_s3(app: WsgiApp, *, list_prefixes: tuple[str, ...] = ()) -> WsgiApp:
    """S3 as seen by a role with GetObject but `s3:ListBucket` only under `list_prefixes` (an
    `s3:prefix` condition; empty: no list rights at all). Real S3 then answers a HEAD or GET of a
    missing key with 403, not 404 (a HEAD carries no prefix, so the condition never holds), and a LIST
    outside the allowed prefixes with AccessDenied. Moto has no IAM evaluation for S3, so this
    middleware applies those two rules to moto's answers."""

    def middleware(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        operation = operation_of(environ) if service_of(environ) == "s3" else ""
        if operation in ("s3:listobjects", "s3:listobjectsv2"):
            query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
            prefix = query.get("prefix", [""])[0]
            if not any(prefix.startswith(p) for p in list_prefixes if p) and "" not in list_prefixes:
                return _denied(environ, start_response)
            return app(environ, start_response)
        if operation not in ("s3:headobject", "s3:getobject"):
            return app(environ, start_response)
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"], captured["headers"] = status, headers
            return lambda data: None  # moto never uses the legacy write() callable

        body = app(environ, capture)
        if not str(captured.get("status", "")).startswith("404"):
            start_response(captured["status"], captured["headers"])
            return body
        close = getattr(body, "close", None)
        if close is not None:
            close()
        return _denied(environ, start_response)

    return middleware


def _denied(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    _drain_body(environ)
    status, headers, body = _xml("403 Forbidden", "AccessDenied", "Access Denied", str(uuid.uuid4()))
    start_response(status, headers)
    # A HEAD answer has the headers of the error but no body, as S3 sends it.
    return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]
