"""Core: tick heartbeats and finish times, each job's health, and the workers alive.

Revision ID: 0009_core_heartbeats
Revises: 0008_telegram_hardening
"""

import sqlalchemy as sa
from alembic import op

from steward.db import UTCDateTime

revision = "0009_core_heartbeats"
down_revision = "0008_telegram_hardening"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job_claims") as batch:
        batch.add_column(sa.Column("heartbeat_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("finished_at", UTCDateTime(), nullable=True))
    # Claims made before this revision: their ticks ran (or were settled by posting's recovery);
    # without a finish time they would all look abandoned and run again.
    op.execute("UPDATE job_claims SET finished_at = claimed_at, heartbeat_at = claimed_at")
    op.create_table(
        "job_heartbeats",
        sa.Column("job", sa.String(100), nullable=False),
        sa.Column("every_seconds", sa.Float(), nullable=False),
        sa.Column("last_ok_at", UTCDateTime(), nullable=True),
        sa.Column("last_failed_at", UTCDateTime(), nullable=True),
        sa.Column("last_failure", sa.Text(), nullable=True),
        sa.Column("late_told_at", UTCDateTime(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("job", name="pk_job_heartbeats"),
    )
    op.create_table(
        "workers",
        sa.Column("worker", sa.String(200), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("seen_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("worker", name="pk_workers"),
    )


def downgrade() -> None:
    op.drop_table("workers")
    op.drop_table("job_heartbeats")
    with op.batch_alter_table("job_claims") as batch:
        batch.drop_column("finished_at")
        batch.drop_column("heartbeat_at")
