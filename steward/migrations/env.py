"""Alembic environment: runs against the engine steward hands over in `config.attributes`."""

from alembic import context

from steward import db

# Importing the feature stores puts their tables on db.metadata for autogenerate.
from steward.features import import_stores

import_stores()

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=db.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
