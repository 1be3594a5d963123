"""`python bot.py post [--dry-run]`: one posting tick now, for cron and Heroku Scheduler users.

`--dry-run` prints what the next tick would post and records nothing. Without it the store is
brought up to date (SQLite; Postgres is migrated by the release phase), posts left pending by an
earlier run are settled, an unfinished tick is finished, the reader's timeline is read if its
interval has come, one tick runs, and the outbox is drained (a Telegram channel's posts and any
alert), so no worker needs to be running.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from steward import db
from steward.config import Settings
from steward.telegram.outbox import Outbox

log = logging.getLogger("steward.posting")
FLUSH_TIMEOUT = 30.0  # seconds to deliver the outbox before leaving it to the worker


def run_post(settings: Settings, *, dry_run: bool) -> int:
    """Exit status: 0 when the tick's posts went out (or were shown), 1 with a sentence if not.
    A bad posting setting raises ConfigError (the CLI prints it and exits 78)."""
    from steward.posting.poster import Poster

    engine = db.make_engine(settings.database)
    try:
        outbox = Outbox(engine, settings.telegram_chat_id)
        # Settings are checked before the store is touched: a typo must not wait on a migration.
        poster = Poster(settings, engine, outbox, db.utcnow)
        problem = _prepare(engine)
        if problem:
            return _fail(problem)
        if dry_run:
            return _preview(poster, settings.tweets_per_tick)
        if (paused := poster.paused()) is not None:
            print(f"Posting is paused (by {paused.get('by')}); /resume_posting ends it.")
            return 0
        poster.recover()
        _read_timeline(settings, engine, outbox)
        outcomes = poster.run_tick(db.utcnow(), want=settings.tweets_per_tick)
        left = asyncio.run(_drain(settings, engine, outbox)) if outbox.pending_count() else 0
        for o in outcomes:
            where = o.url or o.remote_id or o.channel
            print(f"{o.state}: {o.channel} post {o.post_id} ({where})" + _why(o.error))
        if left:
            print(f"{left} message(s) wait in the outbox for the worker to send.")
        sent = {o.post_id for o in outcomes if o.state == "sent"}
        if poster.problem or len(sent) < settings.tweets_per_tick * len(poster.channels):
            return _fail(poster.problem or f"only {len(sent)} post(s) went out; see above.")
        return 0
    finally:
        engine.dispose()


def _read_timeline(settings: Settings, engine, outbox: Outbox) -> None:
    """With no worker running, nobody else reads the reader's timeline: read it here when its
    unit is due (a running worker's read counts, so the interval still holds one read)."""
    import datetime as dt
    import os
    import socket

    from steward.posting import reader
    from steward.posting.wiring import reader_client

    client = reader_client(settings)
    if client is None:
        return
    reader.read_if_due(
        engine, client, outbox, owner=f"post:{socket.gethostname()}:{os.getpid()}",
        grab=settings.tweet_grab, every=dt.timedelta(minutes=settings.post_interval),
        now=db.utcnow(),
    )  # fmt: skip


def _prepare(engine) -> str | None:
    """Upgrade a SQLite store as the worker does; a Postgres one must be migrated on deploy."""
    current, head = db.current_revision(engine), db.head_revision()
    if current == head:
        return None
    if engine.dialect.name == "sqlite":
        log.info("upgrading the SQLite store from %s to %s", current or "empty", head)
        db.upgrade(engine)
        return None
    return (
        f"The database schema is at {current or 'nothing'} and the code needs {head}: "
        "run `python bot.py migrate` first."
    )


def _preview(poster, n: int) -> int:
    from steward.posting import manual
    from steward.posting.compose import ComposeError
    from steward.posting.sources import SourceError

    try:
        texts = manual.preview(poster, n)
    except (ComposeError, SourceError) as exc:
        return _fail(f"No post could be made: {exc}")
    where = (
        "nowhere (no X credentials or POST_TELEGRAM_CHAT)"
        if poster.dry_run
        else (" and ".join(poster.channels))
    )
    print(f"The next tick would post to {where}; nothing was published or recorded:")
    for i, text in enumerate(texts, 1):
        print(f"{i}. {text}")
    return 0


async def _drain(settings: Settings, engine, outbox: Outbox) -> int:
    """Deliver what is waiting in the outbox; returns how many messages are still waiting."""
    from steward.telegram.flood import FloodLimits
    from steward.telegram.sender import OutboxSender
    from steward.telegram.sinks import LogSink, TelegramSink

    bot = None
    if settings.telegram_token is not None:
        from telegram import Bot

        api = settings.telegram_api_url
        bot = Bot(
            settings.telegram_token.get_secret_value(),
            base_url=f"{api}/bot",
            base_file_url=f"{api}/file/bot",
        )
        await bot.initialize()
    limits = FloodLimits(
        per_chat_per_second=settings.telegram_rate_per_chat,
        group_per_minute=settings.telegram_rate_per_group,
        global_per_second=settings.telegram_rate_global,
    )
    sink = TelegramSink(bot) if bot is not None else LogSink()
    sender = OutboxSender(engine, sink, limits, outbox=outbox)
    await sender.start()
    try:
        await sender.flush(timeout=FLUSH_TIMEOUT)
    finally:
        await sender.stop(timeout=2.0)
        if bot is not None:
            await bot.shutdown()
    return await asyncio.to_thread(outbox.pending_count)


def _why(error: str | None) -> str:
    return f": {error}" if error else ""


def _fail(sentence: str) -> int:
    print(sentence, file=sys.stderr, flush=True)
    return 1
