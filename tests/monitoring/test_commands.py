"""Monitoring's commands as a user meets them: `python bot.py` against the fake Bot API."""

from __future__ import annotations

import datetime as dt
import sqlite3
from contextlib import closing
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from steward import db
from steward.config import load_settings
from steward.features import Services
from steward.monitoring import commands, store
from steward.monitoring.alerts import AlertState, Sample
from steward.monitoring.monitor import Monitor
from steward.monitoring.spec import load_checks
from steward.telegram.outbox import Outbox
from tests.command_calls import command_caller
from tests.fakes.telegram_api import FakeTelegram
from tests.monitoring.targets import Route, TargetServer
from tests.worker_process import WorkerProcess, clean_env

TOKEN = "123456:TEST-token-for-monitoring"
OWNER = 42


@pytest.fixture
def fake():
    with FakeTelegram(token=TOKEN, enforce_limits=False) as server:
        yield server


@pytest.fixture
def target():
    srv = TargetServer()
    srv.routes["/api"] = Route(200, b"ok")
    srv.routes["/down"] = Route(503, b"")
    yield srv
    srv.stop()


def sent(fake, method: str) -> list[dict]:
    return [m for m in fake.messages(OWNER) if m["method"] == method]


def ask(fake, text: str, method: str, contains: str) -> dict:
    fake.push_message(OWNER, OWNER, text)
    found: list[dict] = []

    def answered(f) -> bool:
        # Match the HTML that was sent (the fake also keeps the parsed, tag-free text).
        found[:] = [
            m for m in sent(f, method) if contains in (m.get("html") or m.get("text") or "")
        ]
        return bool(found)

    assert fake.wait_for(answered, timeout=20), [m.get("text") for m in fake.messages(OWNER)]
    return found[-1]


@pytest.fixture
async def handlers(fake, target, sqlite_url):
    """The commands, called the way python-telegram-bot calls them, replying to the fake."""
    engine = db.make_engine(sqlite_url)
    db.metadata.create_all(engine)
    checks = f"api={target.url('/api')}; down={target.url('/down')}"
    settings = load_settings({"CHECKS": checks, "TZ": "Europe/Berlin"}, env_file=None)
    clock = lambda: dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)  # noqa: E731
    services = Services(settings, engine, Outbox(engine, str(OWNER)), clock)
    monitor = Monitor(services, load_checks(checks))
    async with command_caller(fake, TOKEN, OWNER, commands.build(monitor)) as call:
        yield SimpleNamespace(call=call, monitor=monitor, fake=fake)
    await monitor.stop()
    engine.dispose()


async def test_check_runs_a_check_now_and_checks_lists_them(handlers):
    (now,) = await handlers.call("/check down")
    assert now["method"] == "sendMessage"
    lines = now["text"].splitlines()  # the fake keeps the text as Telegram shows it
    assert lines[0].startswith("🔴 down (http): bad, ")
    assert lines[1:] == ["HTTP 503 Service Unavailable", "2026-03-01 13:00 CET"]
    (call,) = [c for c in handlers.fake.calls if c["method"].lower() == "sendmessage"]
    assert call["params"]["parse_mode"] == "HTML"
    assert call["params"]["text"].startswith("🔴 <b>down</b> (http): bad, ")
    await handlers.monitor.tick(list(handlers.monitor.specs.values()))
    (listing,) = await handlers.call("/checks")
    api, down = listing["text"].splitlines()
    assert api.startswith("🟢 api: ok since 2026-03-01 13:00 CET, last ")
    assert api.endswith(" ms, 100% 24h")
    assert down.startswith("🟡 down: failing since 2026-03-01 13:00 CET, last ")


async def test_csv_sends_the_samples_as_a_document(handlers):
    await handlers.monitor.tick(list(handlers.monitor.specs.values()))
    (doc,) = await handlers.call("/csv down hour")
    assert doc["method"] == "sendDocument"
    assert doc["caption"] == "1 samples of down, last 1h"


@pytest.mark.parametrize(
    ("text", "reply"),
    [
        ("/csv", "Usage: /csv <check> [hour|day|week|30d]"),
        ("/csv down soon", "'soon' is not a duration"),
        ("/check", "Usage: /check <name>"),
        ("/day nope", "There is no check named 'nope'. Checks: api, down."),
    ],
)
async def test_bad_arguments_get_a_short_sentence(handlers, text, reply):
    (answer,) = await handlers.call(text)
    assert reply in answer["text"]


def stored_samples(tmp_path, check: str) -> int:
    """Samples of `check` the worker has stored (the target's hit comes a moment earlier)."""
    with closing(sqlite3.connect(tmp_path / "steward.sqlite")) as conn:
        query = 'SELECT count(*) FROM monitoring_samples WHERE "check" = ?'
        return conn.execute(query, (check,)).fetchone()[0]


