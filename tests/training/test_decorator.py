"""@notify_when_done: a function's calls reported as runs."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from steward.training import notify_when_done, store
from tests.training.helpers import series


def rows(engine):
    with engine.connect() as conn:
        return conn.execute(sa.select(store.runs).order_by(store.runs.c.id)).all()


def test_the_decorator_reports_each_call_as_a_run_that_finishes_or_crashes(url, engine):
    @notify_when_done("nightly eval", database_url=url, tags=["cron"])
    def evaluate(fail: bool = False) -> dict:
        if fail:
            raise RuntimeError("the eval set is missing")
        return {"accuracy": 0.91, "note": "fine"}

    assert evaluate() == {"accuracy": 0.91, "note": "fine"}
    with pytest.raises(RuntimeError):
        evaluate(fail=True)
    done, crashed = rows(engine)
    assert (done.name, done.state, done.tags) == ("nightly eval", "finished", ["cron"])
    assert series(engine, done.id) == {"accuracy": ([0], [0.91])}
    assert crashed.state == "crashed" and crashed.error_message == "the eval set is missing"
