"""Farm: a bot's remote post ids wide enough for a Bluesky at:// URI (as posting's, 0011).

Revision ID: 0013_farm_remote_ids
Revises: 0012_farm
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_farm_remote_ids"
down_revision = "0012_farm"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("farm_posts") as batch:
        batch.alter_column(
            "remote_id", existing_type=sa.String(64), type_=sa.String(300), existing_nullable=True
        )


def downgrade() -> None:
    with op.batch_alter_table("farm_posts") as batch:
        batch.alter_column(
            "remote_id", existing_type=sa.String(300), type_=sa.String(64), existing_nullable=True
        )
