"""The process around a worker: run it until SIGTERM or SIGINT, then make sure the process ends.

A first signal means "finish what you hold and go" (well inside Heroku's 30-second grace); a
second means "go now". Whatever a thread is doing, the process is gone STOP_DEADLINE seconds
after the first signal.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from steward.worker import World

log = logging.getLogger("steward.worker")

STOP_DEADLINE = 8.0  # seconds from SIGTERM to exit, whatever a thread is doing (Heroku: 30)
STOPPED_GRACE = 2.0  # seconds after a clean stop that lingering threads may take to end


async def serve(world: World) -> int:
    """Run until SIGTERM/SIGINT; a second signal exits at once. Whatever a thread is doing
    (an X request that hangs, say), the process is gone STOP_DEADLINE seconds after the first
    signal: what such a thread held stays pending in the store and is retried at the next start."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received: list[str] = []

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig.name)
        if len(received) > 1:
            log.warning("second %s: exiting now", sig.name)
            os._exit(1)
        log.info("received %s: finishing what is in hand", sig.name)
        deadline = threading.Thread(target=_exit_after, args=(world,), daemon=True)
        deadline.start()
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    starting = asyncio.create_task(world.start())
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():  # a signal while start-up waits for the Bot API, say
        starting.cancel()
    try:
        await starting
    except asyncio.CancelledError:
        pass
    except BaseException:
        stopped.cancel()
        await world.stop("start-up failed")
        raise
    await stopped
    await world.stop(received[0] if received else "stop requested")
    return 0


def _exit_after(world: World) -> None:
    """The stop deadline: leave without the threads that still hold the process, STOP_DEADLINE
    after the signal, or STOPPED_GRACE after a clean stop (then only threads stuck in a call
    that nothing waits for any more keep the interpreter from exiting)."""
    began = time.monotonic()
    while time.monotonic() - began < STOP_DEADLINE:
        if world._stopped_at is not None and time.monotonic() - world._stopped_at >= STOPPED_GRACE:
            break
        time.sleep(0.05)
    busy = [t.name for t in threading.enumerate() if not t.daemon and t.is_alive()]
    busy = [name for name in busy if name != "MainThread"] or ["the event loop"]
    log.warning(
        "still busy %.0fs after the signal (%s): exiting without them; their work stays "
        "pending and is retried at the next start",
        time.monotonic() - began,
        ", ".join(busy),
    )
    logging.shutdown()
    os._exit(0 if world._stopped_at is not None else 1)
