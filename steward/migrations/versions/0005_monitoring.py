"""Monitoring: raw check samples, their hourly rollups and one alert state per check.

Revision ID: 0005_monitoring
Revises: 0004_training
"""

import sqlalchemy as sa
from alembic import op

from steward.db import UTCDateTime

revision = "0005_monitoring"
down_revision = "0004_training"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitoring_samples",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("time", UTCDateTime(), nullable=False),
        sa.Column("check", sa.String(64), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_monitoring_samples"),
    )
    op.create_index("ix_monitoring_samples_check_time", "monitoring_samples", ["check", "time"])
    op.create_index("ix_monitoring_samples_time", "monitoring_samples", ["time"])
    op.create_table(
        "monitoring_rollups",
        sa.Column("check", sa.String(64), nullable=False),
        sa.Column("hour", UTCDateTime(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("bad", sa.Integer(), nullable=False),
        sa.Column("min", sa.Float(), nullable=True),
        sa.Column("mean", sa.Float(), nullable=True),
        sa.Column("max", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("check", "hour", name="pk_monitoring_rollups"),
    )
    op.create_table(
        "monitoring_alerts",
        sa.Column("check", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("bad_streak", sa.Integer(), nullable=False),
        sa.Column("ok_streak", sa.Integer(), nullable=False),
        sa.Column("unknown_streak", sa.Integer(), nullable=False),
        sa.Column("streak_since", UTCDateTime(), nullable=True),
        sa.Column("band", sa.String(8), nullable=True),
        sa.Column("since", UTCDateTime(), nullable=True),
        sa.Column("last_notified_at", UTCDateTime(), nullable=True),
        sa.Column("alert_key", sa.String(200), nullable=True),
        sa.Column("muted_until", UTCDateTime(), nullable=True),
        sa.Column("last_status", sa.String(8), nullable=True),
        sa.Column("last_value", sa.Float(), nullable=True),
        sa.Column("last_at", UTCDateTime(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("check", name="pk_monitoring_alerts"),
    )


def downgrade() -> None:
    op.drop_table("monitoring_alerts")
    op.drop_table("monitoring_rollups")
    op.drop_index("ix_monitoring_samples_time", "monitoring_samples")
    op.drop_index("ix_monitoring_samples_check_time", "monitoring_samples")
    op.drop_table("monitoring_samples")
