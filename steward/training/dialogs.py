"""The /stop conversation: confirm before a run is told to stop.

Replayed from its log on every answer (steward/telegram/dialogs.py), so the store is read and
written only through `d.once`.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from steward.features import Services
from steward.telegram.formatting import esc
from steward.training import control, store
from steward.training.control import ControlError

if TYPE_CHECKING:
    from steward.telegram.dialogs import Dialog

VERSION = 1  # bump when a question changes (open dialogs then end with an apology)
STOP, KEEP = "Stop it", "Keep running"


def build_dialogs(services: Services) -> list[tuple[str, Any, int]]:
    engine = services.engine

    def describe(run_id: int) -> dict | None:
        with engine.connect() as conn:
            run = store.get_run(conn, run_id)
        if run is None:
            return None
        return {"name": run.name, "host": run.host, "state": run.state}

    def send_stop(run_id: int, chat_id: str) -> str | None:
        try:
            control.queue(engine, run_id, "stop", None, chat_id, services.clock())
        except ControlError as exc:
            return str(exc)
        return None

    async def stop_run(d: Dialog) -> None:
        run_id = int(d.args[0])
        # The store is read and written in a thread: `once` awaits what its function returns.
        run = await d.once(asyncio.to_thread, describe, run_id)
        if run is None:
            await d.say(f"Run {run_id} is gone.")
            return
        shown = f"<b>{esc(run['name'])}</b> (run {run_id}) on {esc(run['host'])}"
        question = f"Stop {shown}? It stops at its next epoch or log."
        if await d.ask(question, choices=[STOP, KEEP]) == KEEP:
            await d.say(f"{shown} keeps running.")
            return
        problem = await d.once(asyncio.to_thread, send_stop, run_id, d.chat_id)
        if problem is not None:
            await d.say(esc(problem))
            return
        await d.say(f"Asked {shown} to stop; I will tell you when it has.")

    # Named after its command: the engine says "start it again with /stop" on a timeout.
    return [("stop", stop_run, VERSION)]
