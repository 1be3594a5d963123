"""Telegram HTML: escaping helpers, visible length, and splitting text or captions at the limits.

Every message the worker sends is Telegram HTML (parse_mode=HTML). Anything that comes from
outside (a metric name, an exception, a URL, a post) goes through `esc()` first.

Lengths are counted the way Telegram limits them: characters after the markup is parsed, in
UTF-16 code units (an emoji outside the BMP counts twice), which never undercounts.
"""

from __future__ import annotations

import html
import re

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024

# A tag as Telegram's HTML parser understands one; a lone "<" in text is not a tag.
_TAG = re.compile(r"</?([a-zA-Z][a-zA-Z0-9-]*)(?:\s[^<>]*)?>")


def esc(value: object) -> str:
    """Escape any value for Telegram HTML (quotes stay: they are literal outside attributes)."""
    return html.escape(str(value), quote=False)


def bold(value: object) -> str:
    return f"<b>{esc(value)}</b>"


def italic(value: object) -> str:
    return f"<i>{esc(value)}</i>"


def code(value: object) -> str:
    return f"<code>{esc(value)}</code>"


def pre(value: object, language: str | None = None) -> str:
    if language:
        lang = html.escape(language, quote=True)
        return f'<pre><code class="language-{lang}">{esc(value)}</code></pre>'
    return f"<pre>{esc(value)}</pre>"


def link(url: str, text: object) -> str:
    return f'<a href="{html.escape(url, quote=True)}">{esc(text)}</a>'


def _units(text: str) -> int:
    """UTF-16 code units, the unit of Telegram's limits and entity offsets."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def _tokens(markup: str) -> list[tuple[str, str, str]]:
    """Split markup into ("text", raw text, "") and ("open"|"close", tag source, tag name)."""
    out: list[tuple[str, str, str]] = []
    pos = 0
    for m in _TAG.finditer(markup):
        if m.start() > pos:
            out.append(("text", html.unescape(markup[pos : m.start()]), ""))
        kind = "close" if m.group(0).startswith("</") else "open"
        out.append((kind, m.group(0), m.group(1).lower()))
        pos = m.end()
    if pos < len(markup):
        out.append(("text", html.unescape(markup[pos:]), ""))
    return out


def strip_html(markup: str) -> str:
    """The plain text a reader sees: tags removed, entities decoded."""
    return "".join(value for kind, value, _ in _tokens(markup) if kind == "text")


def visible_length(markup: str) -> int:
    """Length of the visible text in UTF-16 code units (what Telegram's limits count)."""
    return _units(strip_html(markup))


def _take(pieces: list[str], room: int) -> str:
    head, used = "", 0
    for piece in pieces:
        size = _units(piece)
        if used + size > room:
            break
        head, used = head + piece, used + size
    return head


def _fit(text: str, room: int) -> str:
    """The longest head of `text` within `room` units: whole lines, else words, else chars.

    A line or word cut must fill at least half the room: a short first line followed by a
    long one would otherwise leave a part of a few characters."""
    if _units(text) <= room:
        return text
    lines = re.findall(r"[^\n]*\n|[^\n]+", text)
    words = re.findall(r"\S+\s*|\s+", text)
    for pieces in (lines, words):
        head = _take(pieces, room)
        if head and _units(head) * 2 >= room:
            return head
    return _take(list(text), room) or text[:1]  # a room under one character: still progress


def _split_once(markup: str, limit: int) -> tuple[str, str]:
    """Cut `markup` after at most `limit` visible units; both halves get balanced tags.

    1. Choose the cut in the plain text (line, else word, else character boundary).
    2. Walk the tokens up to that many characters, keeping a stack of open tags; closing tags
       right at the cut stay in the head, opening tags there go to the tail.
    3. Close the still-open tags at the end of the head and reopen them at the start of the tail.
    """
    tokens = _tokens(markup)
    remaining = len(_fit("".join(v for k, v, _ in tokens if k == "text"), limit))
    stack: list[tuple[str, str]] = []  # (name, opening tag source)
    head: list[str] = []
    left = ""
    i = 0
    while i < len(tokens):
        kind, value, name = tokens[i]
        if kind == "close":
            head.append(value)
            for j in range(len(stack) - 1, -1, -1):
                if stack[j][0] == name:
                    del stack[j:]
                    break
        elif remaining == 0:
            break
        elif kind == "open":
            head.append(value)
            stack.append((name, value))
        else:
            taken, left = value[:remaining], value[remaining:]
            head.append(esc(taken))
            remaining -= len(taken)
            if left:
                i += 1
                break
        i += 1
    rest = tokens[i:]
    head.extend(f"</{n}>" for n, _ in reversed(stack))
    tail = [src for _, src in stack] + [esc(left)] + [_source(t) for t in rest]
    return "".join(head), "".join(tail)


def _source(token: tuple[str, str, str]) -> str:
    kind, value, _ = token
    return esc(value) if kind == "text" else value


def _blank(markup: str) -> bool:
    return not strip_html(markup).strip()


def split_html(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Split Telegram HTML into parts of at most `limit` visible units, in order.

    Cuts at line boundaries, then word boundaries, then characters; every part has balanced
    tags (those open at a cut are closed at the end of one part and reopened in the next).
    Parts with nothing visible are dropped, since Telegram refuses empty messages.
    """
    if visible_length(text) <= limit:
        return [text]
    parts: list[str] = []
    rest = text
    while rest and not _blank(rest):
        if visible_length(rest) <= limit:
            parts.append(rest)
            break
        head, rest = _split_once(rest, limit)
        if not _blank(head):
            parts.append(head)
    return parts


def cut_caption(caption: str, limit: int = CAPTION_LIMIT) -> tuple[str, str | None]:
    """A caption within `limit`, and the rest (balanced HTML) to send as a text message, or None."""
    if visible_length(caption) <= limit:
        return caption, None
    head, rest = _split_once(caption, limit)
    return head, (None if _blank(rest) else rest)