def test_a_user_lists_runs_charts_exports_and_mutes_checks(fake, target, tmp_path):
    for module in ("steward.posting.job", "steward.training.job"):
        pytest.importorskip(module, reason="the worker needs every feature to start")
    env = clean_env(
        TELEGRAM_TOKEN=TOKEN,
        TELEGRAM_API_URL=fake.url,
        TELEGRAM_CHAT_ID=str(OWNER),
        ALLOWED_USERS=str(OWNER),
        DATABASE_URL=f"sqlite:///{tmp_path}/steward.sqlite",
        CHECKS=f"api={target.url('/api')}; down={target.url('/down')}",
        CHECK_INTERVAL="5",
        TZ="Europe/Berlin",
    )
    with WorkerProcess(env, tmp_path) as worker:
        worker.wait_ready()
        now = ask(fake, "/check down", "sendMessage", "<b>down</b>")
        assert "bad" in now["text"] and "HTTP 503 Service Unavailable" in now["text"]
        assert fake.wait_for(lambda f: stored_samples(tmp_path, "api") >= 1, timeout=20)
        listing = ask(fake, "/checks", "sendMessage", "<b>api</b>: ok since")
        assert "CET" in listing["text"]
        csv = ask(fake, "/csv api hour", "sendDocument", "samples of api")
        assert "last 1h" in csv["caption"]
        photo = ask(fake, "/day api down", "sendPhoto", "api, down: last day")
        assert "CET" in photo["caption"]
        muted = ask(fake, "/mute down 2h", "sendMessage", "muted for 2h")
        assert "<b>down</b>" in muted["html"]
        wrong = ask(fake, "/csv nope", "sendMessage", "no check named")
        assert "Checks: api, down." in wrong["text"]
        assert worker.terminate()[0] == 0


@pytest.fixture
async def many(fake, target, sqlite_url):
    """Three hundred checks with long names; a few down."""
    engine = db.make_engine(sqlite_url)
    db.metadata.create_all(engine)
    names = [f"service-{n:03d}-" + "x" * 40 for n in range(300)]
    checks = "; ".join(f"{name}={target.url('/api')}" for name in names)
    settings = load_settings({"CHECKS": checks, "TZ": "Europe/Berlin"}, env_file=None)
    clock = lambda: dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)  # noqa: E731
    monitor = Monitor(Services(settings, engine, Outbox(engine, str(OWNER)), clock), [])
    monitor.configured = {s.name: s for s in load_checks(checks)}
    down = [Sample(clock(), names[n], "bad", None, {"error": "HTTP 503"}) for n in (250, 299)]
    steps = [
        (
            AlertState(s.check),
            AlertState(s.check, state="ALERTING", since=s.time, last_status="bad"),
        )
        for s in down
    ]
    store.record(engine, down, steps, clock())
    async with command_caller(fake, TOKEN, OWNER, commands.build(monitor)) as call:
        yield SimpleNamespace(call=call, names=names)
    await monitor.stop()
    engine.dispose()


async def test_checks_sums_up_and_pages_hundreds_of_checks(many):
    (first,) = await many.call("/checks")
    lines = first["text"].splitlines()
    assert lines[0] == "300 checks: 2 down, 298 no sample yet"
    assert lines[1].startswith(f"🔴 {many.names[250]}: down since")  # problems first
    assert lines[2].startswith(f"🔴 {many.names[299]}: down since")
    pages = int(lines[-1].split(" of ")[1].split(":")[0])
    assert lines[-1] == f"page 1 of {pages}: /checks 2 for more"
    shown = [line for line in lines if line.startswith(("🔴", "⚪"))]
    for page in range(2, pages + 1):
        (reply,) = await many.call(f"/checks {page}")
        shown += [line for line in reply["text"].splitlines() if line.startswith(("🔴", "⚪"))]
    assert len(shown) == 300
    assert {line.split(":")[0][2:] for line in shown} == set(many.names)
    (wrong,) = await many.call(f"/checks {pages + 1}")
    assert wrong["text"] == f"There are {pages} pages of checks: /checks 1 to /checks {pages}."


@pytest.mark.parametrize("length", ["31d", "99999d", "9" * 400 + "d"])
async def test_a_check_mute_is_bounded_like_the_chat_mute(handlers, length):
    reply = await commands.mute_check(handlers.monitor, "down", length)
    assert reply.startswith("A mute lasts at most 30 days") and "/mute down 30d" in reply
    with handlers.monitor.engine.connect() as conn:
        muted = conn.execute(sa.select(store.alerts.c.muted_until)).scalars().all()
    assert not any(muted), "nothing is muted"
    assert "muted for 30d" in await commands.mute_check(handlers.monitor, "down", "30d")
