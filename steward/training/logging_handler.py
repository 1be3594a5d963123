"""`RunLogHandler`: log records at WARNING and above become events of a training run."""

from __future__ import annotations

import logging

from steward.training.client import Run


class RunLogHandler(logging.Handler):
    """Attach to any logger; each record is formatted and queued, never written from here."""

    def __init__(self, run: Run, level: int = logging.WARNING) -> None:
        super().__init__(level)
        self.run = run

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.run.event(self.format(record), level=record.levelname.lower())
        except Exception:
            self.handleError(record)
