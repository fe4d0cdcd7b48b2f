"""The S3 client every part of alignbatch shares (one per process and AWS environment, standard retries),
the SSE arguments of every write, and botocore/OS errors translated into one-line `core.errors`.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from core.awserrors import AwsFailure, Classified, aws_config_error, classify
from core.errors import AccessDenied, BadInput, ChecksumMismatch, ObjectMissing, TransientIOError, WorkerError
from core.locations import Location

_client_lock = threading.Lock()
_clients: dict[tuple[str | None, ...], Any] = {}


def client_config(*, max_pool_connections: int = 32) -> Any:
    """botocore configuration: standard retry mode with backoff on throttling/5xx/connection errors."""
    from botocore.config import Config

    return Config(
        retries={"mode": "standard", "max_attempts": int(os.environ.get("ALIGNBATCH_S3_MAX_ATTEMPTS", "8"))},
        max_pool_connections=max_pool_connections,
        connect_timeout=10,
        read_timeout=120,
        tcp_keepalive=True,
        # Integrity comes from the flexible checksums we always send, so the SHA256 of the whole body
        # that SigV4 would otherwise compute over plain-http endpoints is pure overhead.
        s3={"payload_signing_enabled": False},
        request_checksum_calculation="when_supported",
        response_checksum_validation="when_supported",
    )


def default_s3_client() -> Any:
    """One client per process and AWS environment (clients are thread-safe and costly to build)."""
    env_key = tuple(
        os.environ.get(k)
        for k in (
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_S3",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_ACCESS_KEY_ID",
            "AWS_PROFILE",
        )
    )
    with _client_lock:
        client = _clients.get(env_key)
        if client is None:
            # botocore's session directly: boto3's would add ~0.1 s of imports (resources, injected
            # helpers) to every worker start and nothing the worker uses.
            import botocore.session

            try:
                client = botocore.session.get_session().create_client("s3", config=client_config())
            except Exception as exc:
                if (config_error := aws_config_error(exc)) is not None:
                    raise config_error from None
                raise
            _clients[env_key] = client
        return client


def translate_error(exc: BaseException, loc: Location | str, action: str) -> WorkerError:
    """Map a botocore/OS exception to a one-line WorkerError naming the object and the fix."""
    where = str(loc)
    if isinstance(exc, WorkerError):
        return exc
    if type(exc).__module__.startswith("botocore"):
        return _translate_aws(classify(exc), where, action, exc, loc if isinstance(loc, Location) else None)
    if isinstance(exc, FileNotFoundError):
        return ObjectMissing(f"{action} {where}: no such file")
    if isinstance(exc, PermissionError):
        return AccessDenied(f"{action} {where}: permission denied")
    if isinstance(exc, IsADirectoryError):
        return BadInput(f"{action} {where}: is a directory, not a file")
    if isinstance(exc, OSError):
        return TransientIOError(f"{action} {where}: {exc.strerror or exc}")
    return WorkerError(f"{action} {where}: unexpected {type(exc).__name__}: {exc}")


def _translate_aws(
    c: Classified, where: str, action: str, exc: BaseException, loc: Location | None = None
) -> WorkerError:
    from botocore import exceptions as bex

    detail = f": {c.message}" if c.message else ""
    if isinstance(exc, bex.ClientError) and loc is not None and loc.pinned:
        # The content the event announced is gone: no retry brings it back, and the object's newer
        # content has its own event (and run). Both are INPUT_MISSING (66), never 75.
        if loc.version_id is not None and c.failure is AwsFailure.MISSING and c.code != "NoSuchBucket":
            return ObjectMissing(
                f"{action} {where}: version {loc.version_id} no longer exists ({c.code}); "
                "it was deleted or expired, nothing to redo for it"
            )
        if loc.expected_etag is not None and c.failure is AwsFailure.PRECONDITION:
            return ObjectMissing(
                f"{action} {where}: object changed since the event (ETag is no longer "
                f"{loc.expected_etag}); the newer version has its own event"
            )
    if isinstance(exc, bex.ClientError):
        if c.failure is AwsFailure.MISSING:
            what = "bucket does not exist" if c.code == "NoSuchBucket" else "object does not exist"
            return ObjectMissing(f"{action} {where}: {what} ({c.code}); check the bucket and key")
        if c.failure is AwsFailure.DENIED:
            return AccessDenied(
                f"{action} {where}: access denied ({c.code}{detail}); check the job role's S3/KMS permissions"
            )
        if c.failure is AwsFailure.ARCHIVED:
            return BadInput(f"{action} {where}: object is archived (InvalidObjectState); restore it first")
        if c.failure in (AwsFailure.TRANSIENT, AwsFailure.THROTTLED):
            return TransientIOError(f"{action} {where}: S3 error after retries ({c.code}{detail})")
        return TransientIOError(f"{action} {where}: S3 error {c.code}{detail}")
    if c.failure is AwsFailure.DENIED:
        return AccessDenied(
            f"{action} {where}: no AWS credentials found; set the job role or AWS_* variables"
        )
    if c.failure is AwsFailure.CHECKSUM:
        return ChecksumMismatch(f"{action} {where}: checksum of received bytes does not match ({exc})")
    if c.failure is AwsFailure.CONFIG:
        return aws_config_error(exc) or WorkerError(f"{action} {where}: {exc}")
    return TransientIOError(f"{action} {where}: {type(exc).__name__}: {exc}")


def sse_arguments(sse_kms_key_id: str | None) -> dict[str, str]:
    """Encryption at rest for every write: SSE-KMS with the configured key, else SSE-S3 (AES256)."""
    if sse_kms_key_id:
        return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": sse_kms_key_id}
    return {"ServerSideEncryption": "AES256"}
