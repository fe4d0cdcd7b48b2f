"""Executors run planned jobs: AWS Batch (`aws_batch`) or local processes (`local`) behind `base`."""
