"""Post length as each channel counts it: X's weighted length and Telegram's UTF-16 units.

X follows twitter-text's v3 configuration (https://github.com/twitter/twitter-text, config/v3.json
and https://docs.x.com/fundamentals/counting-characters): the text is NFC-normalized; code points
in 0-4351, 8192-8205, 8208-8223 and 8242-8247 weigh 1 and every other code point 2; an emoji
weighs 2 however many code points it is made of (flags, keycaps, skin tones, ZWJ families); a
URL weighs 23 whatever its length, because X wraps it in t.co. The limit is 280.

URL detection is a smaller version of twitter-text's: `http(s)://...`, `www....` and bare domains
(`example.com`, and a country domain like `example.ru` only with more labels or a path, as
twitter-text does). Where it is unsure it errs towards counting more, so a text it accepts is
never rejected by X for length.

Telegram counts a message's text in UTF-16 code units; the limit is 4096. Mastodon counts code
points with every URL as 23; its limit is the instance's (500 unless it says otherwise). Bluesky
counts grapheme clusters (what a reader sees as one character); the limit is 300.
"""

from __future__ import annotations

import re
import unicodedata

X_LIMIT = 280
X_URL_WEIGHT = 23
TELEGRAM_LIMIT = 4096
MASTODON_LIMIT = 500  # Mastodon's own default; an instance may allow more
MASTODON_URL_WEIGHT = 23
BLUESKY_LIMIT = 300
CHANNELS = ("x", "telegram", "dry-run", "mastodon", "bluesky")
# What joins the character before it into one grapheme cluster: combining marks, variation
# selectors, skin tones, tags, ZWJ (with the character after it). Conservative: never fewer
# clusters than a full UAX #29 segmentation would count, so a text accepted here fits Bluesky.
_EXTEND = re.compile(
    r"[\u0300-\u036f\u0483-\u0489\u0591-\u05bd\u0610-\u061a\u064b-\u065f\u0900-\u0903"
    r"\u093a-\u094f\u0e31\u0e34-\u0e3a\u0e47-\u0e4e\u1ab0-\u1aff\u1dc0-\u1dff\u200c"
    r"\u20d0-\u20ff\ufe00-\ufe0f\ufe20-\ufe2f\U0001f3fb-\U0001f3ff\U000e0020-\U000e007f]"
    r"|\u200d.|\r(?=\n)"
)
_FLAG = re.compile(r"[\U0001f1e6-\U0001f1ff]{2}")

# Everything outside twitter-text's weight-1 ranges weighs 2.
_HEAVY = re.compile(r"[^\u0000-\u10ff\u2000-\u200d\u2010-\u201f\u2032-\u2037]")
# Characters X refuses in a post (twitter-text's invalid_chars_group).
_INVALID = re.compile(r"[\ufffe\ufeff\uffff\u202a-\u202e]")

_PICTO = (
    "\u00a9\u00ae\u203c\u2049\u2122\u2139\u2194-\u2199\u21a9\u21aa\u231a\u231b\u2328\u23cf"
    "\u23e9-\u23f3\u23f8-\u23fa\u24c2\u25aa\u25ab\u25b6\u25c0\u25fb-\u25fe\u2600-\u27bf"
    "\u2934\u2935\u2b05-\u2b07\u2b1b\u2b1c\u2b50\u2b55\u3030\u303d\u3297\u3299"
    "\U0001f000-\U0001f1e5\U0001f200-\U0001faff"
)
_ONE_EMOJI = rf"[{_PICTO}][\ufe0e\ufe0f]?[\U0001f3fb-\U0001f3ff]?[\U000e0020-\U000e007f]*"
_EMOJI = re.compile(
    r"[\U0001f1e6-\U0001f1ff]{1,2}"  # a flag is two regional indicators
    r"|[0-9#*]\ufe0f?\u20e3"  # keycaps
    rf"|{_ONE_EMOJI}(?:\u200d{_ONE_EMOJI})*"  # ZWJ sequences count once
)

