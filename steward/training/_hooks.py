"""Process-wide hooks that end live runs: the main thread's uncaught exception and interpreter exit.

An uncaught exception in another thread only adds an error event to the live runs.

Installed when the first `Run` starts, not at import; each hook chains to the one it replaced.
"""

from __future__ import annotations

import atexit
import contextlib
import sys
import threading
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from steward.training.client import Run

_live: weakref.WeakSet[Run] = weakref.WeakSet()
_installed = False
_lock = threading.Lock()


def watch(run: Run) -> None:
    global _installed
    with _lock:
        _live.add(run)
        if _installed:
            return
        _installed = True
        previous_sys = sys.excepthook
        previous_thread = threading.excepthook

        def excepthook(exc_type, exc, tb):
            _end_all(exc)
            previous_sys(exc_type, exc, tb)

        def thread_excepthook(args):
            # A side thread (an uploader, a data loader) failing does not end the training: the
            # runs hear of it as an error event and go on; only the main thread and exit end them.
            if args.exc_type is not SystemExit and args.exc_value is not None:
                _note_all(args.exc_value, getattr(args.thread, "name", "a thread"))
            previous_thread(args)

        sys.excepthook = excepthook
        threading.excepthook = thread_excepthook
        atexit.register(_end_all, None)


def forget(run: Run) -> None:
    _live.discard(run)


def _note_all(exc: BaseException, thread: str) -> None:
    text = f"thread {thread!r} failed: {type(exc).__name__}: {exc}"[:1000]
    for run in list(_live):
        with contextlib.suppress(Exception):
            run.event(text, level="error")


def _end_all(exc: BaseException | None) -> None:
    for run in list(_live):
        with contextlib.suppress(Exception):  # a hook must never hide the original error
            run.close(error=exc)
