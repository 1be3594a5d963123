"""The watcher's world for tests: a store, an outbox, a clock the test moves, runs."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from steward import db
from steward.config import load_settings
from steward.features import Services
from steward.telegram import store as tg_store
from steward.telegram.outbox import Outbox
from steward.training import Run
from steward.training.job import Watcher

CHAT = "1001"
UPDATE_EVERY, STALL_AFTER, LOST_AFTER = 30, 300, 3600


class Clock:
    """Real time plus an offset the test moves: heartbeats come from the client's real clock."""

    def __init__(self) -> None:
        self.offset = dt.timedelta()

    def __call__(self) -> dt.datetime:
        return db.utcnow() + self.offset

    def skip(self, seconds: float) -> None:
        self.offset += dt.timedelta(seconds=seconds)


@pytest.fixture
def world(url, engine):
    settings = load_settings(
        {"TRAINING_UPDATE_EVERY": str(UPDATE_EVERY), "TRAINING_STALL_AFTER": str(STALL_AFTER)},
        env_file=None,
    )

    class World:
        clock = Clock()

        def watcher(self) -> Watcher:
            """A watcher as a worker process has one (a new one is a restart)."""
            outbox = Outbox(engine, CHAT, clock=self.clock)
            services = Services(settings=settings, engine=engine, outbox=outbox, clock=self.clock)
            return Watcher(services)

        def run(self, name: str = "resnet", **kw) -> Run:
            return Run(name, {"lr": 0.1, "batch": 64}, database_url=url, **kw)

        def rows(self):
            with engine.connect() as conn:
                query = sa.select(tg_store.outbox).order_by(tg_store.outbox.c.id)
                return conn.execute(query).all()

        def texts(self) -> list[str]:
            return [r.text or r.caption for r in self.rows()]

    w = World()
    w.engine, w.settings, w.url = engine, settings, url
    return w
