"""Training: what a run's step counts (step or epoch), its tags, its metric alert rules, and
the latest sample of its machine (RAM, GPU).

Revision ID: 0010_training
Revises: 0009_core_heartbeats
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_training"
down_revision = "0009_core_heartbeats"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("step_unit", sa.String(16), nullable=True))
        batch.add_column(sa.Column("tags", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("alerts", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("system", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("system")
        batch.drop_column("alerts")
        batch.drop_column("tags")
        batch.drop_column("step_unit")
