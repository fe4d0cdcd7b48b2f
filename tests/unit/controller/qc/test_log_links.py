"""A failed job's log, as the QC report links it."""

from __future__ import annotations

from controller.qc.log_links import LogLinks


def test_a_batch_log_stream_becomes_a_console_link_with_the_consoles_escaping() -> None:
    links = LogLinks("eu-west-2", "/aws/batch/alignbatch-jobs")
    url = links.url("alignstats/default/0123abcd")
    assert url.startswith("https://eu-west-2.console.aws.amazon.com/cloudwatch/home?region=eu-west-2#logsV2:")
    assert url.endswith(
        "log-groups/log-group/$252Faws$252Fbatch$252Falignbatch-jobs/log-events/alignstats$252Fdefault$252F0123abcd"
    )


def test_without_a_group_or_for_a_local_log_the_name_is_kept() -> None:
    assert LogLinks("eu-west-2", "").url("alignstats/default/x") == "alignstats/default/x"
    assert LogLinks("eu-west-2", "g").url("/srv/local/logs/job.log") == "/srv/local/logs/job.log"
    assert LogLinks("eu-west-2", "g").url("") == ""
