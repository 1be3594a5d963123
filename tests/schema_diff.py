"""What Alembic's autogenerate finds between the migrated store and the declared tables."""

from __future__ import annotations

from steward import db


def migrated_schema_diff(store_url: str, **options) -> list:
    """Migrate an empty store at `store_url` to head and compare it with `db.metadata`;
    `options` go to Alembic's MigrationContext (include_name, compare_type, ...)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    engine = db.make_engine(store_url)
    try:
        db.upgrade(engine)
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn, opts=options), db.metadata)
    finally:
        engine.dispose()
