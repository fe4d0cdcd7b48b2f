"""The shared core of alignbatch: what the controller, the worker and the built-in engine all import.

Locations and object stores, errors with their exit codes and the one AWS-error classifier, logging,
the version, program lookup, the worker's command line as a typed value, and the summary-row schema.
Nothing here imports `controller` or `worker`: the import graph reads core ← engine ← worker ← controller.
"""
