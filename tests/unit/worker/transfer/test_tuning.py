"""The one tuning object: read once from the environment, each kind of transfer with its own defaults."""

from __future__ import annotations

from worker.transfer.tuning import MIB, Tuning


def test_defaults_per_kind_of_transfer() -> None:
    tuning = Tuning.from_env({})
    assert (tuning.concurrency, tuning.chunk_bytes) == (None, None)
    two_cpus = Tuning(cpus=2)
    ranged = two_cpus.ranged(1024 * MIB)
    assert (ranged.concurrency, ranged.span_bytes, ranged.buffer_bytes) == (4, 64 * MIB, 256 * 1024)
    assert Tuning(cpus=32).ranged(1024 * MIB).concurrency == 16
    assert two_cpus.ranged(10 * MIB).span_bytes == 8 * MIB  # small objects: no span under 8 MiB
    assert two_cpus.ranged(160 * MIB).span_bytes == 10 * MIB  # four spans per thread
    assert two_cpus.ranged(1024 * MIB, ordered=True).span_bytes == 8 * MIB
    upload = two_cpus.s3transfer_config()
    assert (upload.multipart_chunksize, upload.max_request_concurrency) == (16 * MIB, 6)
    assert upload.max_in_memory_download_chunks == 6
    stream = two_cpus.s3transfer_config(streaming=True)
    assert (stream.multipart_chunksize, stream.max_request_concurrency) == (8 * MIB, 8)
    assert stream.max_in_memory_download_chunks == 6


def test_environment_overrides_every_kind() -> None:
    tuning = Tuning.from_env({"ALIGNBATCH_TRANSFER_CONCURRENCY": "3", "ALIGNBATCH_TRANSFER_CHUNK_MIB": "5"})
    assert (tuning.concurrency, tuning.chunk_bytes) == (3, 5 * MIB)
    ranged = tuning.ranged(1024 * MIB, ordered=True)
    assert (ranged.concurrency, ranged.span_bytes) == (3, 5 * MIB)
    for streaming in (False, True):
        config = tuning.s3transfer_config(streaming=streaming)
        assert (config.multipart_chunksize, config.max_request_concurrency) == (5 * MIB, 3)


def test_unusable_values_fall_back() -> None:
    junk = Tuning.from_env({"ALIGNBATCH_TRANSFER_CONCURRENCY": "many", "ALIGNBATCH_TRANSFER_CHUNK_MIB": "0"})
    assert (junk.concurrency, junk.chunk_bytes) == (None, None)
    assert Tuning.from_env({"ALIGNBATCH_TRANSFER_CONCURRENCY": "0"}).concurrency == 1
