"""Bots as rows: what a bot is, checking a new one, and the stats `bots show` and /bots print.

A bot is a template, a word source (its own words, a feed, or the shared reader's timeline when
neither is given), an interval, a number of posts per tick and the places it posts to. The bot
configured by the environment is `main`: it is posting's own, shown here and managed there.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from dataclasses import asdict, dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from steward.farm import leases
from steward.farm.store import bots, farm_cursors, farm_samples, farm_words

MAIN = "main"
UNIT_KIND = "bot"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_CHAT = re.compile(r"^(-?\d+|@[A-Za-z][A-Za-z0-9_]{3,})$")
NETWORKS = ("x", "telegram", "mastodon", "bluesky", "dry-run")
FIT_TRIES = 20  # renders with one-letter words to find a template's shortest text


class BotError(Exception):
    """Bad input or a missing bot; `str()` is one sentence for the terminal or a chat."""


@dataclass
class Bot:
    name: str
    template: str
    interval_min: int = 60
    per_tick: int = 1
    words: str | None = None
    feed_url: str | None = None
    targets: list[str] = field(default_factory=lambda: ["dry-run"])
    monthly_limit: int = 0
    paused: bool = False

    @property
    def reads_timeline(self) -> bool:
        """Draws from the shared reader's timeline (neither its own words nor a feed)."""
        return self.words is None and self.feed_url is None

    def spec(self) -> dict:
        return asdict(self)


@dataclass
class Stats:
    bot: Bot
    posts_today: int
    posts_month: int
    posts_total: int
    words_stored: int
    words_unused: int
    last_error: str | None
    last_error_at: dt.datetime | None
    next_post: dt.datetime | None
    secrets: list[str]


def check_name(name: str) -> str:
    if name == MAIN:
        raise BotError(
            "main is the bot configured by environment variables (POST_TEMPLATE, ...); "
            "pick another name"
        )
    if not _NAME.match(name):
        raise BotError(
            f"{name!r} is not a bot name: use 1-32 lowercase letters, digits, - or _, "
            "starting with a letter or digit"
        )
    return name


def parse_targets(raw: str | list[str]) -> list[str]:
    """ "x,telegram:@chan,mastodon" -> ["x", "telegram:@chan", "mastodon"], checked."""
    parts = raw if isinstance(raw, list) else [p.strip() for p in raw.split(",") if p.strip()]
    if not parts:
        raise BotError("--to names no network; use e.g. x,telegram:@channel,mastodon,bluesky")
    if not all(isinstance(p, str) for p in parts):
        raise BotError("targets must be names like x or telegram:@channel")
    out: list[str] = []
    for part in parts:
        network, _, chat = part.partition(":")
        if network not in NETWORKS:
            raise BotError(f"--to: {network!r} is not one of {', '.join(NETWORKS)}")
        if network == "telegram" and not _CHAT.match(chat):
            raise BotError("--to: telegram needs a channel, like telegram:@mychannel")
        if network != "telegram" and chat:
            raise BotError(f"--to: {network} takes no ':' part")
        if part in out:
            raise BotError(f"--to names {part} twice")
        out.append(part)
    return out


def validate(bot: Bot) -> Bot:
    from steward.posting.templates import TemplateError, parse_template

    check_name(bot.name)
    try:
        template = parse_template(bot.template)
    except TemplateError as exc:
        raise BotError(f"--template: {exc}") from None
    if not 1 <= bot.interval_min <= 7 * 24 * 60:
        raise BotError("--interval is minutes between ticks, from 1 to 10080")
    if not 1 <= bot.per_tick <= 50:
        raise BotError("--per-tick is posts per tick, from 1 to 50")
    if bot.words is not None and bot.feed_url is not None:
        raise BotError("give --words or --feed, not both")
    if bot.words is not None and not [w for w in re.split(r"[,\n]", bot.words) if w.strip()]:
        raise BotError("--words holds no word; separate words with commas")
    if bot.feed_url is not None and not re.match(r"^https?://\S+$", bot.feed_url):
        raise BotError("--feed must be an http(s) URL")
    if bot.monthly_limit < 0:
        raise BotError("--monthly-limit is a whole number, 0 for no cap")
    bot.targets = parse_targets(bot.targets)
    _check_fits(template, bot.targets)
    return bot


