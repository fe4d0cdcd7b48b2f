"""Config loading: TOML + ALIGNBATCH_<SECTION>_<KEY> overrides, typed, with one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.config import ConfigError, load_config, local_config, parse_config, validate_aws

ROOT = Path(__file__).resolve().parents[3]


def test_example_config_loads_and_is_complete() -> None:
    cfg = load_config(ROOT / "config" / "controller.example.toml", env={})
    assert validate_aws(cfg) == []
    assert cfg.queue.wait_seconds == 20 and cfg.metrics.address == "127.0.0.1" and cfg.metrics.port == 9464
    assert [t.vcpus for t in cfg.tiers] == [1, 2, 4]
    assert cfg.batch.missing_job_grace_seconds == 120
    assert cfg.pipeline.for_key("exome/a.bam").target_bed == "references/beds/exome_targets.bed"
    assert cfg.pipeline.for_key("exome/a.bam").alignstats_args == ("-C",)
    assert cfg.pipeline.for_key("other/a.bam").target_bed == ""
    assert cfg.results_root == "s3://alignbatch-results-123456789012/alignbatch"


def test_env_overrides_with_types() -> None:
    env = {
        "ALIGNBATCH_QUEUE_URL": "https://q",
        "ALIGNBATCH_METRICS_PORT": "0",
        "ALIGNBATCH_BATCH_SUBMIT_RATE_PER_SECOND": "2.5",
        "ALIGNBATCH_BATCH_MISSING_JOB_GRACE_SECONDS": "600",
        "ALIGNBATCH_PIPELINE_ALIGNSTATS_ARGS": '["-C", "-W"]',
    }
    cfg = parse_config({"queue": {"url": "x"}}, env)
    assert cfg.queue.url == "https://q" and cfg.metrics.port == 0
    assert cfg.batch.submit_rate_per_second == 2.5
    assert cfg.batch.missing_job_grace_seconds == 600
    assert cfg.pipeline.default.alignstats_args == ("-C", "-W")
    with pytest.raises(ConfigError, match="ALIGNBATCH_METRICS_PORT"):
        parse_config({}, {"ALIGNBATCH_METRICS_PORT": "nine"})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"nosuch": {}}, "unknown section"),
        ({"queue": {"urll": "x"}}, "unknown key 'urll'"),
        ({"queue": {"wait_seconds": "x"}}, "wait_seconds"),
        ({"tiers": []}, "tiers"),
        ({"tiers": [{"max_bytes": 1, "vcpus": 0, "memory_mib": 512}]}, "vcpus"),
        ({"pipeline": {"prefix": [{"target_bed": "x"}]}}, "prefix"),
    ],
)
def test_bad_config_one_line_errors(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as exc:
        parse_config(data, {})
    assert "\n" not in str(exc.value)


def test_missing_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[queue\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    assert "[queue] url is required" in validate_aws(parse_config({}, {}))
    never_wait = parse_config({"batch": {"missing_job_grace_seconds": -1}}, {})
    assert "[batch] missing_job_grace_seconds must be 0 or more" in validate_aws(never_wait)
    with pytest.raises(ConfigError, match=r"\[logging\] level 'verbose': use one of DEBUG"):
        parse_config({}, {"ALIGNBATCH_LOGGING_LEVEL": "verbose"})


def test_local_profile(tmp_path: Path) -> None:
    cfg = local_config(tmp_path)
    assert cfg.is_local and cfg.inbox_root == str(tmp_path / "inbox")
    assert cfg.results_root == str(tmp_path / "results")
    assert cfg.state.ledger_path == str(tmp_path / "state.db")
    (tmp_path / "afile").write_text("")
    with pytest.raises(ConfigError, match=r"--local .*afile: is a file; give a directory"):
        local_config(tmp_path / "afile")
