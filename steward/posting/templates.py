"""Post templates: printf `%s` slots, `{word}` slots or a Tracery grammar, parsed and checked once.

`parse_template(POST_TEMPLATE)` decides the kind:

- text that is a JSON object (it starts with `{`), or a path ending in `.json`, is a Tracery
  grammar: it starts at `origin`, expands `#symbol#` with the modifiers `.a .s .ed .capitalize
  .capitalizeAll .inQuotes .comma`, and runs actions `[name:#rule#]`, `[name:a,b]`,
  `[name:POP]` and `[#rule#]`. `#word#` is a fresh word from the word source each time it is
  expanded (unless the grammar defines its own `word` rule); `[w:#word#]...#w#...#w#` repeats one.
- text with `%s` is printf-like, as in the seed bot (`'%s – это когда тебя любят.'`): every `%s`
  gets a different word, `%%` is a literal percent, any other `%` sequence is an error;
- text with `{word}`, `{noun}`, `{word2}`, ... is a slot template: each distinct name is one word,
  the same name repeats the same word, `{Word}` is that word capitalized, `{{` and `}}` are
  literal braces.

Every way a template could fail to make text is found here and raised as `TemplateError`, whose
message reads after the variable name: "POST_TEMPLATE uses #animal#, which no rule defines".
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from steward.posting import tracery
from steward.posting.tracery import Node


class TemplateError(ValueError):
    """A template that cannot make text; `str()` is a sentence that follows the variable name."""


class WordPicker:
    """Random words for slots, drawn from one word list (read from the source once per tick)."""

    def __init__(self, words: Sequence[str]) -> None:
        self.words = list(words)

    def __len__(self) -> int:
        return len(self.words)

    def pick(self, rng: random.Random) -> str:
        return rng.choice(self.words)

    def fresh(self) -> Callable[[random.Random], str]:
        """A picker for one text: each call a word not drawn yet in it, while any are left."""
        left = list(self.words)

        def pick(rng: random.Random) -> str:
            if not left:
                return rng.choice(self.words)
            return left.pop(rng.randrange(len(left)))

        return pick

    def distinct(self, rng: random.Random, n: int) -> list[str]:
        """`n` different words when there are that many, otherwise words that may repeat."""
        if n == 1:
            return [rng.choice(self.words)]
        if len(self.words) >= n:
            return rng.sample(self.words, n)
        return [rng.choice(self.words) for _ in range(n)]


class Template(Protocol):
    kind: str  # "printf", "slots" or "tracery"
    needs_words: bool  # False for a grammar that never asks for #word#

    def render(self, words: WordPicker, rng: random.Random) -> str: ...


@dataclass(frozen=True)
class PrintfTemplate:
    """Literal parts with `None` where a `%s` word goes."""

    parts: tuple[str | None, ...]
    kind: str = "printf"
    needs_words: bool = True

    def render(self, words: WordPicker, rng: random.Random) -> str:
        chosen = iter(words.distinct(rng, sum(p is None for p in self.parts)))
        return "".join(next(chosen) if p is None else p for p in self.parts)


@dataclass(frozen=True)
class SlotTemplate:
    """Literal parts and `(name, capitalize)` slots; one word per distinct lowercase name."""

    parts: tuple[str | tuple[str, bool], ...]
    names: tuple[str, ...]
    kind: str = "slots"
    needs_words: bool = True

    def render(self, words: WordPicker, rng: random.Random) -> str:
        chosen = dict(zip(self.names, words.distinct(rng, len(self.names)), strict=True))
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            else:
                word = chosen[part[0]]
                out.append(word[:1].upper() + word[1:] if part[1] else word)
        return "".join(out)


@dataclass(frozen=True)
class TraceryTemplate:
    """A checked grammar: every rule parsed, every symbol defined, every rule able to end."""

    rules: dict[str, tuple[tuple[Node, ...], ...]]
    needs_words: bool
    kind: str = "tracery"

    def render(self, words: WordPicker, rng: random.Random) -> str:
        try:
            return tracery.expand(self.rules, words.fresh(), rng)
        except tracery.GrammarError as exc:
            raise TemplateError(str(exc)) from None


def parse_template(raw: str) -> Template:
    """Parse POST_TEMPLATE (text, inline JSON or a .json path); raise TemplateError if unusable."""
    text = raw.strip()
    if not text:
        raise TemplateError("is empty; write text with %s or {word} where a word goes")
    if text.startswith("{"):
        try:
            grammar = json.loads(text)
        except json.JSONDecodeError as exc:
            # `{word} is ...` is a slot template; `{"origin": ...` is a grammar with a typo.
            if re.match(r'\{\s*(["\'}\[]|$)', text):
                raise TemplateError(
                    f"looks like a Tracery grammar but is not valid JSON: {_why(exc)}"
                ) from None
        else:
            return _grammar(grammar, "is a Tracery grammar that")
    if "\n" not in text and text.lower().endswith(".json"):
        return _grammar_file(Path(text).expanduser())
    printf_slots = _printf_slots(text)
    brace_slots = re.findall(r"(?<!\{)\{\w+\}(?!\})", text)
    if printf_slots and brace_slots:
        raise TemplateError("mixes %s and {word} slots; use one kind")
    if printf_slots:
        return _printf(text)
    if brace_slots or re.search(r"[{}]", text.replace("{{", "").replace("}}", "")):
        return _slots(text)
    raise TemplateError(
        "has no slot for a word; write %s or {word} where a word goes, or give a Tracery grammar"
    )


def _why(exc: json.JSONDecodeError) -> str:
    return f"{exc.msg} at line {exc.lineno} column {exc.colno}"


def _printf_slots(text: str) -> int:
    return sum(1 for m in re.finditer(r"%.?", text, re.S) if m.group() == "%s")


def _printf(text: str) -> PrintfTemplate:
    parts: list[str | None] = []
    literal = []
    pos = 0
    for m in re.finditer(r"%(.?)", text, re.S):
        literal.append(text[pos : m.start()])
        pos = m.end()
        if m.group(1) == "%":
            literal.append("%")
        elif m.group(1) == "s":
            parts += ["".join(literal), None]
            literal = []
        elif m.group(1) == "":
            raise TemplateError("ends with a lone %; write %% for a literal percent sign")
        else:
            raise TemplateError(
                f"has {m.group()!r}, but only %s (a word) and %% (a percent sign) are understood"
            )
    literal.append(text[pos:])
    parts.append("".join(literal))
    return PrintfTemplate(tuple(p for p in parts if p != ""))


# Any name: `{noun} and {adj}`, `{word}` and `{word2}`; each distinct name is one word.
_SLOT_NAME = re.compile(r"[a-z_][a-z0-9_]*")


def _slots(text: str) -> SlotTemplate:
    parts: list[str | tuple[str, bool]] = []
    names: list[str] = []
    literal = []
    pos = 0
    for m in re.finditer(r"\{\{|\}\}|\{([^{}]*)\}|[{}]", text):
        literal.append(text[pos : m.start()])
        pos = m.end()
        token = m.group()
        if token in ("{{", "}}"):
            literal.append(token[0])
            continue
        name = m.group(1)
        if name is None:
            raise TemplateError("has an unmatched brace; write {{ or }} for a literal brace")
        if not _SLOT_NAME.fullmatch(name[:1].lower() + name[1:]):
            raise TemplateError(
                f"has {token}, but a slot is a name of letters, digits and _ such as {{word}} "
                "or {noun} ({Word} capitalizes); write {{ and }} for literal braces"
            )
        key = name.lower()
        if key not in names:
            names.append(key)
        parts += ["".join(literal), (key, name[0].isupper())]
        literal = []
    literal.append(text[pos:])
    parts.append("".join(literal))
    if not names:
        raise TemplateError("has no {word} slot; write {word} where a word goes")
    return SlotTemplate(tuple(p for p in parts if p != ""), tuple(names))


def _grammar_file(path: Path) -> TraceryTemplate:
    if not path.is_file():
        raise TemplateError(f"names the file {path}, which does not exist")
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateError(f"names the file {path}, which cannot be read ({exc})") from None
    try:
        grammar = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise TemplateError(f"names {path}, which is not valid JSON: {_why(exc)}") from None
    return _grammar(grammar, f"names the Tracery grammar {path}, which")


def _grammar(grammar: object, subject: str) -> TraceryTemplate:
    """Check a decoded grammar; `subject` starts each error so it reads after the variable."""
    say: Callable[[str], TemplateError] = lambda problem: TemplateError(f"{subject} {problem}")  # noqa: E731
    if not isinstance(grammar, dict):
        raise say("is not a JSON object of rules")
    try:
        rules = tracery.compile_grammar(grammar)
    except tracery.GrammarError as exc:
        raise say(str(exc)) from None
    return TraceryTemplate(rules, needs_words=tracery.uses_word(rules))
