"""The update processor: one chat's updates in order, different chats side by side."""

from __future__ import annotations

import asyncio

from telegram import Update

from steward.telegram.app import PerChatProcessor


def update(update_id: int, chat_id: int) -> Update:
    message = {
        "message_id": update_id,
        "date": 0,
        "chat": {"id": chat_id, "type": "private"},
        "from": {"id": chat_id, "is_bot": False, "first_name": "T"},
        "text": f"/status {update_id}",
    }
    return Update.de_json({"update_id": update_id, "message": message}, None)


async def test_one_chats_updates_run_in_order_and_other_chats_alongside():
    processor = PerChatProcessor()
    events: list[tuple[str, int]] = []

    async def handle(n: int, seconds: float) -> None:
        events.append(("start", n))
        await asyncio.sleep(seconds)
        events.append(("end", n))

    async def arrive(n: int, chat: int, seconds: float, after: float) -> None:
        await asyncio.sleep(after)
        await processor.process_update(update(n, chat), handle(n, seconds))

    await asyncio.gather(
        arrive(1, 42, 0.10, 0.00),
        arrive(2, 42, 0.10, 0.01),  # waits for 1
        arrive(3, 42, 0.01, 0.15),  # arrives while 2 runs: must wait for it, not overtake
        arrive(4, 7, 0.01, 0.02),  # another chat: runs while 1 does
    )
    chat42 = [e for e in events if e[1] in (1, 2, 3)]
    assert chat42 == [("start", 1), ("end", 1), ("start", 2), ("end", 2), ("start", 3), ("end", 3)]
    assert events.index(("end", 4)) < events.index(("end", 1)), "chat 7 did not wait for chat 42"
    assert processor._locks == {}, "no lock is kept for an idle chat"
