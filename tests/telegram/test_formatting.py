"""Escaping, visible length, and splitting Telegram HTML at the message and caption limits."""

from __future__ import annotations

import random
import re

from steward.telegram.formatting import (
    bold,
    code,
    cut_caption,
    esc,
    link,
    pre,
    split_html,
    strip_html,
    visible_length,
)

TAG = re.compile(r"</?([a-z][a-z0-9-]*)[^>]*>")


def balanced(markup: str) -> bool:
    stack = []
    for m in TAG.finditer(markup):
        if m.group(0).startswith("</"):
            if not stack or stack.pop() != m.group(1):
                return False
        else:
            stack.append(m.group(1))
    return not stack


def test_it_escapes_markup_characters_but_not_quotes():
    assert esc("<b>&\"'") == "&lt;b&gt;&amp;\"'"
    assert esc(3.5) == "3.5"


def test_its_helpers_escape_what_they_wrap():
    assert bold("a<b") == "<b>a&lt;b</b>"
    assert code("x&y") == "<code>x&amp;y</code>"
    assert pre("if a<b:", "python") == '<pre><code class="language-python">if a&lt;b:</code></pre>'
    assert link('https://x/?a=1&b="2"', "<me>") == (
        '<a href="https://x/?a=1&amp;b=&quot;2&quot;">&lt;me&gt;</a>'
    )


def test_it_counts_visible_characters_in_utf16_units():
    assert visible_length("<b>a &amp; b</b>") == 5
    assert visible_length("🙂é") == 3
    assert strip_html('<a href="u">x &lt;y&gt;</a>') == "x <y>"


def test_it_leaves_a_text_within_the_limit_alone():
    text = "<b>" + "x" * 4000 + "</b>"
    assert split_html(text) == [text]


def test_it_splits_at_line_boundaries_first():
    lines = [f"line {i:03d} " + "w" * 20 for i in range(300)]
    parts = split_html("\n".join(lines), limit=100)
    assert all(p.endswith("\n") for p in parts[:-1])
    assert "".join(parts) == "\n".join(lines)
    assert all(visible_length(p) <= 100 for p in parts)


def test_it_splits_a_long_line_at_word_boundaries():
    words = [f"word{i}" for i in range(50)]
    parts = split_html(" ".join(words), limit=30)
    assert [w for p in parts for w in p.split()] == words
    assert len(parts) > 1


def test_it_cuts_a_word_longer_than_the_limit():
    assert split_html("a" * 25, limit=10) == ["a" * 10, "a" * 10, "a" * 5]


def test_it_closes_and_reopens_tags_across_a_cut():
    text = '<b>bold <a href="https://e.com/?q=1&amp;r=2">link text here</a> end</b>'
    parts = split_html(text, limit=12)
    assert parts[0] == '<b>bold <a href="https://e.com/?q=1&amp;r=2">link </a></b>'
    assert parts[1].startswith('<b><a href="https://e.com/?q=1&amp;r=2">')
    assert all(balanced(p) for p in parts)


def test_it_never_cuts_inside_an_entity_or_a_surrogate_pair():
    parts = split_html("&amp;" * 9 + "🙂" * 3, limit=4)
    assert "".join(strip_html(p) for p in parts) == "&" * 9 + "🙂" * 3
    assert all(visible_length(p) <= 4 for p in parts)


ATOMS = [
    "word ",
    "longerword ",
    "x" * 37,
    "\n",
    "\n\n",
    "  ",
    "&amp;",
    "&lt;",
    "&gt;",
    "🙂",
    "é",
    "a < b",
    "<b>",
    "</b>",
    "<i>",
    "</i>",
    '<a href="https://x.y/?a=1&amp;b=2">',
    "</a>",
    "<code>",
    "</code>",
    "<pre>",
    "</pre>",
    '<span class="tg-spoiler">',
    "</span>",
]
OPENERS = {
    "<b>": "</b>",
    "<i>": "</i>",
    "<code>": "</code>",
    "<pre>": "</pre>",
    '<a href="https://x.y/?a=1&amp;b=2">': "</a>",
    '<span class="tg-spoiler">': "</span>",
}


def random_html(rng: random.Random) -> str:
    """Well-nested Telegram HTML built from awkward pieces."""
    out, stack = [], []
    for _ in range(rng.randint(1, 120)):
        atom = rng.choice(ATOMS)
        if atom in OPENERS:
            stack.append(OPENERS[atom])
            out.append(atom)
        elif atom.startswith("</"):
            if stack:
                out.append(stack.pop())
        else:
            out.append(esc(atom) if "&" not in atom else atom)
    return "".join(out + stack[::-1])


def test_its_parts_are_within_the_limit_balanced_and_lose_nothing_on_tricky_inputs():
    rng = random.Random(7)
    for _ in range(150):
        text = random_html(rng)
        for limit in (3, 16, 61, 4096):
            parts = split_html(text, limit)
            assert all(visible_length(p) <= limit for p in parts), (text, limit)
            assert all(balanced(p) for p in parts), (text, limit)
            if strip_html(text).strip():
                assert all(strip_html(p).strip() for p in parts), (text, limit)
            seen = re.sub(r"\s", "", "".join(strip_html(p) for p in parts))
            assert seen == re.sub(r"\s", "", strip_html(text)), (text, limit)


def test_it_cuts_a_long_caption_and_returns_the_rest():
    caption = "<b>Title</b>\n" + "\n".join(f"row {i}" for i in range(300))
    head, rest = cut_caption(caption)
    assert visible_length(head) <= 1024 and head.startswith("<b>Title</b>\n")
    assert rest is not None
    assert strip_html(head) + strip_html(rest) == strip_html(caption)
    assert cut_caption("short") == ("short", None)


def test_it_never_leaves_a_tiny_first_part_when_a_short_line_precedes_a_long_one():
    text = "abc\n" + "x" * 5000
    parts = split_html(text)
    assert [len(p) for p in parts] == [4096, 908]
    assert "".join(parts) == text
    words = "<b>Log</b>\n" + "word " * 1000
    assert len(strip_html(split_html(words)[0])) > 2000
