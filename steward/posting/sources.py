"""Where template words come from: a word list, an RSS/Atom feed, or the bundled list (the
reader's X timeline is reader.py's, shared with the farm); and the tokenizer that turns text
into words.

The tokenizer keeps words of three letters or more, drops URLs, @mentions, #hashtags, numbers
and English and Russian stop words, and lowercases. When `pymorphy3` is installed (the optional
`russian` extra) Russian words are kept only if they are nouns, in their dictionary form
("кошками" -> "кошка"), as the seed bot did; without it they are kept as they are.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import httpx

_STOP_TEXT = """
    about above after again against all also and any are aren because been before being below
    between both but can cannot could couldn did didn does doesn doing don down during each
    few for from further had hadn has hasn have haven having her here hers herself him himself
    his how into isn its itself just let more most mustn myself nor not now off once only other
    ought our ours ourselves out over own same shan she should shouldn some such than that the
    their theirs them themselves then there these they this those through too under until very
    was wasn were weren what when where which while who whom why will with won would wouldn you
    your yours yourself yourselves yes one two get got like via amp http https www com rt
    без более больше будет будто бы был была были было быть вам вас ведь весь вдруг во вот
    впрочем все всегда всего всех всю вы где где-то даже два для должно до его ее её ей ему если
    есть еще ещё же за здесь из из-за или им иногда их как какая какой когда конечно кто куда
    ли лучше между меня мне много может можно мой моя мы на над надо нас не него нее неё ней
    нельзя нет ни нибудь никогда ним них ничего но ну об однако он она они оно опять от перед
    по под после потом потому почти при про раз разве свою себе себя сейчас сказал сказала со
    совсем так такой там тебя тем теперь то тогда того тоже только том тот три тут ты уж уже
    хорошо хоть чего чей чем через что чтоб чтобы чуть эти этого этой этом этот эту это
"""
STOP_WORDS = frozenset(_STOP_TEXT.split())

_DROPPED = re.compile(r"https?://\S+|www\.\S+|\S+@\S+\.\w+|[@#＠＃]\w+")
_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")
_CYRILLIC = re.compile(r"[а-яё]")
_TAGS = re.compile(r"<[^>]+>")


class SourceError(Exception):
    """A word source that could not give words; `str()` is one sentence for the log or a chat."""


class WordSource(Protocol):
    def words(self) -> list[str]: ...


@functools.cache
def _morph() -> Any:
    """pymorphy3's analyzer when installed (loading its dictionary takes a moment, so once)."""
    try:
        import pymorphy3
    except ImportError:
        return None
    return pymorphy3.MorphAnalyzer()


def russian_nouns_available() -> bool:
    return _morph() is not None


def tokenize(text: str) -> list[str]:
    """The words of `text` worth putting in a post, in order, repeats included."""
    morph = None
    out = []
    for m in _WORD.finditer(_DROPPED.sub(" ", text)):
        word = m.group().lower().replace("’", "'")
        if len(word) < 3 or word in STOP_WORDS:
            continue
        if _CYRILLIC.search(word) and (morph := morph or _morph()):
            parse = morph.parse(word)[0]
            if parse.tag.POS != "NOUN":
                continue
            word = parse.normal_form
            if word in STOP_WORDS:
                continue
        out.append(word)
    return out


def unique(words: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(w for w in words if w))


class WordListSource:
    """POST_WORDS: words separated by commas or new lines, or the path of a file of them."""

    def __init__(self, spec: str) -> None:
        text = spec.strip()
        single = not re.search(r"[,\n]", text)
        path = Path(text).expanduser()
        if single and path.is_file():
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise SourceError(f"names the file {path}, which cannot be read ({exc})") from None
            # A file may carry comments, like the bundled list.
            text = "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
        elif single and re.search(r"[/\\]|\.(txt|csv|lst)$", text):
            raise SourceError(f"names the file {path}, which does not exist")
        self._words = unique(w.strip() for w in re.split(r"[,\n]", text))
        if not self._words:
            raise SourceError("has no words; separate words with commas or new lines")

    def words(self) -> list[str]:
        return list(self._words)


class BundledSource:
    """The list shipped in steward/posting/words.txt, so a fresh checkout's dry run shows posts."""

    def words(self) -> list[str]:
        raw = resources.files("steward.posting").joinpath("words.txt").read_text("utf-8")
        return unique(ln.strip() for ln in raw.splitlines() if not ln.startswith("#"))


class FeedSource:
    """POST_FEED_URL: the words of an RSS or Atom feed's titles and summaries."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url
        self.timeout = timeout

    def words(self) -> list[str]:
        try:
            response = httpx.get(
                self.url,
                timeout=self.timeout,
                follow_redirects=True,
                headers={"User-Agent": "steward (feed words for posts)"},
            )
        except httpx.HTTPError as exc:
            raise SourceError(f"could not fetch the feed {self.url}: {exc}") from None
        if response.status_code >= 400:
            raise SourceError(f"the feed {self.url} answered HTTP {response.status_code}")
        import feedparser  # here: a tenth of a second at start-up for those who have no feed

        feed = feedparser.parse(
            response.content,
            response_headers={"content-type": response.headers.get("content-type", "")},
        )
        if not feed.entries:
            why = f" ({feed.bozo_exception})" if feed.bozo else ""
            raise SourceError(f"the feed {self.url} has no entries{why}")
        texts = []
        for entry in feed.entries:
            texts.append(entry.get("title", ""))
            texts.append(html.unescape(_TAGS.sub(" ", entry.get("summary", ""))))
        return unique(tokenize("\n".join(texts)))


class MergedSource:
    """Several sources as one (POST_WORDS and a feed and the timeline); a failing one is skipped
    while another gives words, and `problems` lists what failed."""

    def __init__(self, sources: Iterable[WordSource]) -> None:
        self.sources = list(sources)
        self.problems: list[str] = []

    def words(self) -> list[str]:
        found: list[str] = []
        self.problems = []
        for source in self.sources:
            try:
                found += source.words()
            except SourceError as exc:
                self.problems.append(str(exc))
            if getattr(source, "problem", None):
                self.problems.append(source.problem)  # type: ignore[attr-defined]
        if not found and self.problems:
            raise SourceError("; ".join(self.problems))
        return unique(found)

    def recorded(self, conn) -> None:
        """A post made from these words was recorded (in `conn`'s transaction): each source
        that keeps a cursor moves it (see Poster._claim)."""
        for source in self.sources:
            if (recorded := getattr(source, "recorded", None)) is not None:
                recorded(conn)
