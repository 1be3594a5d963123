"""/watch and /unwatch: checks added and removed by conversation, then run by the monitor."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time

import pytest
import sqlalchemy as sa

from steward.config import load_settings
from steward.features import Services
from steward.monitoring import commands, dialogs, store
from steward.monitoring.monitor import Monitor
from steward.monitoring.spec import load_checks
from steward.telegram.dialogs import Answer, DialogEngine
from steward.telegram.outbox import Outbox
from steward.telegram.store import outbox as outbox_table
from tests.clock import Clock
from tests.fakes.telegram_api import FakeTelegram
from tests.monitoring.targets import T0, Route
from tests.worker_process import WorkerProcess, clean_env

CHAT, USER = 1001, 42
KIND, NAME = dialogs.KIND_QUESTION, dialogs.NAME_QUESTION
TARGET, THRESHOLD = dialogs.TARGET_QUESTION, dialogs.THRESHOLD_QUESTION
INTERVAL = dialogs.INTERVAL_QUESTION


class World:
    """One store; `process()` is a worker process on it (a new one is a restart)."""

    def __init__(self, engine, server) -> None:
        self.engine, self.server, self.clock = engine, server, Clock(T0)
        self.settings = load_settings(
            {"CHECKS": f"api={server.url('/api')}", "TZ": "UTC"}, env_file=None
        )
        self.monitors: list[Monitor] = []

    def process(self) -> tuple[DialogEngine, Monitor]:
        outbox = Outbox(self.engine, str(CHAT), clock=self.clock)
        services = Services(self.settings, self.engine, outbox, self.clock)
        engine = DialogEngine(self.engine, outbox, clock=self.clock, default_timeout=600)
        services.dialogs = engine
        monitor = Monitor(services, load_checks(self.settings.checks))
        for name, fn, version in dialogs.build_dialogs(monitor):
            engine.register(name, fn, version=version)
        self.monitors.append(monitor)
        return engine, monitor

    def said(self) -> list[str]:
        """The text of every message in the outbox (a photo's caption for a photo); not the
        edits that take an answered question's buttons off."""
        with self.engine.connect() as conn:
            query = sa.select(outbox_table.c.text, outbox_table.c.caption)
            query = query.where(outbox_table.c.edit.is_(None))
            return [r.text or r.caption for r in conn.execute(query.order_by(outbox_table.c.id))]

    def buttons(self) -> list[str]:
        """The labels of the buttons under the last message."""
        with self.engine.connect() as conn:
            query = sa.select(outbox_table.c.buttons).order_by(outbox_table.c.id.desc())
            rows = conn.execute(query.limit(1)).scalar() or []
        return [label for row in rows for label, _data in row]

    def watched(self) -> dict[str, dict]:
        return {w.name: {"kind": w.kind, **w.options} for w in store.read_watched(self.engine)}


@pytest.fixture
async def world(engine, server):
    w = World(engine, server)
    yield w
    for monitor in w.monitors:
        await monitor.stop()


async def answer(dialog_engine: DialogEngine, *texts: str) -> None:
    for text in texts:
        assert await dialog_engine.answer(CHAT, Answer(text=text)), text


async def test_watch_asks_step_by_step_and_adds_the_check_to_the_store(world, server):
    talk, _ = world.process()
    assert await talk.start("watch", CHAT, USER)
    assert world.said() == [KIND] and world.buttons() == ["http", "tcp", "evm_lag"]
    await answer(talk, "http", server.url("/web"), "800", "30s", "web")
    summary = f"<b>web</b> (http): http://127.0.0.1:{server.port}/…, every 30s, alert above 800 ms"
    assert world.said()[1:-1] == [TARGET["http"], THRESHOLD["http"], INTERVAL, NAME]
    assert world.said()[-1] == f"Add this check?\n{summary}"
    assert world.buttons() == ["Add", "Cancel"]
    assert world.watched() == {}, "nothing is stored before Add"
    await answer(talk, "Add")
    assert world.said()[-1] == (
        f"Added {summary}.\nIts first sample comes within 10s: see /checks. "
        "/unwatch web removes it."
    )
    assert world.watched() == {
        "web": {"kind": "http", "url": server.url("/web"), "alert_above": 800.0, "interval": 30}
    }
    assert talk.open_dialog(CHAT) is None


async def test_a_running_monitor_samples_a_watched_check_at_its_interval(world, server):
    _, running = world.process()  # another worker, started before the check existed
    await running.start()
    assert await running.watched_tick(world.clock.now) == [] and server.hits == {}
    talk, _ = world.process()
    await talk.start("watch", CHAT, USER)
    await answer(talk, "http", server.url("/web"), "status only", "30s", "web", "Add")
    await running.watched_tick(world.clock.now)
    assert server.hits == {"/web": 1}, "picked up on the next tick, without a restart"
    assert "api" not in server.hits, "configured checks run from their own jobs"
    for seconds, hits in ((10, 1), (20, 1), (30, 2), (40, 2), (60, 3)):
        tick = T0 + dt.timedelta(seconds=seconds)
        world.clock.now = tick + dt.timedelta(seconds=0.3)  # samples are stamped a bit late
        await running.watched_tick(tick)
        assert server.hits["/web"] == hits, seconds
    states = store.load_states(world.engine, ["web"])
    assert states["web"].last_status == "ok" and states["web"].last_at == world.clock.now
    assert "(1 added with /watch)" in running.status_lines()[0]
    assert list(running.specs) == ["api", "web"]


async def test_a_watched_check_going_down_is_announced_like_a_configured_one(world, server):
    talk, monitor = world.process()
    await talk.start("watch", CHAT, USER)
    await answer(talk, "http", server.url("/web"), "skip", "10s", "web", "Add")
    server.routes["/web"] = Route(503, b"")
    for n in range(3):
        world.clock.now = T0 + dt.timedelta(seconds=10 * n)
        await monitor.watched_tick(world.clock.now)
    assert world.said()[-1] == (
        "🔴 <b>web</b> is down since 2026-03-01 12:00 UTC: HTTP 503 Service Unavailable"
    )


async def test_invalid_answers_are_explained_with_the_checks_rules_and_asked_again(world):
    talk, _ = world.process()
    store.add_watched(world.engine, "db", "tcp", {"host": "db", "port": 5432}, None, None, T0)
    await talk.start("watch", CHAT, USER)
    steps = [
        ("smtp", "Please choose one of: http, tcp, evm_lag.", KIND),
        ("tcp", None, TARGET["tcp"]),
        ("db", "This check has 'tcp://db'; expected host and port like tcp://db.internal:5432.",
         TARGET["tcp"]),
        ("db:70000", "This check has 'tcp://db:70000'; expected host and port like "
         "tcp://db.internal:5432.", TARGET["tcp"]),
        ("db.internal:5432", None, THRESHOLD["tcp"]),
        ("fast", "This check has alert_above='fast'; expected a number like 10 or 0.5.",
         THRESHOLD["tcp"]),
        ("-5", "Please send a number above 0, or skip.", THRESHOLD["tcp"]),
        ("250", None, INTERVAL),
        ("often", "This check has interval='often'; expected seconds or a duration like 30s, "
         "5m, 1h.", INTERVAL),
        ("1s", "Please choose between 10s and 1d, for example 1m.", INTERVAL),
        ("1m", None, NAME),
        ("my db", "This check has the name 'my db'; expected 1-64 letters, digits, '_', '-' "
         "or '.'.", NAME),
        ("api", "api is a check from CHECKS already; please choose another name.", NAME),
        ("db", "db is taken by another check added with /watch. Please choose another.", NAME),
    ]  # fmt: skip
    for text, why, question in steps:
        await answer(talk, text)
        assert world.said()[-1] == (f"{why}\n\n{question}" if why else question), text
    await answer(talk, "db-main")
    assert world.said()[-1] == (
        "Add this check?\n<b>db-main</b> (tcp): db.internal:5432, every 1m, alert above 250 ms"
    )
    await answer(talk, "Cancel")
    assert world.said()[-1] == "Nothing was added."
    assert list(world.watched()) == ["db"]


async def test_an_evm_lag_check_takes_its_references_and_may_skip_the_threshold(world):
    talk, _ = world.process()
    await talk.start("watch", CHAT, USER)
    await answer(talk, "evm_lag", "https://node.example/key123")
    assert world.said()[-1] == (
        "This check lists no references; expected url and references like "
        f"evm:https://node|https://ref1,https://ref2.\n\n{TARGET['evm_lag']}"
    )
    await answer(talk, "https://node.example/key123|https://a.example,https://b.example")
    await answer(talk, "skip", "5m", "node")
    assert world.said()[-1] == (
        "Add this check?\n<b>node</b> (evm_lag): https://node.example/…, "
        "against 2 reference node(s), every 5m"
    ), "the node's path (often an API key) is not repeated"
    await answer(talk, "Add")
    assert world.watched()["node"] == {
        "kind": "evm_lag",
        "url": "https://node.example/key123",
        "references": "https://a.example,https://b.example",
        "interval": 300,
    }


async def test_a_restart_mid_dialog_continues_and_adds_the_check_once(world, server):
    first, _ = world.process()
    await first.start("watch", CHAT, USER)
    await answer(first, "http", server.url("/web"))
    second, monitor = world.process()  # a new process: only the store remembers
    await answer(second, "status only", "1m", "web")
    assert world.said().count(KIND) == 1 and world.said().count(TARGET["http"]) == 1
    await answer(second, "Add")
    assert "Added <b>web</b>" in world.said()[-1]
    assert list(world.watched()) == ["web"]
    assert "web" in monitor.specs


async def test_a_name_taken_between_the_question_and_add_is_not_added_twice(world, server):
    talk, _ = world.process()
    await talk.start("watch", CHAT, USER)
    await answer(talk, "http", server.url("/web"), "skip", "1m", "web")
    store.add_watched(world.engine, "web", "tcp", {"host": "x", "port": 1}, None, None, T0)
    await answer(talk, "Add")
    assert world.said()[-1] == (
        "web was taken meanwhile by another check added with /watch. "
        "Nothing was added; start again with /watch."
    )
    assert world.watched()["web"]["kind"] == "tcp"


async def test_unwatch_removes_a_watched_check_after_a_confirmation(world, server):
    talk, monitor = world.process()
    await talk.start("watch", CHAT, USER)
    await answer(talk, "http", server.url("/web"), "skip", "10s", "web", "Add")
    await monitor.watched_tick(world.clock.now)
    assert await commands.unwatch_problem(monitor, "api") == (
        "<b>api</b> comes from CHECKS, so /unwatch cannot remove it: take it out of CHECKS "
        "(e.g. heroku config:set CHECKS=...) and the worker restarts without it."
    )
    assert await commands.unwatch_problem(monitor, "nope") == (
        "No check added with /watch is named 'nope'. Added with /watch: web."
    )
    assert await commands.unwatch_problem(monitor, "web") is None
    assert await talk.start("unwatch", CHAT, USER, ["web"])
    assert world.said()[-1] == (
        "Remove <b>web</b>? It stops being checked, and its samples are deleted."
    )
    assert world.buttons() == ["Remove", "Keep"]
    await answer(talk, "Keep")
    assert world.said()[-1] == "<b>web</b> stays." and "web" in world.watched()
    await talk.start("unwatch", CHAT, USER, ["web"])
    await answer(talk, "Remove")
    assert world.said()[-1] == "Removed <b>web</b>."
    assert world.watched() == {} and "web" not in monitor.specs
    assert store.read_samples(world.engine, ["web"], T0)["web"] == []
    world.clock.now += dt.timedelta(minutes=1)
    hits = server.hits["/web"]
    await monitor.watched_tick(world.clock.now)
    assert server.hits["/web"] == hits, "a removed check is no longer run"


async def test_a_watched_check_is_shadowed_by_a_configured_one_of_the_same_name(world, server):
    store.add_watched(world.engine, "api", "tcp", {"host": "x", "port": 1}, None, None, T0)
    _, monitor = world.process()
    await monitor.refresh()
    assert monitor.watched == {} and monitor.specs["api"].kind == "http"


# -- the bot as a user meets it ----------------------------------------------------------------

TOKEN = "123456:TEST-token-for-watch"


def needs_every_feature() -> None:
    for module in ("steward.posting.job", "steward.training.job"):
        pytest.importorskip(module, reason="the worker needs every feature to start")


def wait_said(fake, contains: str) -> dict:
    """The last message to the chat whose text holds `contains`, once it has been sent."""
    found: list[dict] = []

    def arrived(f) -> bool:
        found[:] = [m for m in f.messages(USER) if contains in (m["text"] or "")]
        return bool(found)

    assert fake.wait_for(arrived, timeout=20), [m["text"] for m in fake.messages(USER)]
    return found[-1]


def press(fake, message: dict, label: str) -> None:
    raw = message["reply_markup"]
    keyboard = (json.loads(raw) if isinstance(raw, str) else raw)["inline_keyboard"]
    button = next(b for row in keyboard for b in row if b["text"] == label)
    fake.push_callback(USER, USER, button["callback_data"], message["message_id"])


def test_watch_through_the_bot_adds_a_check_that_checks_then_lists(server, tmp_path):
    needs_every_feature()
    with FakeTelegram(token=TOKEN, enforce_limits=False) as fake:
        env = clean_env(
            TELEGRAM_TOKEN=TOKEN,
            TELEGRAM_API_URL=fake.url,
            TELEGRAM_CHAT_ID=str(USER),
            ALLOWED_USERS=str(USER),
            DATABASE_URL=f"sqlite:///{tmp_path / 'steward.sqlite'}",
            CHECKS=f"api={server.url('/api')}",
            TZ="UTC",
        )
        with WorkerProcess(env, tmp_path) as worker:
            worker.wait_ready()
            fake.push_message(USER, USER, "/watch")
            press(fake, wait_said(fake, "What should I watch?"), "http")
            wait_said(fake, "Which URL?")
            fake.push_message(USER, USER, server.url("/web"))
            wait_said(fake, "Alert when a response takes longer")
            fake.push_message(USER, USER, "fast")
            wait_said(fake, "alert_above='fast'")
            fake.push_message(USER, USER, "status only")
            wait_said(fake, "How often should I check?")
            fake.push_message(USER, USER, "10s")
            wait_said(fake, "What shall I call it?")
            fake.push_message(USER, USER, "web")
            press(fake, wait_said(fake, "Add this check?"), "Add")
            wait_said(fake, "Added web (http)")
            assert fake.wait_for(lambda f: server.hits.get("/web", 0) >= 1, timeout=20)
            # The target answered; its sample is stored a moment later. Ask until it shows.
            for _attempt in range(20):
                before = len(fake.messages(USER))
                fake.push_message(USER, USER, "/checks")
                assert fake.wait_for(lambda f, n=before: len(f.messages(USER)) > n, timeout=20)
                listing = fake.messages(USER)[-1]
                if "web: ok since" in listing["text"]:
                    break
                time.sleep(0.5)
            assert "web: ok since" in listing["text"], listing["text"]
            assert listing["text"].splitlines()[0].startswith("🟢 api: ok since")
            fake.push_message(USER, USER, "/unwatch api")
            wait_said(fake, "api comes from CHECKS, so /unwatch cannot remove it")
            assert worker.terminate()[0] == 0


@pytest.mark.parametrize(
    ("kind", "target"),
    [
        ("http", {"url": "http://169.254.169.254/latest/meta-data/"}),
        ("http", {"url": "http://[fd00:ec2::254]/latest/meta-data/"}),
        ("tcp", {"host": "169.254.1.1", "port": 80}),
        ("evm_lag", {"url": "http://node.example/", "references": "http://169.254.169.254/"}),
    ],
)
async def test_watch_refuses_link_local_and_cloud_metadata_targets(world, kind, target):
    _, monitor = world.process()
    options = {"name": "meta", "kind": kind, **target}
    problem = await asyncio.to_thread(monitor.add_watched, options, str(CHAT), USER)
    assert problem is not None and "CHECKS_ALLOW_PRIVATE=true" in problem
    assert world.watched() == {}


async def test_checks_allow_private_lets_watch_add_them_and_checks_always_may(world, sqlite_url):
    world.settings = load_settings(
        {"CHECKS": "meta=http://169.254.169.254/", "CHECKS_ALLOW_PRIVATE": "true"}, env_file=None
    )
    _, monitor = world.process()
    options = {"name": "meta2", "kind": "http", "url": "http://169.254.169.254/"}
    assert await asyncio.to_thread(monitor.add_watched, options, str(CHAT), USER) is None
    assert "meta" in monitor.configured
