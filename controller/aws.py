"""boto3 clients for the controller: one factory, so every AWS API it calls is built the same way.

Each caller states only what differs for its API (retry budget, timeouts). Throttled responses can be
counted per API with `count_throttles`, which both the SQS source and the Batch executor install.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.awserrors import AwsFailure, classify_code


def aws_client(
    service: str,
    region: str | None = None,
    *,
    retry_mode: str = "standard",
    max_attempts: int = 3,
    **config: Any,
) -> Any:
    """A client for `service` in `region` (None: the standard AWS env/config), with botocore's retries.

    Extra keyword arguments (connect_timeout, read_timeout, ...) go to botocore's Config."""
    import boto3
    from botocore.config import Config

    cfg = Config(retries={"mode": retry_mode, "max_attempts": max_attempts}, **config)
    return boto3.session.Session().client(service, region_name=region or None, config=cfg)


def count_throttles(client: Any, on_throttle: Callable[[str], None]) -> None:
    """Call `on_throttle(api)` for every throttled response, before botocore decides to retry it."""

    def handler(response: Any = None, operation: Any = None, **_: Any) -> None:
        if not response or operation is None:
            return
        parsed = response[1] if isinstance(response, tuple) and len(response) > 1 else None
        code = (parsed or {}).get("Error", {}).get("Code") if isinstance(parsed, dict) else None
        # needs-retry passes (http_response, parsed) when a response arrived (None on a connection error).
        http = response[0] if isinstance(response, tuple) and response else None
        status = http.status_code if http is not None else None
        if classify_code(str(code or ""), int(status or 0)) is AwsFailure.THROTTLED:
            on_throttle(operation.name)

    client.meta.events.register_first("needs-retry.*", handler)
