"""The one place the package version lives (setup.cfg reads it)."""

__version__ = "0.1.0"
