"""The package version (kept apart so that the command line reads it without numpy)."""

__version__ = "0.1.0"
