"""`@notify_when_done`: one line to hear when a function ends or crashes (knockknock's use).

    from steward.training import notify_when_done

    @notify_when_done("nightly eval")
    def evaluate(): ...

Each call is a `Run` in the same store: the chat gets the usual start message and final report
(finished after 2h 5m, or the crash with its traceback tail). A dict of numbers the function
returns is logged, so the final report shows those values.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from steward.training.client import Run

F = TypeVar("F", bound=Callable[..., Any])


def notify_when_done(name: str | None = None, **run_options: Any) -> Callable[[F], F]:
    """Wrap a function so that every call is reported as a run named `name` (default: the
    function's name); `run_options` go to `Run` (database_url, tags, config …)."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            with Run(name or fn.__qualname__, **run_options) as run:
                result = fn(*args, **kwargs)
                if isinstance(result, dict):
                    numbers = {
                        str(k): v
                        for k, v in result.items()
                        if isinstance(v, int | float) and not isinstance(v, bool)
                    }
                    if numbers:
                        run.log(**numbers)
                return result

        return call  # type: ignore[return-value]

    return wrap
