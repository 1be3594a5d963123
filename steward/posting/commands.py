"""Posting's Telegram commands: the /post dialog, /posts, /pause_posting and /resume_posting.

Handlers parse, call the Poster (in a thread: it blocks) and reply; the texts come from the pure
render functions below, which escape every post and error.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from telegram import LinkPreviewOptions, Update
from telegram.ext import ContextTypes

from steward.features import Command, Services
from steward.posting import manual, store
from steward.posting.publishers import QUEUED
from steward.posting.wiring import DRY_RUN_HINT
from steward.telegram.formatting import esc, link
from steward.telegram.store import outbox
from steward.timeutil import local

if TYPE_CHECKING:
    from steward.posting.poster import Poster

POST_DIALOG_VERSION = 1
CHOICES = ["Post", "Another", "Cancel"]
SHOWN_CHARS = 120  # of each post in /posts
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
ICONS = {"sent": "✅", "pending": "⏳", "failed": "❌", "skipped": "⏭", "blocked": "⏸"}


def channel_name(channel: str, telegram_chat: str | None) -> str:
    if channel == "telegram":
        return f"Telegram {telegram_chat}" if telegram_chat else "Telegram"
    return {"x": "X", "dry-run": "dry run", "mastodon": "Mastodon", "bluesky": "Bluesky"}.get(
        channel, channel
    )


def channel_link(telegram_chat: str | None) -> str | None:
    """A channel's public page; a numeric chat id has none."""
    if telegram_chat and telegram_chat.startswith("@"):
        return f"https://t.me/{telegram_chat[1:]}"
    return None


def render_draft(text: str, channels: Sequence[str], telegram_chat: str | None) -> str:
    where = " and ".join(channel_name(c, telegram_chat) for c in channels)
    lines = [f"<b>Draft</b> for {esc(where)}:", "", esc(text)]
    if list(channels) == ["dry-run"]:
        lines += ["", f"<i>{esc(DRY_RUN_HINT)}; Post only logs it.</i>"]
    return "\n".join(lines)


def render_outcomes(outcomes: Sequence[dict], telegram_chat: str | None) -> str:
    """Where a post went, one line per channel, with links."""
    lines = []
    for o in outcomes:
        name = esc(channel_name(o["channel"], telegram_chat))
        icon = ICONS.get(o["state"], "•")
        if o["state"] != "sent":
            lines.append(f"{icon} {name}: {esc(o.get('error') or o['state'])}")
        elif o["channel"] == "dry-run":
            lines.append(f"📝 {name}: only logged ({esc(DRY_RUN_HINT)})")
        elif o.get("url"):
            lines.append(f"{icon} {name}: {link(o['url'], 'posted')}")
        elif o["channel"] == "telegram":
            page = channel_link(telegram_chat)
            shown = link(page, "queued for the channel") if page else "queued for the channel"
            lines.append(f"{icon} {name}: {shown}")
        else:
            lines.append(f"{icon} {name}: posted")
    return "\n".join(lines) or "Nothing was posted: no channel is configured."


def render_posts(
    posts: Sequence[store.Post],
    tz: dt.tzinfo,
    telegram_chat: str | None,
    deliveries: dict[int, Any] | None = None,
) -> str:
    """The last posts; a channel post shows how its outbox row fared (`deliveries` by post id:
    rows with state, message_id and reason)."""
    if not posts:
        return "No posts yet. The first comes with the next tick, or now with /post."
    lines = [f"<b>Last {len(posts)} posts</b>"]
    for p in posts:
        text = p.text if len(p.text) <= SHOWN_CHARS else p.text[: SHOWN_CHARS - 1] + "…"
        when = local(p.sent_at or p.created_at, tz)
        where = esc(channel_name(p.channel, telegram_chat))
        state, url, error = p.state, p.url, p.error
        delivery = (deliveries or {}).get(p.id)
        if delivery is not None:  # handed to the outbox: it tells whether Telegram took it
            state = {"sent": "sent", "failed": "failed"}.get(delivery.state, "pending")
            page = channel_link(telegram_chat)
            if page and delivery.message_id:
                url = f"{page}/{delivery.message_id}"
            error = delivery.reason if state == "failed" else "queued for the channel"
        line = f"{ICONS.get(state, '•')} {esc(when)} · {where} · {esc(text)}"
        if url:
            line += f" · {link(url, 'link')}"
        elif error and state != "sent":
            line += f" · <i>{esc(error)}</i>"
        lines.append(line)
    return "\n".join(lines)


QUEUE_SHOWN = 5  # next planned ticks in /queue


