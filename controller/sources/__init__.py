"""Event sources: where inbox notifications come from (SQS in AWS mode, a watched directory locally),
both behind the `base.EventSource` protocol."""