def _check_fits(template, targets: list[str]) -> None:
    """A template whose shortest texts (one-letter words) are too long for a target can never
    post there: refuse it now rather than at every tick (a bot's post goes to all its targets)."""
    from steward.posting.templates import TemplateError, WordPicker
    from steward.posting.textcount import fits, x_length

    networks = [t.partition(":")[0] for t in targets if t != "dry-run"]
    rng, picker, shortest = random.Random(0), WordPicker(["a"]), None
    for _ in range(FIT_TRIES):
        try:
            text = template.render(picker, rng).strip()
        except TemplateError:
            continue
        if all(fits(text, network) for network in networks):
            return
        if shortest is None or x_length(text) < x_length(shortest):
            shortest = text
    if shortest is not None:
        too_long = [n for n in networks if not fits(shortest, n)]
        raise BotError(
            f"--template makes texts of at least {x_length(shortest)} characters even with "
            f"one-letter words, too long for {' and '.join(too_long)}"
        )


def _bot(row) -> Bot:
    return Bot(
        row.name,
        row.template,
        row.interval_min,
        row.per_tick,
        row.words,
        row.feed_url,
        list(row.targets),
        row.monthly_limit,
        row.paused,
    )


def get(conn: Connection, name: str) -> Bot:
    row = conn.execute(sa.select(bots).where(bots.c.name == name)).first()
    if row is None:
        if name == MAIN:
            raise BotError("main is configured by environment variables: `python bot.py config`")
        raise BotError(f"there is no bot named {name!r}; `python bot.py bots list` shows them")
    return _bot(row)


def all_bots(conn: Connection) -> list[Bot]:
    return [_bot(r) for r in conn.execute(sa.select(bots).order_by(bots.c.name))]


def add(conn: Connection, bot: Bot, now: dt.datetime, *, replace: bool = False) -> None:
    validate(bot)
    exists = conn.scalar(sa.select(bots.c.name).where(bots.c.name == bot.name))
    values = bot.spec()
    if exists and not replace:
        raise BotError(f"a bot named {bot.name!r} exists; remove it first or pick another name")
    if exists:
        conn.execute(sa.update(bots).where(bots.c.name == bot.name).values(**values))
    else:
        conn.execute(sa.insert(bots).values(**values, created_at=now))
    leases.ensure(conn, UNIT_KIND, bot.name, now)
    if conn.scalar(sa.select(farm_cursors.c.bot).where(farm_cursors.c.bot == bot.name)) is None:
        # A new writer starts at the reader's newest word: what came before is others' past.
        newest = conn.scalar(sa.select(sa.func.max(farm_words.c.id))) or 0
        conn.execute(sa.insert(farm_cursors).values(bot=bot.name, word_id=newest))


def edit(conn: Connection, name: str, changes: dict, now: dt.datetime) -> list[str]:
    """Change some of a bot's settings (Bot field -> new value), checked as `add` checks a new
    bot; its posts, dedupe, cursor and tokens stay. Returns one line per setting changed.

    A new interval moves the next tick onto the new grid from the last one (last due + new
    interval; at once if that is past), unless the tick is running now: it then finishes on the
    old grid and the ticks after it follow the new interval.
    """
    old = get(conn, name)
    new = validate(Bot(**(old.spec() | changes)))
    lines = [_changed(field, before, after) for field, before, after in _diff(old, new)]
    if not lines:
        return []
    values = new.spec()
    values.pop("paused")  # pause and resume are their own commands
    conn.execute(sa.update(bots).where(bots.c.name == name).values(**values))
    if new.interval_min != old.interval_min:
        due = leases.due_at(conn, UNIT_KIND, name)
        if due is not None:
            last = due - dt.timedelta(minutes=old.interval_min)
            leases.reschedule(
                conn, UNIT_KIND, name, last + dt.timedelta(minutes=new.interval_min), now=now
            )
    if new.reads_timeline and not old.reads_timeline:
        # Like a new writer, it starts at the reader's newest word: the timeline's past is not
        # a backlog it owes.
        newest = conn.scalar(sa.select(sa.func.max(farm_words.c.id))) or 0
        conn.execute(
            sa.update(farm_cursors).where(farm_cursors.c.bot == name).values(word_id=newest)
        )
    return lines


