"""Functions for python checks in the tests: their results are set by the test."""

from __future__ import annotations

import threading

result: object = 1.0
release = threading.Event()


def value() -> object:
    if isinstance(result, Exception):
        raise result
    return result


def hangs() -> float:
    release.wait(10)
    return 1.0


async def async_value() -> object:
    return result


not_a_function = 42
