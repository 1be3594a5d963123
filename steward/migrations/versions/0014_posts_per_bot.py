"""Posts per bot: the farm's bots post through posting's own table, each row naming its bot.

`posts.bot` ('main' for every row made so far), unique `(bot, text_hash, channel)` (dedupe is per
bot), an index for a bot's monthly count per channel, channels wide enough for a farm target
("telegram:@channel"). Every `farm_posts` row moves into `posts` and `farm_posts` is dropped. A
moved row counts as attempted once: the farm treated X's "duplicate" for a pending post as proof
that it went out, and posting does so after an attempt of ours. Pending rows keep no claim, so
their bot's next tick publishes them.

Downgrade is honest and loses nothing a 0013 store can hold: `farm_posts` is made again and
every row of a bot other than main moves back into it, its `slot` numbered by id within its
bot, tick and channel (`posts` does not keep slots; the numbers only need to be unique). A farm
row without a tick (0013 requires one) takes its creation time.

Revision ID: 0014_posts_per_bot
Revises: 0013_farm_remote_ids
"""

import sqlalchemy as sa
from alembic import op

from steward.db import UTCDateTime

revision = "0014_posts_per_bot"
down_revision = "0013_farm_remote_ids"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
_MOVED = ("bot", "text", "text_hash", "channel", "state", "remote_id", "error")
_TIMES = ("created_at", "sent_at", "tick")


def _posts(*extra: sa.Column) -> sa.Table:
    return sa.table(
        "posts",
        *(sa.column(c) for c in _MOVED),
        *(sa.column(c, UTCDateTime()) for c in _TIMES),
        sa.column("id"),
        *extra,
    )


def _farm_posts() -> sa.Table:
    return sa.table(
        "farm_posts",
        *(sa.column(c) for c in _MOVED),
        *(sa.column(c, UTCDateTime()) for c in _TIMES),
        sa.column("id"),
        sa.column("slot"),
    )


def upgrade() -> None:
    with op.batch_alter_table("posts") as batch:
        batch.add_column(sa.Column("bot", sa.String(64), nullable=False, server_default="main"))
        batch.alter_column(
            "channel", existing_type=sa.String(16), type_=sa.String(64), existing_nullable=False
        )
        batch.drop_constraint("uq_posts_text_hash_channel", type_="unique")
        batch.create_unique_constraint(
            "uq_posts_bot_text_hash_channel", ["bot", "text_hash", "channel"]
        )
        batch.drop_index("ix_posts_channel_created_at")
        batch.create_index("ix_posts_bot_channel_created_at", ["bot", "channel", "created_at"])
    farm, posts = _farm_posts(), _posts(sa.column("attempts"))
    columns = [*_MOVED, *_TIMES]
    moved = sa.select(*(farm.c[c] for c in columns), sa.literal(1)).order_by(farm.c.id)
    op.execute(sa.insert(posts).from_select([*columns, "attempts"], moved))
    op.drop_index("ix_farm_posts_bot_created_at", "farm_posts")
    op.drop_table("farm_posts")


def downgrade() -> None:
    op.create_table(
        "farm_posts",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("bot", sa.String(64), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("text_hash", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("remote_id", sa.String(300), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("tick", UTCDateTime(), nullable=False),
        sa.Column("slot", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_farm_posts"),
        sa.UniqueConstraint("bot", "text_hash", "channel", name="uq_farm_posts_bot_text"),
        sa.UniqueConstraint("bot", "tick", "slot", "channel", name="uq_farm_posts_bot_slot"),
    )
    op.create_index("ix_farm_posts_bot_created_at", "farm_posts", ["bot", "created_at"])
    conn = op.get_bind()
    posts, farm = _posts(), _farm_posts()
    rows = conn.execute(sa.select(posts).where(posts.c.bot != "main").order_by(posts.c.id)).all()
    slots: dict[tuple, int] = {}
    back = []
    for row in rows:
        tick = row.tick or row.created_at
        place = (row.bot, tick, row.channel)
        slots[place] = slots.get(place, -1) + 1
        values = {c: getattr(row, c) for c in (*_MOVED, "created_at", "sent_at")}
        back.append(values | {"tick": tick, "slot": slots[place]})
    if back:
        conn.execute(sa.insert(farm), back)
    conn.execute(sa.delete(posts).where(posts.c.bot != "main"))
    with op.batch_alter_table("posts") as batch:
        batch.drop_index("ix_posts_bot_channel_created_at")
        batch.create_index("ix_posts_channel_created_at", ["channel", "created_at"])
        batch.drop_constraint("uq_posts_bot_text_hash_channel", type_="unique")
        batch.create_unique_constraint("uq_posts_text_hash_channel", ["text_hash", "channel"])
        batch.alter_column(
            "channel", existing_type=sa.String(64), type_=sa.String(16), existing_nullable=False
        )
        batch.drop_column("bot")
