"""Posting: an in-flight claim with a lease on each post, and how often it was attempted;
remote ids wide enough for a Bluesky at:// URI.

Revision ID: 0011_posting
Revises: 0010_training
"""

import sqlalchemy as sa
from alembic import op

from steward.db import UTCDateTime

revision = "0011_posting"
down_revision = "0010_training"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("posts") as batch:
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("claimed_by", sa.String(200), nullable=True))
        batch.add_column(sa.Column("lease_until", UTCDateTime(), nullable=True))
        batch.alter_column(
            "remote_id", existing_type=sa.String(64), type_=sa.String(300), existing_nullable=True
        )


def downgrade() -> None:
    with op.batch_alter_table("posts") as batch:
        batch.alter_column(
            "remote_id", existing_type=sa.String(300), type_=sa.String(64), existing_nullable=True
        )
        batch.drop_column("lease_until")
        batch.drop_column("claimed_by")
        batch.drop_column("attempts")
