"""Moving bytes between the object store and the job: staged downloads, streams, uploads, verification.

The small API the rest of the worker uses; one module per concern, in the order bytes travel:
`verify` (what a download is checked against), `tuning` (threads and sizes, read once), `ranged` (staged
downloads), `streams` (into the tool's stdin), `manager` (the run's transfers, uploads, cancel), `local`
(outputs renamed into place), `result` (the log line and error mapping).

s3transfer does streams and multipart uploads (retries of broken streams, the abort of a failed
multipart upload); botocore's standard retry mode does backoff on throttling and 5xx. This package adds
what they do not: checking what arrived against the object's checksum (or ETag), hashing while ranges
land out of order, and one log line per transfer.
"""

from __future__ import annotations

from worker.transfer.local import copy_local
from worker.transfer.manager import Transfers
from worker.transfer.result import TransferResult
from worker.transfer.streams import StreamHandle
from worker.transfer.tuning import Tuning
from worker.transfer.verify import Crc, Digest, Expectation, expectation_for, make_digest

__all__ = [
    "Crc",
    "Digest",
    "Expectation",
    "StreamHandle",
    "TransferResult",
    "Transfers",
    "Tuning",
    "copy_local",
    "expectation_for",
    "make_digest",
]
