"""The one classifier of AWS failures: what a botocore exception means for whoever called AWS.

The object store turns the class into a one-line `core.errors` error with an exit code, the Batch executor
into a permanent or retryable `ExecutorError`, the throttle counter into a metric. The error codes live
here and nowhere else (dsub's `retry_util` is the model), so "is this worth retrying" has one answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from core.errors import AwsConfigError


class AwsFailure(Enum):
    MISSING = "missing"  # the object, version or bucket does not exist
    DENIED = "denied"  # credentials missing, invalid, or not allowed (S3, KMS, Batch)
    THROTTLED = "throttled"  # slow down and try again
    TRANSIENT = "transient"  # 5xx, timeouts, connection trouble, a corrupted transfer
    ARCHIVED = "archived"  # S3 Glacier: restore the object first
    PRECONDITION = "precondition"  # If-Match / If-None-Match failed: the object changed under us
    CHECKSUM = "checksum"  # botocore saw received bytes that do not match their checksum
    CONFIG = "config"  # the AWS config/credentials file or profile cannot be used
    REJECTED = "rejected"  # any other 4xx: the service refused this request and always will
    OTHER = "other"  # not an AWS failure we know: the caller decides

    @property
    def retryable(self) -> bool:
        return self in (AwsFailure.THROTTLED, AwsFailure.TRANSIENT, AwsFailure.CHECKSUM, AwsFailure.OTHER)


MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchBucket", "NoSuchVersion"})
# The object itself is absent (a HEAD's bare 404 included), as opposed to its bucket or version.
NO_OBJECT_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
DENIED_CODES = frozenset(
    {
        "403",
        "AccessDenied",
        "AccessDeniedException",
        "Forbidden",
        "AllAccessDisabled",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidToken",
        "UnrecognizedClientException",
        "KMS.AccessDeniedException",
        "KMS.DisabledException",
        "AccountProblem",
    }
)
THROTTLE_CODES = frozenset(
    {
        "TooManyRequestsException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "SlowDown",
        "KMS.ThrottlingException",
        "429",
    }
)
TRANSIENT_CODES = frozenset(
    {
        "500",
        "502",
        "503",
        "504",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "BadDigest",
        "XAmzContentSHA256Mismatch",
    }
)
PRECONDITION_CODES = frozenset({"PreconditionFailed", "412"})


@dataclass(frozen=True)
class Classified:
    failure: AwsFailure
    code: str  # the service's error code, or the exception's class name
    message: str  # the service's message ("" when it sent none)
    status: int = 0  # the HTTP status (0 when no response came back)


def error_code(exc: BaseException) -> str:
    """The service's error code of a botocore ClientError ("" otherwise)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", "")
    return str(response.get("Error", {}).get("Code", "")) or str(status)


def object_absent(exc: BaseException) -> bool:
    """True when an S3 request failed only because the object does not exist (a HEAD then answers None)."""
    return error_code(exc) in NO_OBJECT_CODES


def classify_code(code: str, status: int = 0) -> AwsFailure:
    """The class of a service error code (and HTTP status)."""
    if code in MISSING_CODES:
        return AwsFailure.MISSING
    if code in DENIED_CODES:
        return AwsFailure.DENIED
    if code in THROTTLE_CODES or status == 429:
        return AwsFailure.THROTTLED
    if code in PRECONDITION_CODES:
        return AwsFailure.PRECONDITION
    if code == "InvalidObjectState":
        return AwsFailure.ARCHIVED
    if code in TRANSIENT_CODES or code.startswith("5") or status >= 500:
        return AwsFailure.TRANSIENT
    if 400 <= status < 500:
        return AwsFailure.REJECTED
    return AwsFailure.OTHER


def classify(exc: BaseException) -> Classified:
    """What a botocore (or s3transfer-wrapped) exception means."""
    from botocore import exceptions as bex

    last = getattr(exc, "last_exception", None)  # s3transfer's RetriesExceededError wraps the cause
    if isinstance(last, BaseException):
        exc = last
    name = type(exc).__name__
    if isinstance(exc, bex.ClientError):
        err = exc.response.get("Error", {})
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        code = error_code(exc)
        return Classified(classify_code(code, status), code, str(err.get("Message") or ""), status)
    if isinstance(exc, bex.NoCredentialsError | bex.PartialCredentialsError):
        return Classified(AwsFailure.DENIED, name, str(exc))
    if isinstance(exc, AwsConfigError | bex.ConfigParseError | bex.ProfileNotFound | bex.InvalidConfigError):
        return Classified(AwsFailure.CONFIG, name, str(exc))
    if isinstance(exc, bex.FlexibleChecksumError):
        return Classified(AwsFailure.CHECKSUM, name, str(exc))
    if isinstance(exc, bex.BotoCoreError):
        return Classified(AwsFailure.TRANSIENT, name, str(exc))
    return Classified(AwsFailure.OTHER, name, str(exc))


def aws_config_error(exc: BaseException) -> AwsConfigError | None:
    """botocore's "your AWS configuration cannot be used" failures as one error saying what to fix, or
    None. Shared by the worker and the controller: retrying cannot fix a bad config file or profile."""
    if isinstance(exc, AwsConfigError):
        return exc
    if classify(exc).failure is AwsFailure.CONFIG:
        return AwsConfigError(
            f"AWS configuration: {exc}; fix the file or unset AWS_CONFIG_FILE / AWS_PROFILE"
        )
    return None
