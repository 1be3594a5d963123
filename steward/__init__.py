"""steward: a 12-factor bot worker for scheduled posts, training runs and monitoring checks."""

__version__ = "0.1.0"
