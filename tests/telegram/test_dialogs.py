"""Dialogs as coroutines: asked, answered, validated, timed out, and replayed across restarts."""

from __future__ import annotations

import datetime as dt
import threading

import sqlalchemy as sa

from steward import db
from steward.telegram.dialogs import SORRY_CHANGED, Answer, DialogEngine
from steward.telegram.outbox import Outbox
from steward.telegram.store import outbox as outbox_table
from tests.clock import Clock

CHAT, USER = 1001, 42


T0 = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)


def sent(engine) -> list[str]:
    with engine.connect() as conn:
        # New messages only: an answered question losing its buttons is an edit of its message.
        query = sa.select(outbox_table.c.text).where(outbox_table.c.edit.is_(None))
        rows = conn.execute(query.order_by(outbox_table.c.id)).all()
    return [r.text for r in rows]


def make(engine, clock=None, **fns) -> DialogEngine:
    clock = clock or Clock(T0)
    dialogs = DialogEngine(
        engine, Outbox(engine, None, clock=clock), clock=clock, default_timeout=600
    )
    for name, (fn, version) in fns.items():
        dialogs.register(name, fn, version=version)
    return dialogs


def positive(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise ValueError("That is not a positive whole number.")
    return int(text)


async def order(d):
    dish = await d.ask("What would you like?", choices=["Soup", "Salad"])
    count = await d.ask("How many?", validate=positive)
    await d.say(f"Noted: {count} x {dish}.")
    if await d.ask("Send it to the kitchen?", choices=["Yes", "No"]) == "Yes":
        ticket = await d.once(lambda: f"ticket-{count}-{dish}")
        await d.say(f"Sent as {ticket}.")


async def test_a_multi_step_dialog_asks_each_question_and_finishes(engine):
    dialogs = make(engine, order=(order, 1))
    assert await dialogs.start("order", CHAT, USER)
    assert await dialogs.answer(CHAT, Answer(text="soup"))
    assert await dialogs.answer(CHAT, Answer(text="2"))
    assert await dialogs.answer(CHAT, Answer(text="Yes"))
    assert sent(engine) == [
        "What would you like?",
        "How many?",
        "Noted: 2 x Soup.",
        "Send it to the kitchen?",
        "Sent as ticket-2-Soup.",
    ]
    assert dialogs.open_dialog(CHAT) is None


async def test_a_restart_mid_dialog_continues_with_everything_remembered(engine):
    first = make(engine, order=(order, 1))
    await first.start("order", CHAT, USER)
    await first.answer(CHAT, Answer(text="Salad"))
    # A new process on the same store: nothing in memory, only the row.
    second = make(engine, order=(order, 1))
    await second.answer(CHAT, Answer(text="3"))
    await second.answer(CHAT, Answer(text="yes"))
    assert sent(engine)[-3:] == [
        "Noted: 3 x Salad.",
        "Send it to the kitchen?",
        "Sent as ticket-3-Salad.",
    ]
    assert sent(engine).count("What would you like?") == 1, "replay must not re-send questions"


async def test_an_invalid_answer_is_explained_and_asked_again_and_skipped_on_replay(engine):
    dialogs = make(engine, order=(order, 1))
    await dialogs.start("order", CHAT, USER)
    await dialogs.answer(CHAT, Answer(text="pizza"))
    assert sent(engine)[-1] == "Please choose one of: Soup, Salad.\n\nWhat would you like?"
    await dialogs.answer(CHAT, Answer(text="Soup"))
    await dialogs.answer(CHAT, Answer(text="zero"))
    assert sent(engine)[-1] == "That is not a positive whole number.\n\nHow many?"
    await dialogs.answer(CHAT, Answer(text="4"))
    assert sent(engine)[-2:] == ["Noted: 4 x Soup.", "Send it to the kitchen?"]
    assert len(sent(engine)) == 6


async def test_a_side_effect_happens_once_across_replays(engine):
    calls: list[str] = []

    def charge(amount: int) -> str:
        calls.append(f"charged {amount}")
        return f"receipt-{len(calls)}"

    async def pay(d):
        receipt = await d.once(charge, 5)
        await d.ask(f"Paid ({receipt}). Any note?")
        note = await d.ask("Anything else?")
        await d.say(f"{receipt}: {note}")

    dialogs = make(engine, pay=(pay, 1))
    await dialogs.start("pay", CHAT, USER)
    await dialogs.answer(CHAT, Answer(text="first"))
    await make(engine, pay=(pay, 1)).answer(CHAT, Answer(text="second"))
    assert calls == ["charged 5"]
    assert sent(engine)[-1] == "receipt-1: second"


async def test_a_question_left_unanswered_times_out_with_a_message(engine):
    clock = Clock(T0)
    dialogs = make(engine, clock, order=(order, 1))

    async def quick(d):
        await d.ask("Quick, yes or no?", choices=["Yes", "No"], timeout=30)

    dialogs.register("quick", quick)
    await dialogs.start("quick", CHAT, USER)
    clock.now += dt.timedelta(seconds=20)
    assert await dialogs.expire() == 0
    clock.now += dt.timedelta(seconds=15)
    assert await dialogs.expire() == 1
    assert "closed this conversation" in sent(engine)[-1] and "/quick" in sent(engine)[-1]
    assert dialogs.open_dialog(CHAT) is None
    assert not await dialogs.answer(CHAT, Answer(text="Yes"))


async def test_an_answer_after_the_timeout_closes_the_dialog_even_before_the_sweep(engine):
    clock = Clock(T0)
    dialogs = make(engine, clock, order=(order, 1))
    await dialogs.start("order", CHAT, USER)
    clock.now += dt.timedelta(seconds=601)  # the sweep has not come by yet
    assert await dialogs.answer(CHAT, Answer(text="soup"))
    assert "closed this conversation" in sent(engine)[-1]
    assert dialogs.open_dialog(CHAT) is None, "the late answer did not go to the question"


async def test_a_message_delivered_twice_is_one_answer(engine):
    """After a crash Telegram hands the unconfirmed updates over again."""
    dialogs = make(engine, order=(order, 1))
    await dialogs.start("order", CHAT, USER)
    assert await dialogs.answer(CHAT, Answer(text="soup", message_id=7))
    assert await dialogs.answer(CHAT, Answer(text="soup", message_id=7))
    assert sent(engine) == ["What would you like?", "How many?"], "not 'soup' as the count"
    assert await dialogs.answer(CHAT, Answer(text="3", message_id=8))
    assert sent(engine)[-1] == "Send it to the kitchen?"


async def test_cancel_ends_the_dialog_and_one_dialog_per_chat_at_a_time(engine):
    dialogs = make(engine, order=(order, 1))
    assert await dialogs.start("order", CHAT, USER)
    assert not await dialogs.start("order", CHAT, USER), "a second dialog must not open"
    assert await dialogs.cancel(CHAT) == "order"
    assert sent(engine)[-1] == "Cancelled."
    assert await dialogs.cancel(CHAT) is None
    assert await dialogs.start("order", CHAT, USER)


async def test_a_button_for_an_old_question_is_not_taken(engine):
    dialogs = make(engine, order=(order, 1))
    await dialogs.start("order", CHAT, USER)
    await dialogs.answer(CHAT, Answer(text="Soup"), question=1)
    assert not await dialogs.answer(CHAT, Answer(text="Salad"), question=1)
    assert sent(engine)[-1] == "How many?"


async def test_a_dialog_whose_code_changed_ends_with_an_apology(engine):
    old = make(engine, order=(order, 1))
    await old.start("order", CHAT, USER)
    new = make(engine, order=(order, 2))
    await new.answer(CHAT, Answer(text="Soup"))
    assert sent(engine)[-1] == SORRY_CHANGED
    assert new.open_dialog(CHAT) is None


async def test_a_replay_that_no_longer_matches_its_log_ends_with_an_apology(engine):
    async def before(d):
        await d.once(lambda: 1)
        await d.ask("Name?")
        await d.ask("Again?")

    async def after(d):  # same version, but the side effect was removed
        await d.ask("Name?")
        await d.ask("Again?")

    await make(engine, x=(before, 1)).start("x", CHAT, USER)
    await make(engine, x=(after, 1)).answer(CHAT, Answer(text="Ann"))
    assert sent(engine)[-1] == SORRY_CHANGED


async def test_a_failing_dialog_says_so_and_closes(engine):
    async def broken(d):
        await d.ask("Number?")
        raise RuntimeError("bug")

    dialogs = make(engine, broken=(broken, 1))
    await dialogs.start("broken", CHAT, USER)
    await dialogs.answer(CHAT, Answer(text="1"))
    assert "something went wrong" in sent(engine)[-1]
    assert dialogs.open_dialog(CHAT) is None


async def test_wait_for_photo_takes_a_photo_and_explains_otherwise(engine):
    async def avatar(d):
        photo = await d.wait_for_photo("Send a photo.")
        await d.say(f"Got {photo.photo} ({photo.caption}).")

    dialogs = make(engine, avatar=(avatar, 1))
    await dialogs.start("avatar", CHAT, USER)
    await dialogs.answer(CHAT, Answer(text="no"))
    assert sent(engine)[-1] == "Please send a photo.\n\nSend a photo."
    await dialogs.answer(CHAT, Answer(photo="FILE123", caption="me"))
    assert sent(engine)[-1] == "Got FILE123 (me)."


async def test_two_workers_on_one_store_continue_the_same_dialog(store_url):
    engines = [db.make_engine(store_url) for _ in range(2)]
    db.upgrade(engines[0])
    a, b = (make(e, order=(order, 1)) for e in engines)
    await a.start("order", CHAT, USER)
    await b.answer(CHAT, Answer(text="Soup"))
    await a.answer(CHAT, Answer(text="2"))
    await b.answer(CHAT, Answer(text="No"))
    assert sent(engines[0])[-2:] == ["Noted: 2 x Soup.", "Send it to the kitchen?"]
    assert a.open_dialog(CHAT) is None
    for e in engines:
        e.dispose()


async def test_expiring_reads_the_store_off_the_event_loop(engine):
    clock = Clock(T0)
    dialogs = make(engine, clock, order=(order, 1))
    await dialogs.start("order", CHAT, USER)
    clock.now += dt.timedelta(seconds=601)
    loop_thread, on_loop = threading.get_ident(), []

    def seen(conn, cursor, statement, *args) -> None:
        if threading.get_ident() == loop_thread:
            on_loop.append(statement)

    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        assert await dialogs.expire() == 1
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)
    assert on_loop == [], "a blocking query ran on the event loop"


