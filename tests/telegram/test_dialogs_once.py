"""`d.once(effect)`: claimed before it runs (so two workers never both run it), and the values
the docs tell people to read through it (clocks, random numbers, rows) come back on replay."""

from __future__ import annotations

import asyncio
import datetime as dt

import sqlalchemy as sa

from steward import db
from steward.telegram.dialogs import Answer, DialogEngine
from steward.telegram.outbox import Outbox
from steward.telegram.store import outbox as outbox_table

CHAT, USER = 1001, 42


def sent(engine) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(outbox_table.c.text).order_by(outbox_table.c.id)).all()
    return [r.text for r in rows]


def make(engine, **fns) -> DialogEngine:
    dialogs = DialogEngine(engine, Outbox(engine, None), default_timeout=600)
    for name, fn in fns.items():
        dialogs.register(name, fn)
    return dialogs


async def test_two_workers_answering_one_chat_run_a_side_effect_once(store_url):
    engines = [db.make_engine(store_url) for _ in range(2)]
    db.upgrade(engines[0])
    charged: list[str] = []

    async def charge(amount: str) -> str:
        charged.append(amount)
        await asyncio.sleep(0.3)  # a slow payment API: both workers are inside at once
        return f"receipt for {amount}"

    async def pay(d):
        amount = await d.ask("How much?")
        receipt = await d.once(charge, amount)
        await d.say(f"Paid: {receipt}.")

    workers = [make(e, pay=pay) for e in engines]
    assert await workers[0].start("pay", CHAT, USER)
    # Both workers poll during a deploy overlap; each gets one message of the same chat.
    await asyncio.gather(
        workers[0].answer(CHAT, Answer(text="5", message_id=11)),
        workers[1].answer(CHAT, Answer(text="7", message_id=12)),
    )
    texts = sent(engines[0])
    for e in engines:
        e.dispose()
    assert len(charged) == 1, f"the side effect ran {len(charged)} times"
    assert texts.count(f"Paid: receipt for {charged[0]}.") == 1


async def test_a_clock_read_through_once_is_replayed_as_the_same_datetime(engine):
    seen: list[object] = []

    async def remind(d):
        asked_at = await d.once(db.utcnow)
        when = await d.once(lambda: (asked_at + dt.timedelta(hours=1)).date())
        seen.append((asked_at, when))
        await d.ask(f"Remind you at {asked_at:%H:%M}?", choices=["Yes", "No"])
        await d.say(f"Noted at {asked_at.isoformat()} for {when.isoformat()}.")

    first = make(engine, remind=remind)
    assert await first.start("remind", CHAT, USER)
    second = make(engine, remind=remind)  # another process replays the stored log
    assert await second.answer(CHAT, Answer(text="Yes"))
    (live_at, live_when), (replayed_at, replayed_when) = seen
    assert isinstance(replayed_at, dt.datetime) and replayed_at == live_at
    assert replayed_when == live_when and isinstance(replayed_when, dt.date)
    assert sent(engine)[-1] == f"Noted at {live_at.isoformat()} for {live_when.isoformat()}."


async def test_a_value_that_cannot_be_logged_ends_the_dialog_without_running_twice(engine):
    runs: list[int] = []

    def opaque():
        runs.append(1)
        return object()

    async def odd(d):
        await d.once(opaque)
        await d.ask("Never asked?")

    dialogs = make(engine, odd=odd)
    assert await dialogs.start("odd", CHAT, USER)
    assert dialogs.open_dialog(CHAT) is None
    assert runs == [1]
    assert "something went wrong" in sent(engine)[-1]


async def test_a_worker_dying_inside_a_side_effect_ends_the_dialog_without_repeating_it(engine):
    from steward.telegram.dialogs import SORRY_INTERRUPTED
    from tests.clock import Clock

    runs: list[str] = []
    inside = asyncio.Event()

    async def charge(amount: str) -> str:
        runs.append(amount)
        inside.set()
        await asyncio.sleep(60)  # the worker dies in here
        return "receipt"

    async def pay(d):
        amount = await d.ask("How much?")
        await d.once(charge, amount)
        await d.say("Paid.")

    clock = Clock()
    dying = DialogEngine(engine, Outbox(engine, None, clock=clock), clock=clock)
    dying.register("pay", pay)
    assert await dying.start("pay", CHAT, USER)
    answering = asyncio.create_task(dying.answer(CHAT, Answer(text="5", message_id=1)))
    await inside.wait()
    answering.cancel()  # as a SIGKILL would leave it: the step claimed, its result unknown
    await asyncio.gather(answering, return_exceptions=True)

    clock.advance(minutes=3)
    other = DialogEngine(engine, Outbox(engine, None, clock=clock), clock=clock)
    other.register("pay", pay)
    await other.answer(CHAT, Answer(text="anything", message_id=2))
    assert runs == ["5"], "the side effect ran again"
    assert sent(engine)[-1] == SORRY_INTERRUPTED
    assert other.open_dialog(CHAT) is None
