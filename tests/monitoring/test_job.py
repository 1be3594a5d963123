"""Ticks end to end: real checks against loopback servers, a real store and a real Outbox."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from steward import db
from steward.config import load_settings
from steward.features import Services
from steward.monitoring import commands, store
from steward.monitoring.cli import run_checks_once
from steward.monitoring.job import build_feature
from steward.monitoring.monitor import Monitor
from steward.monitoring.options import ChecksError
from steward.monitoring.spec import load_checks
from steward.telegram import store as tg_store
from steward.telegram.outbox import Outbox
from tests.clock import Clock
from tests.monitoring.targets import T0, Route

MINUTE = dt.timedelta(minutes=1)


@pytest.fixture
def world(sqlite_url, server):
    """Settings, an engine and a clock, from which monitors (and restarts) are made."""
    engine = db.make_engine(sqlite_url)
    db.metadata.create_all(engine)  # ours, the outbox's and the core tables
    checks = f"api={server.url('/api')}; web={server.url('/web')}"
    settings = load_settings({"CHECKS": checks, "TZ": "Europe/Berlin"}, env_file=None)
    made: list[Monitor] = []

    class World:
        clock = Clock(T0)

        def monitor(self) -> Monitor:
            """A fresh monitor and outbox on the same store, as after a restart."""
            outbox = Outbox(engine, "1001", clock=self.clock)
            services = Services(settings=settings, engine=engine, outbox=outbox, clock=self.clock)
            made.append(Monitor(services, load_checks(settings.checks)))
            return made[-1]

        def rows(self):
            with engine.connect() as conn:
                return conn.execute(sa.select(tg_store.outbox).order_by(tg_store.outbox.c.id)).all()

    w = World()
    w.engine, w.settings = engine, settings
    yield w
    engine.dispose()


async def ticks(world, monitor, n):
    for _ in range(n):
        await monitor.tick(list(monitor.specs.values()))
        world.clock.now += MINUTE


async def test_an_outage_is_announced_once_with_a_chart_and_its_end_as_a_reply(world, server):
    monitor = world.monitor()
    await ticks(world, monitor, 2)
    assert world.rows() == []
    server.routes["/api"] = Route(500, b"")
    down_at = world.clock.now
    await ticks(world, monitor, 5)
    (alert,) = world.rows()
    assert alert.key == f"alert:api:{down_at.isoformat()}"
    assert alert.photo is not None and alert.photo.startswith(b"\x89PNG")
    assert (
        alert.caption
        == "🔴 <b>api</b> is down since 2026-03-01 13:02 CET: HTTP 500 Internal Server Error"
    )
    server.routes["/api"] = Route(200, b"ok")
    await ticks(world, monitor, 3)
    alert, back = world.rows()
    assert back.reply_to == alert.key
    assert back.text == "🟢 <b>api</b> is back (2026-03-01 13:07 CET), after 5m down."
    await monitor.stop()


async def test_a_restart_in_the_middle_of_an_outage_neither_repeats_nor_forgets_it(world, server):
    first = world.monitor()
    server.routes["/api"] = Route(500, b"")
    await ticks(world, first, 3)
    await first.stop()
    assert len(world.rows()) == 1
    second = world.monitor()  # new objects, the same store
    await ticks(world, second, 4)
    assert len(world.rows()) == 1
    server.routes["/api"] = Route(200, b"ok")
    await ticks(world, second, 2)
    alert, back = world.rows()
    assert back.reply_to == alert.key and "is back" in back.text
    await second.stop()


async def test_checks_going_down_in_one_tick_share_one_message_and_one_recovery(world, server):
    monitor = world.monitor()
    server.routes["/api"] = Route(500, b"")
    server.routes["/web"] = Route(200, b"", delay=0)
    server.routes.pop("/web")  # 404 from now on
    await ticks(world, monitor, 3)
    (alert,) = world.rows()
    assert alert.key.startswith("alerts:")
    assert "<b>api</b> is down" in alert.caption and "<b>web</b> is down" in alert.caption
    states = store.load_states(world.engine)
    assert states["api"].alert_key == states["web"].alert_key == alert.key
    server.routes["/api"] = server.routes["/web"] = Route(200, b"ok")
    await ticks(world, monitor, 2)
    _, back = world.rows()
    assert back.reply_to == alert.key
    assert "<b>api</b> is back" in back.text and "<b>web</b> is back" in back.text
    await monitor.stop()


async def test_a_muted_check_says_nothing_until_the_mute_is_over(world, server):
    monitor = world.monitor()
    reply = await commands.mute_check(monitor, "api", "10m")
    assert reply == (
        "🔕 <b>api</b> muted for 10m, until 2026-03-01 13:10 CET. "
        "An outage still going then is announced."
    )
    server.routes["/api"] = Route(500, b"")
    await ticks(world, monitor, 10)
    assert world.rows() == []
    await ticks(world, monitor, 1)
    (alert,) = world.rows()
    assert alert.key == f"alert:api:{T0.isoformat()}"
    assert await commands.mute_check(monitor, "nope", "1h") == (
        "There is no check named 'nope'. Checks: api, web."
    )
    assert "is not a duration" in await commands.mute_check(monitor, "api", "soon")
    assert await commands.unmute_check(monitor, "api") == "🔔 <b>api</b> alerts are on again."
    await monitor.stop()


async def test_housekeeping_drops_old_samples_and_rolls_up_hours(world, server):
    monitor = world.monitor()
    await ticks(world, monitor, 3)
    world.clock.now = T0 + dt.timedelta(days=world.settings.samples_retention_days, hours=1)
    await monitor.housekeeping()
    assert store.read_samples(world.engine, ["api"], T0)["api"] == []
    assert [r.count for r in store.read_rollups(world.engine, ["api"], T0)["api"]] == [3]
    await monitor.stop()


def test_the_feature_groups_checks_by_interval_and_offers_the_check_mutes(sqlite_url, server):
    engine = db.make_engine(sqlite_url)
    checks = f"a={server.url('/api')}; b={server.url('/api')} interval=5m; c=tcp://127.0.0.1:1"
    settings = load_settings({"CHECKS": checks, "CHECK_INTERVAL": "30"}, env_file=None)
    services = Services(settings, engine, Outbox(engine, None), db.utcnow)
    feature = build_feature(services)
    assert feature.enabled
    assert feature.summary == "3 checks (http, tcp) every 30s, 300s"
    assert [
        (j.name.rsplit(".", 1)[0] if ".every_" in j.name else j.name, j.every) for j in feature.jobs
    ] == [
        ("monitoring.every_30s", dt.timedelta(seconds=30)),
        ("monitoring.every_300s", dt.timedelta(minutes=5)),
        ("monitoring.watched", dt.timedelta(seconds=10)),
        ("monitoring.housekeeping", dt.timedelta(hours=1)),
    ]
    names = {c.name for c in feature.commands}
    assert {"checks", "check", "hour", "day", "week", "csv", "watch", "unwatch"} <= names
    assert [name for name, _fn, _version in feature.dialogs] == ["watch", "unwatch"]
    assert services.mute_check is not None and services.unmute_check is not None
    engine.dispose()


def test_without_checks_the_feature_is_on_so_that_watch_can_add_some(sqlite_url):
    engine = db.make_engine(sqlite_url)
    services = Services(load_settings({}, env_file=None), engine, None, db.utcnow)
    feature = build_feature(services)
    assert feature.enabled
    assert feature.summary == "no checks yet: set CHECKS or use /watch"
    assert [j.name for j in feature.jobs] == ["monitoring.watched", "monitoring.housekeeping"]
    assert "watch" in {c.name for c in feature.commands}
    engine.dispose()


def test_the_cli_prints_a_table_and_fails_when_a_check_is_bad(server):
    checks = f"api={server.url('/api')}; gone={server.url('/missing')}"
    table, status = run_checks_once(load_settings({"CHECKS": checks}, env_file=None))
    lines = table.splitlines()
    assert lines[0].split() == ["CHECK", "KIND", "STATUS", "VALUE", "DETAILS"]
    assert lines[1].split()[:3] == ["api", "http", "ok"]
    assert lines[2].split()[:3] == ["gone", "http", "bad"] and lines[2].endswith(
        "HTTP 404 Not Found"
    )
    assert status == 1
    server.routes["/missing"] = Route(200, b"")
    assert run_checks_once(load_settings({"CHECKS": checks}, env_file=None))[1] == 0


def said(row) -> str:
    return row.caption if row.photo is not None else row.text


async def test_an_outage_gets_through_a_chat_mute_but_its_recovery_and_reminders_wait(
    world, server
):
    monitor = world.monitor()
    monitor.services.outbox.mute("1001", T0 + dt.timedelta(days=1))
    server.routes["/api"] = Route(500, b"")
    await ticks(world, monitor, 3)
    (alert,) = world.rows()
    assert alert.urgent and alert.state == tg_store.PENDING
    assert said(alert).startswith("🔕 Sent despite mute: 🔴 <b>api</b> is down since ")
    world.clock.now += dt.timedelta(hours=1)  # past `renotify`: a reminder is due
    await ticks(world, monitor, 1)
    alert, still = world.rows()
    assert "still down" in said(still)
    assert not still.urgent and still.state == tg_store.HELD
    server.routes["/api"] = Route(200, b"ok")
    await ticks(world, monitor, 2)
    *_, back = world.rows()
    assert "is back" in back.text
    assert not back.urgent and back.state == tg_store.HELD
    await monitor.stop()


async def test_a_check_muted_on_its_own_says_nothing_even_when_urgent(world, server):
    monitor = world.monitor()
    monitor.services.outbox.mute("1001", T0 + dt.timedelta(days=1))
    await commands.mute_check(monitor, "api", "2h")
    server.routes["/api"] = Route(500, b"")
    await ticks(world, monitor, 5)
    assert world.rows() == []
    await monitor.stop()


async def test_an_alert_whose_message_cannot_be_written_is_not_marked_announced(world, server):
    """The alert's state and the outbox row that announces it commit together: a failed insert
    (here a trigger refusing it, as a full disk would) leaves the alert to be announced later."""
    monitor = world.monitor()
    server.routes["/api"] = Route(500, b"")
    await ticks(world, monitor, 2)
    with world.engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TRIGGER refuse BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'full'); END"
        )
    with pytest.raises((sa.exc.DatabaseError, RuntimeError)):  # said in the log, not swallowed
        await ticks(world, monitor, 1)
    with world.engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER refuse")
    await ticks(world, monitor, 1)
    (alert,) = world.rows()
    assert alert.key.startswith("alert:api:")
    await monitor.stop()


async def test_twenty_checks_down_at_once_make_one_photo_within_telegram_s_limits(world, server):
    server.routes["/down"] = Route(500, b"")
    checks = "; ".join(f"c{n:02d}={server.url('/down')}" for n in range(20))
    outbox = Outbox(world.engine, "1001", clock=world.clock)
    services = Services(
        settings=world.settings, engine=world.engine, outbox=outbox, clock=world.clock
    )
    monitor = Monitor(services, load_checks(checks))
    await ticks(world, monitor, 3)
    (alert,) = world.rows()
    width = int.from_bytes(alert.photo[16:20], "big")
    height = int.from_bytes(alert.photo[20:24], "big")
    assert width + height <= 10_000 and height / width <= 20
    assert height <= 6 * 260 + 60, "six panels at most"
    for n in range(20):
        assert f"<b>c{n:02d}</b> is down" in alert.caption  # the sender cuts what is too long
    await monitor.stop()


def test_workers_with_different_checks_tick_under_different_jobs(sqlite_url, server):
    """During a deploy's overlap the old and the new worker each claim their own checks' ticks;
    with one shared job, the winner's tick ran only its own CHECKS."""
    engine = db.make_engine(sqlite_url)

    def jobs(checks: str) -> list[str]:
        settings = load_settings({"CHECKS": checks}, env_file=None)
        feature = build_feature(Services(settings, engine, Outbox(engine, None), db.utcnow))
        return [j.name for j in feature.jobs if ".every_" in j.name]

    old = jobs(f"a={server.url('/api')}")
    new = jobs(f"a={server.url('/api')}; b={server.url('/web')}")
    assert old != new
    assert jobs(f"a={server.url('/api')}") == old
    engine.dispose()


async def test_an_outage_inside_a_maintenance_window_is_announced_only_if_it_outlasts_it(
    world, server
):
    # T0 is Sunday 2026-03-01 12:00 UTC, 13:00 in Berlin: a window 13:00-13:05 there.
    spec = load_checks(f"api={server.url('/api')} maintenance='sun 13:00-13:05'")
    outbox = Outbox(world.engine, "1001", clock=world.clock)
    services = Services(world.settings, world.engine, outbox, world.clock)
    monitor = Monitor(services, spec)
    server.routes["/api"] = Route(500, b"")
    await ticks(world, monitor, 5)  # 13:00 to 13:04: down, and silent
    assert world.rows() == []
    await ticks(world, monitor, 1)  # 13:05: the window is over, the outage is not
    (alert,) = world.rows()
    assert alert.key == f"alert:api:{T0.isoformat()}"
    await monitor.stop()


def test_a_maintenance_window_must_be_readable():
    with pytest.raises(ChecksError, match="maintenance window 'sunday at two'"):
        load_checks("api=https://a.example maintenance='sunday at two'")
