"""Why posting cannot work, told to the owner once per reason, with the fix.

An unattended bot that stops posting must say so: out of words, a template too long for X, an
empty or unreadable reader timeline, X refusing the tokens. A tick that hits one of these
records a `Problem` in the `state` row `posting.problem` (a farm bot's own, prefixed: see
store.bot_key); the owner is told in the chat when the kind of problem changes (not at every
tick), in the same transaction as the row, and again when posting works again; a farm bot's
messages name it. /status shows the problem while it lasts.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from dataclasses import dataclass

from steward.posting import store
from steward.posting.compose import ComposeError
from steward.posting.reader import READER_FIX
from steward.posting.sources import SourceError
from steward.posting.wiring import CREDENTIALS, SHOWN
from steward.telegram.formatting import esc

log = logging.getLogger("steward.posting")

PROBLEM_KEY = "posting.problem"  # {"code", "reason", "fix", "since"} while posting is stuck

FIXES = {
    "no-words": "Give words: POST_WORDS, POST_FEED_URL or a reader timeline that has posts.",
    "too-long": "Shorten POST_TEMPLATE or the words (X counts at most 280 characters).",
    "template": "Fix the grammar in POST_TEMPLATE (a rule that expands itself forever?).",
    "exhausted": "Every text the template can make was posted: add words (POST_WORDS) or "
    "variety to POST_TEMPLATE.",
    "reader": READER_FIX,
    "source": "Check the word source named above (POST_WORDS, POST_FEED_URL).",
}
# A farm bot's are fixed with `bots edit`, not main's variables; the reader is everyone's.
FARM_FIXES = {
    "no-words": "Give it words: python bot.py bots edit {bot} --words ... (or --feed URL).",
    "too-long": "Shorten its template or words: python bot.py bots edit {bot} --template ... "
    "(X counts at most 280 characters).",
    "template": "Fix its template's grammar: python bot.py bots edit {bot} --template ...",
    "exhausted": "Every text its template can make was posted: add words (python bot.py bots "
    "edit {bot} --words ...) or variety to its template.",
    "source": "Check its word source: python bot.py bots show {bot}.",
}


@dataclass(frozen=True)
class Problem:
    code: str  # the kind: the owner hears again only when it changes
    reason: str
    fix: str

    def to_json(self, since: dt.datetime) -> dict:
        return {
            "code": self.code,
            "reason": self.reason,
            "fix": self.fix,
            "since": since.isoformat(),
        }


def from_error(exc: ComposeError | SourceError, channel: str | None = None) -> Problem:
    if isinstance(exc, SourceError):
        code = "reader" if "reader" in str(exc) else "source"
    else:
        code = exc.code
    where = f"{channel}: " if channel else ""
    return Problem(code, f"{where}{exc}", FIXES.get(code, FIXES["exhausted"]))


def reader_trouble(source) -> Problem | None:
    """A source that says the reader's timeline fails while kept words still serve. Main's
    timeline words come from the shared reader's store (reader.py), which tells the owner
    itself, so they carry no `problem`; a source of another kind still may."""
    found = [getattr(source, "problem", None), *getattr(source, "problems", [])]
    troubles = [p for p in found if p and "reader" in p]
    if not troubles:
        return None
    return Problem("reader", troubles[0], READER_FIX)


def for_bot(text: str, bot: str = store.MAIN) -> str:
    """An owner message as `bot` says it: main's as it always was; another bot's named after
    its leading sign ("⚠️ Bot <b>haiku</b>: ...")."""
    if bot == store.MAIN:
        return text
    sign, space, rest = text.partition(" ")
    if space and sign in ("⚠️", "✅"):
        return f"{sign} Bot <b>{esc(bot)}</b>: {rest}"
    return f"Bot <b>{esc(bot)}</b>: {text}"


def record(
    conn, outbox, problem: Problem | None, now: dt.datetime, *, bot: str = store.MAIN
) -> bool:
    """Store the tick's problem and, when its kind changed, the message that says so, in the
    caller's transaction. True when a message was queued (wake the outbox after the commit)."""
    key = store.bot_key(PROBLEM_KEY, bot)
    was = store.load_value(conn, key)
    if problem is not None and bot != store.MAIN and problem.code in FARM_FIXES:
        problem = dataclasses.replace(problem, fix=FARM_FIXES[problem.code].format(bot=bot))
    # The reader's own messages (reader.record) say when it breaks and when it reads again,
    # once for every writer: posting records a reader problem for /status but tells nothing.
    if problem is None:
        if not was:
            return False
        store.save_value(conn, key, None, now)
        if was.get("code") == "reader":
            return False
        outbox.notify_in(
            conn,
            for_bot("✅ Posting works again.", bot),
            key=store.bot_key(f"posting:problem:ok:{was.get('since')}", bot),
        )
        return True
    if was and was.get("code") == problem.code:
        return False  # told already; the reason's details may move, the kind did not
    value = problem.to_json(now)
    store.save_value(conn, key, value, now)
    if problem.code == "reader":
        return False
    outbox.notify_in(
        conn,
        for_bot(f"⚠️ Posting is stuck: {esc(problem.reason)}\nFix: {esc(problem.fix)}", bot),
        key=store.bot_key(f"posting:problem:{problem.code}:{value['since']}", bot),
        urgent=True,
    )
    return True


def status_line(value: dict | None) -> str | None:
    if not value:
        return None
    return f"⚠️ stuck since {value['since'][:16]}: {value['reason']} Fix: {value['fix']}"


def refused_channels(poster) -> list[str]:
    """Channels paused because they refused the credentials we still have (see `refused`)."""
    return [
        channel
        for channel, fingerprint in poster.parts.fingerprints.items()
        if poster.load(store.refused_key(channel)) == fingerprint
    ]


def refused(
    engine,
    outbox,
    channel: str,
    reason: str,
    fingerprints: dict,
    now: dt.datetime,
    *,
    bot: str = store.MAIN,
    fix: str | None = None,
) -> None:
    """Pause a channel whose credentials were refused, and say so, in one transaction. `fix`
    (HTML) says what must change; main's names its variables and auth_tool.py's command."""
    fingerprint = fingerprints.get(channel)
    if fix is None:
        names, tool = CREDENTIALS[channel]
        fix = (
            f"{esc(', '.join(names))} change (get new ones with "
            f"<code>python auth_tool.py {tool}</code>)"
        )
    log.error("%s Posting to %s is paused until the credentials change.", reason, channel)
    with engine.begin() as conn:
        store.save_value(conn, store.refused_key(channel, bot), fingerprint, now)
        outbox.notify_in(
            conn,
            for_bot(
                f"⚠️ {esc(reason)} Posting to {SHOWN[channel]} is paused until {fix}. "
                "Posts wait in the store and go out then.",
                bot,
            ),
            key=store.bot_key(f"posting:{channel}-refused:{fingerprint}", bot),
            urgent=True,
        )
    outbox.wake()
