"""Logging to stdout, one line per event, with every secret replaced by `***`.

Redaction sits in the handler's formatter, so it covers every logger in the process: ours,
python-telegram-bot's, httpx's (request URLs carry the bot token), tweepy's, APScheduler's,
and the text of exceptions and tracebacks.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable

# A bot token in a URL or message, even one the config does not know (e.g. a test bot's).
_BOT_TOKEN = re.compile(r"(?<!\d)\d{5,}:[A-Za-z0-9_-]{20,}")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Loggers that speak once per request or per job run: quiet unless LOG_LEVEL=DEBUG.
CHATTY = (
    "httpx",
    "httpcore",
    "apscheduler",
    "telegram.ext.Updater",
    "tornado.access",
    "urllib3",
    "requests_oauthlib",
    "oauthlib",
    "matplotlib",
    "PIL",
    "alembic.runtime",
)


class RedactingFormatter(logging.Formatter):
    """Formats a record on one line (tracebacks indented below) and hides every secret."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__(FORMAT, datefmt="%Y-%m-%dT%H:%M:%S")
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return _BOT_TOKEN.sub("***", text)

    def format(self, record: logging.LogRecord) -> str:
        head = super().formatMessage(self._prepared(record))
        head = head.replace("\r", "").replace("\n", " ⏎ ")
        extra = ""
        if record.exc_info:
            extra = self.formatException(record.exc_info)
        elif record.exc_text:
            extra = record.exc_text
        if record.stack_info:
            extra += "\n" + self.formatStack(record.stack_info)
        if extra:
            head += "\n" + "\n".join("    " + line for line in extra.strip().splitlines())
        return self.redact(head)

    def _prepared(self, record: logging.LogRecord) -> logging.LogRecord:
        record.message = record.getMessage()
        record.asctime = self.formatTime(record, self.datefmt)
        return record


def setup(level: str = "INFO", secrets: Iterable[str] = ()) -> RedactingFormatter:
    """Send every logger's records to stdout through the redacting formatter."""
    formatter = RedactingFormatter(secrets)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    quiet = logging.DEBUG if level == "DEBUG" else logging.WARNING
    for name in CHATTY:
        logging.getLogger(name).setLevel(quiet)
    logging.captureWarnings(True)
    return formatter


def add_secrets(secrets: Iterable[str]) -> None:
    """Hide more values from now on (e.g. a token learned at run time)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler.formatter, RedactingFormatter):
            merged = set(handler.formatter.secrets) | {s for s in secrets if s}
            handler.formatter.secrets = sorted(merged, key=len, reverse=True)


def one_line(exc: BaseException) -> str:
    """An exception as one short line (a driver's message, not the SQL and its parameters)."""
    cause = getattr(exc, "orig", None) or exc
    text = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    return f"{type(cause).__name__}: {text}"[:300] if text else type(cause).__name__
