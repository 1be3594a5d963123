"""The store: URL handling, migrations on empty SQLite and Postgres."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from steward import db
from tests.schema_diff import migrated_schema_diff


def test_it_rewrites_herokus_postgres_scheme_and_requires_ssl_for_remote_hosts():
    url = db.normalize_url("postgres://user:pw@ec2-1-2-3-4.compute.amazonaws.com:5432/d8x")
    assert url.drivername == "postgresql+psycopg"
    assert url.query["sslmode"] == "require"
    assert url.password == "pw" and url.database == "d8x"


def test_it_keeps_local_postgres_without_ssl_and_respects_an_explicit_sslmode():
    assert "sslmode" not in db.normalize_url("postgresql://postgres@127.0.0.1/test").query
    url = db.normalize_url("postgres://u@db.example.com/x?sslmode=disable")
    assert url.query["sslmode"] == "disable"


@pytest.mark.parametrize("bad", ["nonsense", "mysql://u@h/db", "://"])
def test_it_rejects_what_is_not_a_supported_database_url(bad):
    with pytest.raises(ValueError):
        db.normalize_url(bad)


def test_migrations_bring_an_empty_store_to_the_head(store_url):
    engine = db.make_engine(store_url)
    assert db.current_revision(engine) is None
    db.upgrade(engine)
    assert db.current_revision(engine) == db.head_revision()
    tables = set(sa.inspect(engine).get_table_names())
    assert {"job_claims", "state", "apscheduler_jobs", "alembic_version"} <= tables
    db.upgrade(engine)  # a second run changes nothing
    engine.dispose()


def test_every_declared_table_is_created_by_the_migrations(engine):
    from steward.features import import_stores

    import_stores()
    assert set(db.metadata.tables) <= set(sa.inspect(engine).get_table_names())


def test_times_come_back_utc_aware(engine):
    moment = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=3)))
    with engine.begin() as conn:
        conn.execute(db.state.insert().values(key="k", value={"a": 1}, updated_at=moment))
        row = conn.execute(sa.select(db.state)).one()
    assert row.updated_at == moment and row.updated_at.tzinfo is not None
    assert row.value == {"a": 1}


def test_the_head_revision_read_from_the_files_is_alembics():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(Path(db.__file__).parent / "migrations"))
    assert db.head_revision() == ScriptDirectory.from_config(config).get_current_head()


def test_the_models_and_the_migrations_describe_the_same_schema(store_url):
    """What the code declares is what the migrations build (autogenerate finds nothing)."""
    from steward.features import import_stores

    def ours(name, type_, parent_names) -> bool:
        # APScheduler's job table is made by migration 0001 but declared by APScheduler.
        table = name if type_ == "table" else parent_names.get("table_name")
        return table != "apscheduler_jobs"

    import_stores()
    assert migrated_schema_diff(store_url, include_name=ours) == []


def test_0014_moves_the_farms_posts_into_posts_with_their_bot_and_back(store_url):
    """A store at 0013 with main posts and farm_posts rows keeps every post, with its bot."""
    from alembic import command

    from steward.posting import store

    engine = db.make_engine(store_url)
    db.upgrade(engine, "0013_farm_remote_ids")
    at = dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.UTC)
    old_posts = sa.table(
        "posts", *(sa.column(c) for c in ("text", "text_hash", "channel", "state", "attempts")),
        sa.column("created_at", db.UTCDateTime()), sa.column("sent_at", db.UTCDateTime()),
    )  # fmt: skip
    farm_posts = sa.table(
        "farm_posts",
        *(sa.column(c) for c in ("bot", "text", "text_hash", "channel", "state", "slot")),
        *(sa.column(c) for c in ("remote_id", "error")),
        *(sa.column(c, db.UTCDateTime()) for c in ("tick", "created_at", "sent_at")),
    )
    same = {"text": "Owls at dusk.", "text_hash": store.text_hash("Owls at dusk.")}
    with engine.begin() as conn:
        conn.execute(
            sa.insert(old_posts),
            [same | {"channel": "x", "state": "sent", "attempts": 1, "created_at": at,
                     "sent_at": at}],
        )  # fmt: skip
        conn.execute(
            sa.insert(farm_posts),
            [
                same | {"bot": "poet", "channel": "x", "state": "sent", "slot": 0,
                        "remote_id": "1999", "tick": at, "created_at": at, "sent_at": at},
                {"bot": "poet", "text": "Bats.", "text_hash": store.text_hash("Bats."),
                 "channel": "telegram:@poems_channel", "state": "pending", "slot": 0,
                 "remote_id": None, "tick": at, "created_at": at, "sent_at": None},
            ],
        )  # fmt: skip
    db.upgrade(engine)
    assert "farm_posts" not in sa.inspect(engine).get_table_names()
    with engine.connect() as conn:
        moved = conn.execute(sa.select(store.posts).order_by(store.posts.c.id)).all()
        assert [(r.bot, r.text, r.channel, r.state) for r in moved] == [
            ("main", "Owls at dusk.", "x", "sent"),
            ("poet", "Owls at dusk.", "x", "sent"),
            ("poet", "Bats.", "telegram:@poems_channel", "pending"),
        ]
        assert moved[1].remote_id == "1999" and moved[1].tick == at
        assert (moved[2].claimed_by, moved[2].attempts) == (None, 1)
        [left] = store.pending(conn, bot="poet")
        assert left.text == "Bats." and store.pending(conn) == []
        assert store.is_used(conn, same["text_hash"], bot="main")
        assert not store.is_used(conn, store.text_hash("Bats."), bot="main")
    config = db._alembic_config(engine)
    command.downgrade(config, "0013_farm_remote_ids")
    with engine.connect() as conn:
        back = conn.execute(sa.select(farm_posts)).all()
        assert sorted((r.bot, r.channel, r.state, r.slot) for r in back) == [
            ("poet", "telegram:@poems_channel", "pending", 0), ("poet", "x", "sent", 0),
        ]  # fmt: skip
        assert conn.scalar(sa.select(sa.func.count()).select_from(old_posts)) == 1
    db.upgrade(engine)
    engine.dispose()
