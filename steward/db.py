"""The store: one SQLAlchemy engine on DATABASE_URL, the shared tables, and schema upgrades.

Feature folders declare their own tables on `metadata` (for example `steward/posting/store.py`)
and add an Alembic revision for them under `steward/migrations/versions/`.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

DEFAULT_DATABASE_URL = "sqlite:///steward.sqlite"
CONNECT_TIMEOUT = 10  # seconds to reach Postgres before a store call fails
POOL_TIMEOUT = 10  # seconds to wait for a free pooled connection
POOL_RECYCLE = 1800  # seconds: replace connections before proxies and PaaS routers cut them
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", ""}


class UTCDateTime(sa.TypeDecorator):
    """A timezone-aware UTC datetime on every backend (SQLite stores naive values)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use UTC-aware datetimes")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# Who ran which scheduled tick. The primary key is the claim: the first worker to insert
# (job, scheduled_at) runs the tick, every other worker sees the conflict and skips it.
job_claims = sa.Table(
    "job_claims",
    metadata,
    sa.Column("job", sa.String(100), primary_key=True),
    sa.Column("scheduled_at", UTCDateTime(), primary_key=True),
    sa.Column("claimed_by", sa.String(200), nullable=False),
    sa.Column("claimed_at", UTCDateTime(), nullable=False),
    # The claimer's sign of life while the tick runs, and when it ended. A claim whose heartbeat
    # stopped before it finished belongs to a worker that died: another worker runs it again.
    sa.Column("heartbeat_at", UTCDateTime(), nullable=True),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
)

