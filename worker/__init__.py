"""alignbatch worker: runs one tool invocation with s3:// or local arguments inside a job container."""

from core.version import __version__

__all__ = ["__version__"]
