"""Executors run planned jobs: AWS Batch (`aws_batch`) or local processes (`local`), both behind the
`base.Executor` protocol, which declares every capability the controller relies on."""