# Each job's health: its interval and its last successful tick (read by /status, `python bot.py
# status` and the watchdog that tells the owner about a late job).
job_heartbeats = sa.Table(
    "job_heartbeats",
    metadata,
    sa.Column("job", sa.String(100), primary_key=True),
    sa.Column("every_seconds", sa.Float(), nullable=False),
    sa.Column("last_ok_at", UTCDateTime(), nullable=True),  # scheduled time of the last good tick
    sa.Column("last_failed_at", UTCDateTime(), nullable=True),
    sa.Column("last_failure", sa.Text(), nullable=True),  # one line
    sa.Column("late_told_at", UTCDateTime(), nullable=True),  # the owner heard it is late
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

# Workers alive: each running worker refreshes its row; `python bot.py status` reads them.
workers = sa.Table(
    "workers",
    metadata,
    sa.Column("worker", sa.String(200), primary_key=True),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("seen_at", UTCDateTime(), nullable=False),
)

# Small named values that must survive a restart: cursors, pause flags, counters.
state = sa.Table(
    "state",
    metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("value", sa.JSON(), nullable=True),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)


def normalize_url(raw: str) -> URL:
    """Turn a DATABASE_URL into the URL SQLAlchemy should use.

    Heroku sets `postgres://...`, a scheme SQLAlchemy 2 no longer accepts; it becomes
    `postgresql+psycopg://`. Remote Postgres gets `sslmode=require` unless the URL says otherwise.
    Raises ValueError with a sentence for anything that is not a usable URL.
    """
    try:
        url = make_url(raw.strip())
    except sa.exc.ArgumentError:
        raise ValueError("is not a database URL") from None
    backend = url.get_backend_name()
    if backend in ("postgres", "postgresql"):
        url = url.set(drivername="postgresql+psycopg")
        if (url.host or "") not in LOCAL_HOSTS and "sslmode" not in url.query:
            url = url.update_query_dict({"sslmode": "require"})
    elif backend != "sqlite":
        raise ValueError(f"uses the unsupported backend {backend!r}")
    return url


def make_engine(url: str | URL, *, connect_timeout: int = CONNECT_TIMEOUT) -> Engine:
    """Create the engine; SQLite gets WAL and a busy timeout so the worker and clients share it.

    Postgres gets a connect timeout (unless the URL sets one: libpq waits forever by default,
    so a failover that swallows packets would hang a store call), a check of each pooled
    connection before use (a failover leaves the pool full of dead ones), TCP keepalives (a
    connection that died silently fails in about a minute instead of hanging), and a bounded
    wait for a pooled connection.
    """
    url = normalize_url(url) if isinstance(url, str) else url
    if url.get_backend_name() == "sqlite":
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(conn, _record):
            cur = conn.cursor()
            if url.database not in (None, "", ":memory:"):
                cur.execute("PRAGMA journal_mode=WAL")
                # In WAL mode NORMAL syncs at checkpoints instead of at every commit: a crash of
                # the process loses nothing, only a power loss can lose the last commits, and
                # each commit gets about five times cheaper (every outbox row and dialog answer
                # is one). https://www.sqlite.org/pragma.html#pragma_synchronous
                cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    connect_args = {
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
    }
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = connect_timeout
    return sa.create_engine(
        url,
        connect_args=connect_args,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        pool_timeout=POOL_TIMEOUT,
        pool_recycle=POOL_RECYCLE,
    )


def upsert(
    conn: Connection,
    table: sa.Table,
    keys: dict[str, Any],
    inserted: dict[str, Any] | None = None,
    *,
    only_if: sa.ColumnElement[bool] | None = None,
    **values: Any,
) -> bool:
    """Insert the row with primary key `keys`, or change `values` of the one already there;
    False when `only_if` left it alone.

    `inserted` holds values only a new row gets (when it was created, say); `only_if`, a
    condition on the row already there, leaves it alone when false (a cursor that only moves
    forward).

    One statement (`INSERT ... ON CONFLICT DO UPDATE` on SQLite and Postgres): the usual
    update-then-insert raises IntegrityError on Postgres when two workers write the first row
    at once (both find nothing to update, both insert).
    """
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(table).values(**keys, **(inserted or {}), **values)
    stmt = stmt.on_conflict_do_update(index_elements=list(keys), set_=values, where=only_if)
    # RETURNING rather than rowcount: psycopg reports no row count for an upsert.
    return conn.execute(stmt.returning(*(table.c[k] for k in keys))).first() is not None


def store_now(conn: Connection) -> dt.datetime:
    """The database's clock, for times several dynos compare (leases).

    Each dyno's wall clock may be off; Postgres' clock is the one they share. A SQLite file is
    only shared by processes on one machine, whose clock is the one they share.
    """
    if conn.dialect.name == "postgresql":
        return conn.scalar(sa.select(sa.func.now())).astimezone(dt.UTC)
    return utcnow()


def _alembic_config(engine: Engine):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to `revision` (`python bot.py migrate` and the release phase)."""
    from alembic import command

    command.upgrade(_alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    """The schema's revision as Alembic recorded it (None for an empty store).

    Read with one query rather than through Alembic: the worker checks this at every start,
    and importing Alembic (with Mako) costs a third of a second there.
    """
    version = sa.table("alembic_version", sa.column("version_num"))
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        return conn.scalar(sa.select(version.c.version_num).limit(1))


_REVISION = re.compile(r'^(down_revision|revision)\s*=\s*(?:"([^"]*)"|None)', re.M)


def head_revision() -> str:
    """The newest revision in migrations/versions, read from the revision files themselves
    (the same cost argument; tests/test_db.py checks it against Alembic's own answer)."""
    revisions, parents = set(), set()
    for path in (Path(__file__).parent / "migrations" / "versions").glob("*.py"):
        fields = {key: value for key, value in _REVISION.findall(path.read_text())}
        revisions.add(fields["revision"])
        if fields.get("down_revision"):
            parents.add(fields["down_revision"])
    (head,) = revisions - parents
    return head


def describe(engine: Engine) -> str:
    """The store as a person should see it: backend and place, never the password."""
    return engine.url.render_as_string(hide_password=True)
