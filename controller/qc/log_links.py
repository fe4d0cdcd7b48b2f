"""Where a person reads a job's log: a CloudWatch console link for a Batch job's log stream, or the
local log file's path as it is (the local executor writes one file per job)."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass


def _console_escape(name: str) -> str:
    # The console's fragment router decodes once itself, so its own links escape the percent-encoding
    # again with '$25' for '%' (a '/' in a stream name becomes $252F).
    return urllib.parse.quote(name, safe="").replace("%", "$25")


@dataclass(frozen=True)
class LogLinks:
    region: str = ""
    group: str = ""  # the job log group ([logging] job_log_group); empty: no links, stream names only

    def url(self, stream: str) -> str:
        """A link for a job's log stream (or local log path); '' when there is none."""
        if not stream or stream.startswith("/") or not (self.region and self.group):
            return stream  # a local log path, or no group configured: the name is the best there is
        return (
            f"https://{self.region}.console.aws.amazon.com/cloudwatch/home?region={self.region}"
            f"#logsV2:log-groups/log-group/{_console_escape(self.group)}/log-events/{_console_escape(stream)}"
        )
