"""Old settled messages are forgotten; pending ones never are."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from steward.telegram import store
from steward.telegram.outbox import Outbox


def test_prune_forgets_settled_rows_older_than_the_cutoff_and_keeps_pending_ones(engine):
    now = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
    old = Outbox(engine, "42", clock=lambda: now - dt.timedelta(days=40))
    sent_id, waiting_id = old.notify("old and sent"), old.notify("old but never sent")
    recent_id = Outbox(engine, "42", clock=lambda: now).notify("recent")
    with engine.begin() as conn:
        conn.execute(
            store.outbox.update()
            .where(store.outbox.c.id.in_([sent_id, recent_id]))
            .values(state=store.SENT)
        )
    assert Outbox(engine, "42", clock=lambda: now).prune(dt.timedelta(days=30)) == 1
    with engine.connect() as conn:
        left = set(conn.scalars(sa.select(store.outbox.c.id)))
    assert left == {waiting_id, recent_id}
