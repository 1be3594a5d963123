"""/runs, /run, /plot, /stop, /setlr, /save and /cmd, called as python-telegram-bot calls them,
replying to the fake Bot API, on runs reported by the real client."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from steward import db
from steward.config import load_settings
from steward.features import Services
from steward.telegram import store as tg_store
from steward.telegram.dialogs import Answer, DialogEngine
from steward.telegram.outbox import Outbox
from steward.training import Run, commands, dialogs, store
from tests.command_calls import command_caller
from tests.fakes.telegram_api import FakeTelegram

TOKEN = "123456:TEST-token-for-training"
OWNER = 42


@pytest.fixture
def fake():
    with FakeTelegram(token=TOKEN, enforce_limits=False) as server:
        yield server


@pytest.fixture
async def chat(fake, url, engine):
    settings = load_settings({"TZ": "Europe/Berlin"}, env_file=None)
    outbox = Outbox(engine, str(OWNER))
    services = Services(settings, engine, outbox, db.utcnow)
    services.dialogs = DialogEngine(engine, outbox)
    for name, fn, version in dialogs.build_dialogs(services):
        services.dialogs.register(name, fn, version=version)

    def said() -> list[str]:
        """What went into the outbox (dialog questions and answers go that way)."""
        with engine.connect() as conn:
            query = sa.select(tg_store.outbox.c.text).order_by(tg_store.outbox.c.id)
            return list(conn.scalars(query))

    def commands_sent(run_id: int) -> list:
        with engine.connect() as conn:
            query = sa.select(store.run_commands).where(store.run_commands.c.run_id == run_id)
            return conn.execute(query).all()

    async with command_caller(fake, TOKEN, OWNER, commands.build(services)) as call:
        yield SimpleNamespace(
            call=call, said=said, commands_sent=commands_sent, services=services, url=url
        )


def start_run(url: str, name: str = "resnet", steps: int = 5) -> Run:
    run = Run(name, {"lr": 0.1}, database_url=url)
    for step in range(1, steps + 1):
        run.log(step=step, loss=1 / step, accuracy=1 - 1 / (step + 1), lr=0.1)
    run.flush()
    return run


async def test_runs_lists_active_and_recent_runs_with_their_last_metrics(chat):
    done = start_run(chat.url, "old-run")
    done.close()
    live = start_run(chat.url, "new <run>")
    (reply,) = await chat.call("/runs")
    lines = reply["text"].splitlines()
    assert lines[0] == "Training runs"
    assert lines[1] == "▶️ 2 new <run> running · loss 0.2, accuracy 0.8333, lr 0.1"
    assert lines[2] == "✅ 1 old-run finished · loss 0.2, accuracy 0.8333, lr 0.1"
    live.close()


async def test_run_shows_one_run_in_detail_with_its_best_values(chat):
    run = start_run(chat.url)
    run.log(step=6, loss=0.4)
    run.flush()
    (reply,) = await chat.call(f"/run {run.id}")
    text = reply["text"]
    assert text.startswith("▶️ resnet (run 1) running\nhost ")
    assert "config: lr=0.1" in text
    assert "loss 0.4 (best 0.2 at step 5)" in text
    (by_name,) = await chat.call("/run resnet")
    assert by_name["text"].startswith("▶️ resnet (run 1) running")
    run.close()


async def test_plot_sends_a_chart_of_the_run_or_names_the_metrics_it_has(chat):
    run = start_run(chat.url)
    (photo,) = await chat.call(f"/plot {run.id}")
    assert photo["method"] == "sendPhoto" and photo["caption"] == "resnet (run 1), running"
    (some,) = await chat.call(f"/plot {run.id} loss accuracy")
    assert some["method"] == "sendPhoto"
    (wrong,) = await chat.call(f"/plot {run.id} perplexity")
    assert wrong["text"] == "Run 1 has no metric 'perplexity'. It has: accuracy, loss, lr."
    run.close()


async def test_stop_asks_first_then_the_run_receives_the_stop(chat):
    run = start_run(chat.url)
    assert await chat.call(f"/stop {run.id}") == []  # the question goes through the outbox
    host = run._writer.registration["host"]
    question = f"Stop <b>resnet</b> (run 1) on {host}? It stops at its next epoch or log."
    assert chat.said()[-1] == question
    assert chat.commands_sent(run.id) == []
    await chat.services.dialogs.answer(OWNER, Answer(text="Stop it"))
    assert chat.said()[-1].startswith("Asked <b>resnet</b> (run 1)")
    (sent,) = chat.commands_sent(run.id)
    assert sent.kind == "stop" and sent.chat_id == str(OWNER)
    run.flush()
    assert [c.kind for c in run.commands()] == ["stop"]
    run.close()


async def test_keep_running_sends_nothing(chat):
    run = start_run(chat.url)
    await chat.call("/stop")  # the only active run
    await chat.services.dialogs.answer(OWNER, Answer(text="Keep running"))
    assert chat.said()[-1].endswith("keeps running.")
    assert chat.commands_sent(run.id) == []
    run.close()


@pytest.mark.parametrize(
    ("text", "argument"),
    [
        ("/setlr 1 0.001", {"value": 0.001}),
        ("/setlr 1 x0.5", {"factor": 0.5}),
        ("/setlr 3e-4", {"value": 0.0003}),
    ],
)
async def test_setlr_queues_a_value_or_a_factor(chat, text, argument):
    run = start_run(chat.url)
    (reply,) = await chat.call(text)
    assert reply["text"].startswith("Sent to resnet (run 1): learning rate")
    (sent,) = chat.commands_sent(run.id)
    assert sent.kind == "set_lr" and sent.argument == argument
    run.close()


async def test_save_and_cmd_queue_their_commands(chat):
    run = start_run(chat.url)
    await chat.call("/save 1 best")
    await chat.call("/cmd 1 dump_attention layer 3")
    save, custom = chat.commands_sent(run.id)
    assert save.kind == "save" and save.argument == {"path": "best"}
    assert custom.kind == "custom" and custom.argument == {
        "name": "dump_attention",
        "text": "layer 3",
    }
    run.close()


@pytest.mark.parametrize(
    ("text", "reply"),
    [
        ("/setlr 1 abc", "'abc' is not a learning rate; use a number like 0.001"),
        ("/setlr 1 -0.1", "a learning rate must be a positive number, not -0.1"),
        ("/setlr 1 x-2", "a factor must be a positive number, not -2"),
        ("/setlr 1 x0", "a factor must be a positive number, not 0"),
        ("/setlr", "Usage: /setlr [run] <rate>"),
        ("/setlr 99 0.1", "There is no run '99'. /runs lists them."),
        ("/stop 99", "There is no run '99'."),
        ("/run nope", "There is no run 'nope'."),
        ("/cmd 1 rm -rf", "Sent <code>rm</code>"),  # a name and a text: harmless, sent
        ("/cmd 1 ../x", "'../x' is not a command name"),
        ("/cmd 1", "Usage: /cmd <run> <name> [text]"),
        ("/plot 99", "There is no run '99'."),
    ],
)
async def test_bad_arguments_get_a_short_sentence(chat, text, reply):
    run = start_run(chat.url)
    (answer,) = await chat.call(text)
    assert reply in (answer.get("html") or answer["text"])
    assert "Traceback" not in answer["text"]
    run.close()


async def test_commands_for_a_run_that_ended_say_so_and_send_nothing(chat):
    run = start_run(chat.url)
    run.close()
    (answer,) = await chat.call(f"/setlr {run.id} 0.01")
    assert answer["text"] == "Run 1 (resnet) has already finished."
    (none,) = await chat.call("/stop")
    assert none["text"] == "No run is active. /runs lists the recent ones."
    assert chat.commands_sent(run.id) == []


async def test_with_several_active_runs_a_command_must_name_one(chat):
    first, second = start_run(chat.url, "a"), start_run(chat.url, "b")
    (answer,) = await chat.call("/setlr 0.01")
    assert answer["text"] == "Several runs are active; name one: 1 (a), 2 (b)."
    first.close()
    second.close()


async def test_runs_with_a_tag_lists_only_the_runs_tagged_so(chat):
    tagged = Run("sweep-a", database_url=chat.url, tags=["sweep3", "lr"])
    other = Run("baseline", database_url=chat.url)
    tagged.close()
    other.close()
    (reply,) = await chat.call("/runs sweep3")
    lines = reply["text"].splitlines()
    assert lines == [
        "Training runs tagged sweep3",
        "✅ 1 sweep-a finished #lr #sweep3",
        "/run <id> for details, /plot <id> for a chart",
    ]
    (none,) = await chat.call("/runs nothing")
    assert none["text"].startswith("No run is tagged nothing.")


async def test_compare_draws_two_runs_on_one_chart_or_says_what_is_missing(chat):
    first, second = start_run(chat.url, "a"), start_run(chat.url, "b", steps=3)
    (photo,) = await chat.call("/compare 1 2")
    assert photo["method"] == "sendPhoto" and photo["caption"] == "loss of runs 1, 2"
    (acc,) = await chat.call("/compare 1 2 accuracy")
    assert acc["caption"] == "accuracy of runs 1, 2"
    (wrong,) = await chat.call("/compare 1 2 perplexity")
    assert wrong["text"] == "Run 1, 2 has no metric 'perplexity'."
    (usage,) = await chat.call("/compare 1")
    assert usage["text"].startswith("Usage: /compare <run> <run>")
    first.close()
    second.close()
