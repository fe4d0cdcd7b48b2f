"""Fakes of the object-store edge for unit tests: an S3 client that serves objects from a dict."""

from __future__ import annotations

import io
from typing import Any


class FakeS3Client:
    """`head_object`, and `get_object` with S3's Range semantics (`bytes=a-b` clipped to the object,
    `bytes=-n` the last n bytes); every GET's arguments are kept in `requests`."""

    def __init__(self, objects: dict[tuple[str, str], bytes]) -> None:
        self.objects = objects
        self.requests: list[dict[str, Any]] = []

    def head_object(self, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        data = self.objects.get((kwargs["Bucket"], kwargs["Key"]))
        if data is None:
            error = {"Error": {"Code": "404", "Message": ""}, "ResponseMetadata": {"HTTPStatusCode": 404}}
            raise ClientError(error, "HeadObject")  # type: ignore[arg-type]
        return {"ContentLength": len(data), "ETag": '"0123456789abcdef0123456789abcdef"'}

    def get_object(self, **kwargs: Any) -> dict[str, Any]:
        self.requests.append(kwargs)
        data = self.objects[(kwargs["Bucket"], kwargs["Key"])]
        spec = kwargs.get("Range")
        if spec:
            first, _, last = spec.removeprefix("bytes=").partition("-")
            data = data[-int(last) :] if not first else data[int(first) : int(last) + 1]
        return {"Body": io.BytesIO(data), "ContentLength": len(data)}