_GENERIC_TLDS = (
    "com|org|net|edu|gov|mil|int|info|biz|name|pro|aero|coop|museum|mobi|asia|tel|travel|jobs|"
    "app|dev|page|blog|shop|site|online|store|tech|xyz|top|club|live|news|world|art|cloud|"
    "design|email|link|space|website|wiki|network|media|social|today|life|games|rocks|ninja"
)
# twitter-text accepts these country domains even bare and short ("example.co").
_SPECIAL_CCTLDS = ("co", "tv")
_URL_END = r"(?=[.,;:!?'\")\]}]*(?:\s|$))"  # trailing punctuation is not part of a URL
_URL = re.compile(
    r"(?<![\w@$#＠＃./-])"
    rf"(?:(?P<scheme>https?://)\S+?{_URL_END}"
    r"|(?P<labels>(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+)"
    rf"(?P<tld>{_GENERIC_TLDS}|[a-z]{{2}})(?![\w-])(?::\d{{1,5}})?"
    rf"(?P<path>/\S*?{_URL_END})?)",
    re.IGNORECASE,
)


def _is_url(m: re.Match[str]) -> bool:
    if m.group("scheme") or m.group("path"):
        return True
    tld = m.group("tld").lower()
    if len(tld) > 2 or tld in _SPECIAL_CCTLDS:
        return True
    # A bare country domain counts only with more than one label: "news.bbc.co.uk", not "file.py".
    return m.group("labels").count(".") > 1


def url_spans(text: str) -> list[tuple[int, int]]:
    """Where the URLs X would shorten are, as (start, end) indexes into `text`."""
    return [m.span() for m in _URL.finditer(text) if _is_url(m)]


def _plain_weight(text: str) -> int:
    total, pos = 0, 0
    for m in _EMOJI.finditer(text):
        chunk = text[pos : m.start()]
        total += len(chunk) + len(_HEAVY.findall(chunk)) + 2
        pos = m.end()
    chunk = text[pos:]
    return total + len(chunk) + len(_HEAVY.findall(chunk))


def x_length(text: str) -> int:
    """X's weighted length of `text` (a post fits when it is at most 280)."""
    text = unicodedata.normalize("NFC", text)
    total, pos = 0, 0
    for start, end in url_spans(text):
        total += _plain_weight(text[pos:start]) + X_URL_WEIGHT
        pos = end
    return total + _plain_weight(text[pos:])


def mastodon_length(text: str) -> int:
    """Mastodon's length: code points, each URL counted as 23."""
    total, pos = 0, 0
    for start, end in url_spans(text):
        total += len(text[pos:start]) + MASTODON_URL_WEIGHT
        pos = end
    return total + len(text[pos:])


def graphemes(text: str) -> int:
    """Grapheme clusters in `text` (Bluesky's length)."""
    text = unicodedata.normalize("NFC", text)
    flags = len(_FLAG.findall(text))
    joined = sum(len(m.group()) for m in _EXTEND.finditer(text))
    return len(text) - joined - flags


def telegram_length(text: str) -> int:
    """Telegram's length of a message text: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def fits(text: str, channel: str, limit: int | None = None) -> bool:
    """Whether `text` can be published on `channel` as it is.

    A dry run is held to X's rule, the strictest, so what it shows could be posted anywhere.
    A farm bot's channel may name its chat ("telegram:@channel"): the network's rule holds.
    `limit` is the account's own, where the network lets a server set it (a Mastodon
    instance's `max_characters`); without it, the network's default.
    """
    if not text.strip():
        return False
    channel = channel.partition(":")[0]
    if channel == "mastodon" and limit is not None:
        return mastodon_length(text) <= limit
    if channel in ("x", "dry-run"):
        return not _INVALID.search(text) and x_length(text) <= X_LIMIT
    if channel == "telegram":
        return telegram_length(text) <= TELEGRAM_LIMIT
    if channel == "mastodon":
        return mastodon_length(text) <= MASTODON_LIMIT
    if channel == "bluesky":
        return graphemes(text) <= BLUESKY_LIMIT
    raise ValueError(f"unknown channel {channel!r}; expected one of {', '.join(CHANNELS)}")
