"""Telegram's HTML parse mode, as strict as Telegram: the visible text, or the error it answers.

Rules from https://core.telegram.org/bots/api#html-style: only the tags below, only the entities
&lt; &gt; &amp; &quot; and numeric ones; a bare `<` or `&`, an unknown tag, or a tag left open or
closed out of order is refused with "can't parse entities".
"""

from __future__ import annotations

import re

# Tags Telegram accepts; `span` only as a spoiler, `code` may carry a language inside `pre`.
TAGS = frozenset(
    [
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "a",
        "code",
        "pre",
        "blockquote",
        "tg-emoji",
    ]
)
_TAG = re.compile(
    r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)"
    r"((?:\s+[^\s=/>\"']+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>\"']+))?)*)\s*>"
)
_ATTR = re.compile(r"([^\s=/>\"']+)(?:\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s>\"']+)))?")
_ENTITY = re.compile(r"&(?:(lt|gt|amp|quot)|#([0-9]{1,7})|#[xX]([0-9a-fA-F]{1,6}));")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


class EntityParseError(ValueError):
    """The text is not valid Telegram HTML; str() is Telegram's reason."""


def utf16_len(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units (an emoji outside the BMP counts 2)."""
    return len(text.encode("utf-16-le")) // 2


def visible_text(html: str) -> str:
    """The text a user sees once Telegram has parsed `html`; raises EntityParseError."""
    out: list[str] = []
    stack: list[str] = []
    pos = 0
    while pos < len(html):
        lt, amp = html.find("<", pos), html.find("&", pos)
        special = min((i for i in (lt, amp) if i >= 0), default=len(html))
        out.append(html[pos:special])
        pos = special
        if pos == len(html):
            break
        if html[pos] == "&":
            match = _ENTITY.match(html, pos)
            if match is None:
                raise _error("Can't find end of the entity starting at", html, pos)
            out.append(_entity(match, html, pos))
        else:
            match = _TAG.match(html, pos)
            if match is None:
                raise _error("Unclosed start tag at", html, pos)
            _tag(match, stack, html, pos)
        pos = match.end()
    if stack:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1]}"')
    return "".join(out)


def _entity(match: re.Match, html: str, pos: int) -> str:
    name, dec, hexa = match.groups()
    if name:
        return _NAMED[name]
    code = int(dec) if dec else int(hexa, 16)
    if not 0 < code <= 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        raise _error("Unsupported HTML entity at", html, pos)
    return chr(code)


def _tag(match: re.Match, stack: list[str], html: str, pos: int) -> None:
    closing, name, attrs = match[1], match[2].lower(), match[3]
    if closing:
        if attrs.strip():
            raise _error("Unexpected end tag attributes at", html, pos)
        if not stack:
            raise _error("Unexpected end tag at", html, pos)
        if stack[-1] != name:
            where = _offset(html, pos)
            raise EntityParseError(
                f'Unmatched end tag at byte offset {where}, expected "</{stack[-1]}>", '
                f'found "</{name}>"'
            )
        stack.pop()
        return
    if name not in TAGS:
        raise EntityParseError(
            f'Unsupported start tag "{name}" at byte offset {_offset(html, pos)}'
        )
    values = {m[1].lower(): m[2] or m[3] or m[4] or "" for m in _ATTR.finditer(attrs)}
    if name == "span" and values.get("class") != "tg-spoiler":
        raise _error('Tag "span" must have class "tg-spoiler" at', html, pos)
    if name == "tg-emoji" and not values.get("emoji-id", "").isdigit():
        raise _error("Custom emoji entity must contain a custom emoji identifier at", html, pos)
    stack.append(name)


def _offset(html: str, pos: int) -> int:
    """Telegram reports positions in UTF-8 bytes."""
    return len(html[:pos].encode())


def _error(what: str, html: str, pos: int) -> EntityParseError:
    return EntityParseError(f"{what} byte offset {_offset(html, pos)}")
