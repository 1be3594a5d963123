"""The outbox's tables and their atomic state changes (claims, settling, the sender lease).

Tables: queued notifications, the sender lease, chat mutes, chat moves, refused strangers;
kept identical in shape to the Alembic revisions 0002_telegram and 0008_telegram_hardening.
Every change of a claimed row is conditional on the claim (`state = 'sending' AND claimed_by =
holder`), so a sender that lost its claim changes nothing.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from steward import db
from steward.db import UTCDateTime, metadata
from steward.telegram.sinks import DeliveryError, Outgoing, edit_for, messages_for

# Row states. pending -> sending -> sent | failed; held while the chat is muted; skipped when a
# newer edit of the same message replaced it, or when a held row was summed up at unmute.
PENDING, HELD, SENDING, SENT, FAILED, SKIPPED = (
    "pending",
    "held",
    "sending",
    "sent",
    "failed",
    "skipped",
)

# One notification (it may become several Telegram messages: long texts are split, a long
# caption's rest follows the photo; `parts_sent` records how far a send got).
outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    # Idempotency: the same key is stored, and so sent, once.
    sa.Column("key", sa.String(200), nullable=True, unique=True),
    sa.Column("chat_id", sa.String(100), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("text", sa.Text, nullable=True),
    sa.Column("photo", sa.LargeBinary, nullable=True),
    sa.Column("caption", sa.Text, nullable=True),
    sa.Column("document_name", sa.String(255), nullable=True),
    sa.Column("document", sa.LargeBinary, nullable=True),
    sa.Column("buttons", sa.JSON, nullable=True),
    sa.Column("reply_to", sa.String(200), nullable=True),
    sa.Column("edit", sa.String(200), nullable=True),
    sa.Column("urgent", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    # Not to be tried before this time (backoff after a transient error or a 429).
    sa.Column("not_before", UTCDateTime(), nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("parts_sent", sa.Integer, nullable=False, default=0),
    sa.Column("claimed_by", sa.String(200), nullable=True),
    sa.Column("claimed_at", UTCDateTime(), nullable=True),
    sa.Column("sent_at", UTCDateTime(), nullable=True),
    # Telegram's id of the (first) message sent: what replies and edits point at.
    sa.Column("message_id", sa.BigInteger, nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Index("ix_outbox_state_chat_id", "state", "chat_id", "id"),
)

# Who drains the outbox. One row; a sender holds it while `expires_at` is ahead and renews it.
outbox_lease = sa.Table(
    "outbox_lease",
    metadata,
    sa.Column("name", sa.String(50), primary_key=True),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
)

# Chats whose non-urgent notifications are held until `until` (or /unmute).
outbox_mutes = sa.Table(
    "outbox_mutes",
    metadata,
    sa.Column("chat_id", sa.String(100), primary_key=True),
    sa.Column("until", UTCDateTime(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

# A group that became a supergroup has a new id; later notifications go there.
outbox_chat_moves = sa.Table(
    "outbox_chat_moves",
    metadata,
    sa.Column("old_chat_id", sa.String(100), primary_key=True),
    sa.Column("new_chat_id", sa.String(100), nullable=False),
    sa.Column("moved_at", UTCDateTime(), nullable=False),
)

# When each stranger was last refused (steward/telegram/access.py): one refusal an hour each,
# remembered across restarts.
telegram_refusals = sa.Table(
    "telegram_refusals",
    metadata,
    sa.Column("user_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("refused_at", UTCDateTime(), nullable=False),
)


LEASE = "outbox"


def take_lease(engine: Engine, holder: str, ttl: float) -> bool:
    """Take or renew the sender lease for `ttl` seconds; False while another holder has it.

    Expiry is set and judged by the database's clock: the dynos' own clocks may disagree, and
    a dyno whose clock ran behind would otherwise look like a holder whose lease ran out.
    """
    lease = outbox_lease
    with engine.begin() as conn:
        now = db.store_now(conn)
        ours_or_lapsed = sa.or_(lease.c.holder == holder, lease.c.expires_at < now)
        expires = now + dt.timedelta(seconds=ttl)
        # One statement: two senders taking the first lease at once get one True.
        return db.upsert(
            conn, lease, {"name": LEASE}, holder=holder, expires_at=expires, only_if=ours_or_lapsed
        )


def release_lease(engine: Engine, holder: str) -> None:
    """Let the next sender take over at once (on a clean stop)."""
    with engine.begin() as conn:
        conn.execute(
            sa.update(outbox_lease)
            .where(outbox_lease.c.name == LEASE, outbox_lease.c.holder == holder)
            .values(expires_at=db.store_now(conn) - dt.timedelta(seconds=1))
        )


# -- a row's way: claimed by one sender, then settled by it --------------------------------


def heads(engine: Engine) -> list[tuple[int, str, str, dt.datetime | None]]:
    """Each chat's oldest undelivered row (id, chat, state, not_before): the one that goes next."""
    active = outbox.c.state.in_((PENDING, SENDING))
    firsts = sa.select(sa.func.min(outbox.c.id)).where(active).group_by(outbox.c.chat_id)
    query = sa.select(outbox.c.id, outbox.c.chat_id, outbox.c.state, outbox.c.not_before)
    with engine.connect() as conn:
        rows = conn.execute(query.where(outbox.c.id.in_(firsts)).order_by(outbox.c.id))
        return [tuple(r) for r in rows]


