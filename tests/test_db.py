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