def closings(engine) -> list[tuple[str, str, object]]:
    """The edits that take a question's buttons off: (the question's key, text, buttons)."""
    with engine.connect() as conn:
        query = sa.select(outbox_table.c.edit, outbox_table.c.text, outbox_table.c.buttons)
        rows = conn.execute(query.where(outbox_table.c.edit.is_not(None))).all()
    return [(r.edit, r.text, r.buttons) for r in rows]


async def test_a_question_left_behind_loses_its_buttons_however_it_was_left(engine):
    clock = Clock(T0)
    dialogs = make(engine, clock, order=(order, 1))
    await dialogs.start("order", CHAT, USER)
    assert await dialogs.answer(CHAT, Answer(text="Soup"), question=1)
    assert closings(engine) == [], "a pressed button's question is closed by the router"
    await dialogs.answer(CHAT, Answer(text="2"))
    assert closings(engine) == [], "a question without buttons has none to lose"
    await dialogs.cancel(CHAT)  # while "Send it to the kitchen?" waits
    [(key, text, buttons)] = closings(engine)
    assert text == "Send it to the kitchen?" and not buttons and key.startswith("dlg:")
    await dialogs.start("order", CHAT, USER)
    clock.now += dt.timedelta(seconds=601)
    assert await dialogs.expire() == 1
    assert [text for _key, text, _ in closings(engine)][-1] == "What would you like?"