def render_queue(times: Sequence[dt.datetime], per_tick: int, where: str, tz, note: str) -> str:
    """The next planned ticks, in the owner's time zone."""
    if not times:
        return "No post is planned: the posting job is not scheduled."
    lines = [f"<b>Next posts</b> ({per_tick} each, to {esc(where)}):"]
    lines += [f"• {esc(local(t, tz))}" for t in times]
    if note:
        lines.append(f"<i>{esc(note)}</i>")
    return "\n".join(lines)


def upcoming(poster: Poster, n: int = QUEUE_SHOWN) -> list[dt.datetime]:
    """When the next `n` ticks post: from the plan (POST_AT/POST_JITTER) or the scheduler."""
    plan = poster.schedule
    if plan.planned_here:
        return plan.upcoming(poster.clock(), n)
    first = poster.next_runs().get(store.TICK_JOB)
    return [first + plan.interval * i for i in range(n)] if first else []


def post_dialog(poster: Poster):
    """/post: show a draft; Post publishes it, Another makes a new one, Cancel ends."""
    chat = poster.settings.post_telegram_chat

    async def post(d) -> None:
        while True:
            # Composing reads random numbers and the store: once, so a replay gets the same draft.
            draft = await d.once(asyncio.to_thread, manual.draft, poster)
            if "error" in draft:
                await d.say(f"I could not make a post: {esc(draft['error'])}")
                return
            choice = await d.ask(
                render_draft(draft["text"], poster.channels, chat), choices=CHOICES
            )
            if choice == "Another":
                continue
            if choice == "Cancel":
                await d.say("Cancelled; nothing was posted.")
                return
            outcomes = await d.once(asyncio.to_thread, manual.publish_now, poster, draft["text"])
            await d.say(render_outcomes(outcomes, chat))
            return

    return post


def build(poster: Poster, services: Services) -> list[Command]:
    chat = poster.settings.post_telegram_chat

    async def post(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        user = update.effective_user.id if update.effective_user else 0
        started = await services.dialogs.start(
            "post", update.effective_chat.id, user, context.args or []
        )
        if not started:
            await update.effective_message.reply_text("Finish the conversation above first.")

    async def posts(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        found, deliveries = await asyncio.to_thread(_recent, poster)
        await update.effective_message.reply_html(
            render_posts(found, poster.settings.tz, chat, deliveries),
            link_preview_options=NO_PREVIEW,
        )

    async def pause(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await asyncio.to_thread(poster.set_paused, _who(update))
        await update.effective_message.reply_text(
            "⏸ Posting paused: ticks are skipped until /resume_posting "
            "(this holds across restarts). /post still works."
        )

    async def resume(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        was = await asyncio.to_thread(poster.paused)
        await asyncio.to_thread(poster.set_paused, None)
        await update.effective_message.reply_text(
            "▶️ Posting resumed: the next tick posts." if was else "Posting was not paused."
        )

    async def queue(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        times = await asyncio.to_thread(upcoming, poster)
        paused, blocked = await asyncio.to_thread(lambda: (poster.paused(), poster.blocked()))
        notes = [f"paused by {paused.get('by')}: /resume_posting" if paused else ""]
        notes += [reason for reason in blocked.values()]
        where = " and ".join(channel_name(c, chat) for c in poster.channels)
        await update.effective_message.reply_html(
            render_queue(
                times,
                poster.settings.tweets_per_tick,
                where,
                poster.settings.tz,
                "; ".join(n for n in notes if n),
            )
        )

    return [
        Command("post", "compose a post, see it, then post it or try another", post),
        Command("queue", "when the next posts go out", queue),
        Command("posts", "the last ten posts with links", posts),
        Command("pause_posting", "skip posting ticks until /resume_posting", pause),
        Command("resume_posting", "post on schedule again", resume),
    ]


def _recent(poster: Poster) -> tuple[list[store.Post], dict[int, Any]]:
    """The last ten posts, and the outbox rows of those handed to the outbox, by post id."""
    with poster.engine.connect() as conn:
        posts = store.recent(conn, 10)
        queued = {
            int(p.remote_id.removeprefix(QUEUED)): p.id
            for p in posts
            if p.remote_id and p.remote_id.startswith(QUEUED)
        }
        query = sa.select(outbox.c.id, outbox.c.state, outbox.c.message_id, outbox.c.reason)
        rows = conn.execute(query.where(outbox.c.id.in_(list(queued)))).all() if queued else []
    return posts, {queued[r.id]: r for r in rows}


def _who(update: Update) -> str:
    user = update.effective_user
    if user is None:
        return "someone"
    return f"@{user.username}" if user.username else str(user.id)
