"""The SubmitJob token bucket."""

from __future__ import annotations

import pytest

from controller.ratelimit import TokenBucket


def test_token_bucket_paces_calls() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    bucket = TokenBucket(10, burst=2, clock=lambda: now[0], sleep=sleep)
    for _ in range(12):
        bucket.acquire()
    # 2 from the burst, then 10 more at 10/s: one second of waiting in total.
    assert sum(slept) == pytest.approx(1.0)
