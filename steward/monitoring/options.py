"""Typed reads of one check's raw options (strings from the compact form, or JSON values)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from urllib.parse import urlsplit

from steward.timeutil import parse_duration


class ChecksError(ValueError):
    """A CHECKS value the worker cannot run; `str()` names the check and the expected form."""


class Values:
    """Typed reads of one check's raw options, each failure a sentence naming the check."""

    def __init__(self, label: str, raw: dict[str, Any]) -> None:
        self.label, self.raw = label, raw

    def _fail(self, key: str, expected: str) -> ChecksError:
        return ChecksError(f"{self.label} has {key}={self.raw[key]!r}; expected {expected}")

    def text(self, key: str) -> str | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self._fail(key, "text")
        return value

    def integer(self, key, default, low, high, required=False) -> int | None:
        value = self.raw.get(key)
        if value is None:
            if required:
                raise ChecksError(
                    f"{self.label} has no {key}; expected a whole number {low}-{high}"
                )
            return default
        try:
            number = int(value) if not isinstance(value, bool | float) else None
        except ValueError:
            number = None
        if number is None or not low <= number <= high:
            raise self._fail(key, f"a whole number {low}-{high}")
        return number

    def number(self, key: str) -> float | None:
        value = self.raw.get(key)
        if value is None:
            return None
        try:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
        except ValueError:
            raise self._fail(key, "a number like 10 or 0.5") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise self._fail(key, "a finite number")
        return number

    def duration(self, key, default, allow_zero=False) -> dt.timedelta | None:
        value = self.raw.get(key)
        if value is None:
            return default
        expected = "seconds or a duration like 30s, 5m, 1h" + (
            " (0 for never)" if allow_zero else ""
        )
        try:
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, int | float) or re.fullmatch(r"\s*\d+(\.\d+)?\s*", str(value)):
                delta = dt.timedelta(seconds=float(value))
            else:
                delta = parse_duration(str(value))
        except (ValueError, OverflowError):
            raise self._fail(key, expected) from None
        if delta.total_seconds() == 0 and allow_zero:
            return None
        if delta.total_seconds() <= 0:
            raise self._fail(key, expected)
        return delta

    def url(self, key: str) -> str:
        value = self.raw.get(key)
        if value is None:
            raise ChecksError(f"{self.label} has no {key}; expected an http(s) URL")
        if not _is_url(value):
            raise self._fail(key, "an http(s) URL like https://example.com/health")
        return value

    def references(self) -> tuple[str, ...]:
        value = self.raw.get("references")
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list) or not value:
            raise ChecksError(
                f"{self.label} has no references; expected a list of http(s) URLs of other "
                "nodes of the same chain, like evm:https://node|https://ref1,https://ref2"
            )
        for ref in value:
            if not _is_url(ref):
                raise ChecksError(
                    f"{self.label} has the reference {ref!r}; expected an http(s) URL"
                )
        return tuple(value)


def _is_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and " " not in value
