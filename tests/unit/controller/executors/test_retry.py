"""Batch's retry strategy for shard children (#17), as rules and as evaluated locally."""

from __future__ import annotations

from controller.executors.retry import child_retry_strategy, should_retry


def test_the_strategy_is_within_batchs_limits() -> None:
    strategy = child_retry_strategy(3)
    assert strategy["attempts"] == 3 and len(strategy["evaluateOnExit"]) <= 5


def test_killed_reclaimed_and_transient_attempts_are_retried_input_errors_are_not() -> None:
    s = child_retry_strategy(3)
    assert should_retry(s, 1, 137)  # killed (out of memory, or by hand)
    assert should_retry(s, 1, 143, "Host EC2 (instance i-0abc) terminated.")  # a Spot reclaim
    assert should_retry(s, 2, 75) and should_retry(s, 1, None, "ResourceInitializationError: x")
    assert not should_retry(s, 3, 137)  # the last attempt
    for code in (1, 64, 65, 66, 77, 78):
        assert not should_retry(s, 1, code), code