def claim(engine: Engine, ids: list[int], holder: str, now: dt.datetime) -> dict[int, sa.Row]:
    """Claim pending rows for `holder`; returns the rows it won (a row count of 1 each)."""
    won: dict[int, sa.Row] = {}
    with engine.begin() as conn:
        for row_id in ids:
            count = conn.execute(
                sa.update(outbox)
                .where(outbox.c.id == row_id, outbox.c.state == PENDING)
                .values(
                    state=SENDING,
                    claimed_by=holder,
                    claimed_at=now,
                    attempts=outbox.c.attempts + 1,
                )
            ).rowcount
            if count == 1:
                won[row_id] = conn.execute(sa.select(outbox).where(outbox.c.id == row_id)).one()
    return won


def plan_delivery(engine: Engine, row: sa.Row) -> list[Outgoing] | str:
    """The API calls for a row, or the reason it needs none. Raises DeliveryError."""
    if not row.chat_id:
        raise DeliveryError(True, "no chat to send to: set TELEGRAM_CHAT_ID")
    with engine.connect() as conn:
        if row.edit is None:
            reply_id = None
            if row.reply_to is not None:
                reply_id = conn.scalar(
                    sa.select(outbox.c.message_id).where(
                        outbox.c.key == row.reply_to,
                        outbox.c.state == SENT,
                        outbox.c.chat_id == row.chat_id,
                    )
                )
            return messages_for(row, reply_id) or "nothing visible to send"
        newer = conn.scalar(
            sa.select(sa.func.max(outbox.c.id)).where(
                outbox.c.edit == row.edit,
                outbox.c.id > row.id,
                outbox.c.state == PENDING,
            )
        )
        if newer is not None:
            return f"superseded by the newer edit #{newer}"
        target = conn.execute(
            sa.select(
                outbox.c.state,
                outbox.c.chat_id,
                outbox.c.message_id,
                sa.or_(outbox.c.photo.is_not(None), outbox.c.document.is_not(None)).label(
                    "has_file"
                ),
            ).where(outbox.c.key == row.edit)
        ).first()
    if target is None:
        raise DeliveryError(True, f"nothing was sent under the key {row.edit!r} to edit")
    if target.state in (PENDING, SENDING):
        raise DeliveryError(False, f"the message {row.edit!r} is not sent yet")
    if target.state != SENT or target.message_id is None:
        raise DeliveryError(True, f"the message {row.edit!r} was never sent ({target.state})")
    return [edit_for(row, target.chat_id, target.message_id, target.has_file)]


def update_claimed(engine: Engine, row_id: int, holder: str, **values) -> bool:
    """Change a row `holder` claimed; False if it is no longer theirs."""
    with engine.begin() as conn:
        return conn.execute(_claimed(row_id, holder).values(**values)).rowcount == 1


def _claimed(row_id: int, holder: str):
    return sa.update(outbox).where(
        outbox.c.id == row_id, outbox.c.state == SENDING, outbox.c.claimed_by == holder
    )


def recover(engine: Engine, keep: list[int]) -> int:
    """Put rows left in 'sending' (other than `keep`) back to pending; returns how many."""
    query = sa.update(outbox).where(outbox.c.state == SENDING)
    if keep:
        query = query.where(outbox.c.id.not_in(keep))
    with engine.begin() as conn:
        return conn.execute(query.values(state=PENDING, claimed_by=None)).rowcount


def move_chat(
    engine: Engine, row_id: int, holder: str, old: str, new: str, now: dt.datetime
) -> int:
    """Re-address a migrated chat's claimed row, waiting rows and mute; record the move.

    Returns how many rows now go to the new chat.
    """
    with engine.begin() as conn:
        conn.execute(_claimed(row_id, holder).values(state=PENDING, chat_id=new))
        moved = conn.execute(
            sa.update(outbox)
            .where(outbox.c.chat_id == old, outbox.c.state.in_((PENDING, HELD)))
            .values(chat_id=new)
        ).rowcount
        conn.execute(sa.delete(outbox_chat_moves).where(outbox_chat_moves.c.old_chat_id == old))
        conn.execute(
            sa.insert(outbox_chat_moves).values(old_chat_id=old, new_chat_id=new, moved_at=now)
        )
        conn.execute(
            sa.update(outbox_mutes).where(outbox_mutes.c.chat_id == old).values(chat_id=new)
        )
    return moved + 1
