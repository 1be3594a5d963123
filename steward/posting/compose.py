"""Making a new post: render the template, keep what fits every channel and was never posted.

A Composer lives for one tick: it reads the word source once, then renders candidates in batches
and asks the store about a whole batch in one indexed query; the new ones wait for the next
`compose()` calls. So a store of a hundred thousand posts costs no memory here, and a tick of
many posts one round trip per batch. The waiting texts are only valid while this composer is the
one posting (ticks are claimed by one worker), which is why a Composer lasts one tick. A text too
long for a channel is thrown away and another rendered (never cut mid-word). After `tries`
renders without a new text it gives up with ComposeError.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from sqlalchemy.engine import Engine

from steward.posting import store
from steward.posting.sources import WordSource
from steward.posting.templates import Template, TemplateError, WordPicker
from steward.posting.textcount import fits

TRIES = 50
# Texts rendered and checked against the store together: one query serves several posts.
BATCH = 16
# What counts as "posted before": anything published for real. A dry run's texts count only for
# later dry runs, so what a preview showed can still be published.
REAL_CHANNELS = ("x", "telegram", "mastodon", "bluesky")


class ComposeError(Exception):
    """No new post could be made; `str()` is one sentence for the log or a chat. `code` says
    which kind of failure ("no-words", "too-long", "template", "exhausted", "busy"), so that
    the owner is told again only when the kind changes."""

    def __init__(self, reason: str, code: str = "exhausted") -> None:
        super().__init__(reason)
        self.code = code


class Composer:
    def __init__(
        self,
        template: Template,
        source: WordSource,
        engine: Engine,
        rng: random.Random | None = None,
        *,
        tries: int = TRIES,
        bot: str = store.MAIN,
        limits: dict[str, int] | None = None,
    ) -> None:
        self.template = template
        self.source = source
        self.engine = engine
        self.rng = rng or random.Random()
        self.tries = tries
        self.bot = bot  # whose posts count as "posted before": each bot has its own
        self.limits = limits or {}  # channel -> its account's own length limit, where it has one
        self._picker: WordPicker | None = None
        self._taken: set[str] = set()  # hashes handed out by this composer, not yet recorded
        # Checked texts not handed out yet, per channel list (what fits X may not fit elsewhere).
        self._ready: dict[tuple[str, ...], list[tuple[str, str]]] = {}

    def picker(self) -> WordPicker:
        """The words for this tick, read from the source on first use."""
        if self._picker is None:
            words = self.source.words() if self.template.needs_words else []
            self._picker = WordPicker(words)
        return self._picker

    def compose(self, channels: Sequence[str]) -> str:
        """A text that fits every channel in `channels` and was never posted before."""
        picker = self.picker()
        if self.template.needs_words and not len(picker):
            raise ComposeError(
                "the word source gave no words, so the template cannot be filled", "no-words"
            )
        key = tuple(channels)
        ready = self._ready.setdefault(key, [])
        tried = too_long = broken = 0
        failure = ""
        with self.engine.connect() as conn:
            while not ready and tried < self.tries:
                candidates: dict[str, str] = {}
                while len(candidates) < BATCH and tried < self.tries:
                    tried += 1
                    try:
                        text = self.template.render(picker, self.rng).strip()
                    except TemplateError as exc:  # runaway recursion in a grammar, this time
                        failure = str(exc)
                        broken += 1
                        continue
                    if not text:
                        continue
                    if not all(fits(text, c, self.limits.get(c)) for c in channels):
                        too_long += 1
                        continue
                    digest = store.text_hash(text)
                    if digest not in self._taken:
                        candidates.setdefault(digest, text)
                if candidates:
                    against = set(channels) | set(REAL_CHANNELS)
                    used = store.used_hashes(conn, candidates, against, bot=self.bot)
                    ready += [(d, t) for d, t in candidates.items() if d not in used]
        if ready:
            digest, text = ready.pop(0)
            self._taken.add(digest)
            # The other waiting texts must stay unique against this one on every channel list.
            for other in self._ready.values():
                other[:] = [(d, t) for d, t in other if d != digest]
            return text
        if too_long and too_long == tried:
            raise ComposeError(
                f"could not make a post that fits {' and '.join(channels)} after {tried} tries:"
                " every text was too long; shorten the template or the words",
                "too-long",
            )
        if broken == tried:
            reason = f"could not make a post after {tried} tries: the template {failure}"
            raise ComposeError(reason, "template")
        raise ComposeError(
            f"could not make a new post after {tried} tries: "
            "the template and words may be exhausted"
        )