_SHOWN = {
    "template": "template",
    "interval_min": "interval (min)",
    "per_tick": "posts per tick",
    "targets": "targets",
    "monthly_limit": "monthly limit",
}


def _source(bot: Bot) -> str:
    if bot.words is not None:
        return f"its own words ({bot.words})"
    if bot.feed_url is not None:
        return f"the feed {bot.feed_url}"
    return "the shared reader's timeline"


def _diff(old: Bot, new: Bot) -> list[tuple[str, object, object]]:
    out = [
        (field, getattr(old, field), getattr(new, field))
        for field in _SHOWN
        if getattr(old, field) != getattr(new, field)
    ]
    if _source(old) != _source(new):
        out.append(("words", _source(old), _source(new)))
    return out


def _changed(field: str, before, after) -> str:
    if field == "targets":
        before, after = ", ".join(before), ", ".join(after)
    if field == "monthly_limit":
        before, after = (v or "no cap" for v in (before, after))
    return f"{_SHOWN.get(field, field)}: {before} -> {after}"


def set_paused(conn: Connection, name: str, paused: bool, now: dt.datetime) -> bool:
    """Returns False when the bot already was in that state."""
    bot = get(conn, name)
    if bot.paused == paused:
        return False
    conn.execute(sa.update(bots).where(bots.c.name == name).values(paused=paused))
    if not paused:
        leases.reschedule(conn, UNIT_KIND, name, now)  # resume posts at the next poll
    return True


def remove(conn: Connection, name: str) -> None:
    from steward.farm import secrets

    get(conn, name)
    conn.execute(sa.delete(bots).where(bots.c.name == name))
    conn.execute(sa.delete(farm_cursors).where(farm_cursors.c.bot == name))
    conn.execute(sa.delete(farm_samples).where(farm_samples.c.bot == name))
    secrets.drop(conn, name)
    leases.remove(conn, UNIT_KIND, name)
    # Its posts stay: they are the record of what went out (and keep a re-added bot from
    # repeating itself). Its posting state goes (a problem, a refusal, a pause held), so a bot
    # added again under the name starts clean.
    from steward.posting.store import forget_bot

    forget_bot(conn, name)


def record_error(conn: Connection, name: str, error: str | None, now: dt.datetime) -> None:
    values = {"last_error": error, "last_error_at": now if error else None}
    conn.execute(sa.update(bots).where(bots.c.name == name).values(**values))


def word_counts(conn: Connection, name: str) -> tuple[int, int]:
    """(words the reader stored, words this bot has not drawn yet)."""
    stored = conn.scalar(sa.select(sa.func.count()).select_from(farm_words)) or 0
    cursor = conn.scalar(sa.select(farm_cursors.c.word_id).where(farm_cursors.c.bot == name)) or 0
    unused = conn.scalar(sa.select(sa.func.count()).where(farm_words.c.id > cursor)) or 0
    return int(stored), int(unused)


def stats(conn: Connection, name: str, now: dt.datetime) -> Stats:
    from steward.farm import secrets

    bot = get(conn, name)
    row = conn.execute(sa.select(bots).where(bots.c.name == name)).first()
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    from steward.posting.store import posts

    sent = sa.and_(posts.c.bot == name, posts.c.state == "sent")

    def count(*where) -> int:
        return int(conn.scalar(sa.select(sa.func.count()).where(sent, *where)) or 0)

    stored, unused = word_counts(conn, name)
    return Stats(
        bot,
        count(posts.c.sent_at >= day),
        count(posts.c.sent_at >= month),
        count(),
        stored,
        unused,
        row.last_error,
        row.last_error_at,
        None if bot.paused else leases.due_at(conn, UNIT_KIND, name),
        secrets.names(conn, name),
    )


def failing(conn: Connection) -> list[str]:
    """The running bots whose last tick failed, by name."""
    query = sa.select(bots.c.name).where(bots.c.last_error.is_not(None), bots.c.paused.is_(False))
    return list(conn.scalars(query.order_by(bots.c.name)))


def last_error(conn: Connection, name: str) -> str | None:
    return conn.scalar(sa.select(bots.c.last_error).where(bots.c.name == name))
