"""vidconv: a self-hosted video conversion service."""

__version__ = "0.1.0"
