"""A small Tracery expander: rule texts parsed once, the grammar checked, expansion with one rng.

Follows tracery.js: `#symbol.mod#` tags, `[name:rule,rule]` actions that push finished text for
`name` (inside a tag they are popped when the tag ends; in plain text they stay), `[name:POP]`,
`[#rule#]` that expands a rule for its actions, and backslash escapes. Unlike tracery.js (and the
2017 `tracery` package), an unknown symbol is an error when the grammar is loaded, never the
silent `((name))` in a published post. `#word#` asks the word source unless `word` is a rule.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

MAX_DEPTH = 64  # deeper than any sensible sentence; reached only by runaway recursion
MAX_EXPANSIONS = 5000  # a rule like "#a# #a#" can grow without bound while never looping


class GrammarError(ValueError):
    """The grammar cannot make text; `str()` reads after "the grammar" (e.g. "has no origin")."""


@dataclass(frozen=True, slots=True)
class Action:
    target: str  # "" for `[#rule#]`, run only for the actions it contains
    options: tuple[tuple[Node, ...], ...] | None  # None means POP


@dataclass(frozen=True, slots=True)
class Tag:
    symbol: str  # "" for a tag that only carries actions, like `#[hero:#name#]#`
    modifiers: tuple[str, ...]
    actions: tuple[Action, ...]


Node = str | Tag | Action
Rules = dict[str, tuple[tuple[Node, ...], ...]]


def _vowel(c: str) -> bool:
    return c.lower() in ("a", "e", "i", "o", "u")


def _a(s: str) -> str:
    if s[:1].lower() == "u" and s[2:3].lower() == "i":  # "a unicorn", not "an unicorn"
        return "a " + s
    return ("an " if s and _vowel(s[0]) else "a ") + s


def _s(s: str) -> str:
    if s.endswith(("s", "h", "x")):
        return s + "es"
    if s.endswith("y") and not _vowel(s[-2:-1]):
        return s[:-1] + "ies"
    return s + "s"


def _ed(s: str) -> str:
    if s.endswith("e"):
        return s + "d"
    if s.endswith("y") and not _vowel(s[-2:-1]):
        return s[:-1] + "ied"
    return s + "ed"


def _capitalize_all(s: str) -> str:
    return re.sub(r"(?:^|(?<=\s))(\w)", lambda m: m.group(1).upper(), s)


MODIFIERS: dict[str, Callable[[str], str]] = {
    "a": _a,
    "s": _s,
    "ed": _ed,
    "capitalize": lambda s: s[:1].upper() + s[1:],
    "capitalizeAll": _capitalize_all,
    "inQuotes": lambda s: f'"{s}"',
    "comma": lambda s: s if s.endswith((",", ".", "?", "!")) else s + ",",
}


# -- parsing -----------------------------------------------------------------------------------


def _close(text: str, start: int, closer: str) -> int:
    """Index of the `closer` that ends what opens at `start`, skipping nested [ ] and escapes."""
    depth = 1 if closer == "]" else 0
    i = start + 1
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
            if closer == "]" and depth == 0:
                return i
        elif c == "#" and closer == "#" and depth == 0:
            return i
        i += 1
    raise GrammarError(f'an unclosed "{text[start]}"')


def _split_options(text: str) -> Iterator[str]:
    """Split an action's rule on commas outside brackets (`[x:#a#,#b#]`)."""
    depth, part, i = 0, [], 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            part.append(text[i : i + 2])
            i += 2
            continue
        depth += (c == "[") - (c == "]")
        if c == "," and depth == 0:
            yield "".join(part)
            part = []
        else:
            part.append(c)
        i += 1
    yield "".join(part)


def _action(raw: str) -> Action:
    if ":" not in raw:
        return Action("", (parse(raw),))
    target, rule = raw.split(":", 1)
    if not target.strip():
        raise GrammarError(f'the action "[{raw}]" without a name before ":"')
    if rule == "POP":
        return Action(target.strip(), None)
    return Action(target.strip(), tuple(parse(option) for option in _split_options(rule)))


def _tag(raw: str) -> Tag:
    actions = []
    while raw.startswith("["):
        end = _close(raw, 0, "]")
        actions.append(_action(raw[1:end]))
        raw = raw[end + 1 :]
    if "[" in raw or "]" in raw:
        raise GrammarError(f'an action after the symbol in "#{raw}#"')
    symbol, *modifiers = raw.split(".")
    return Tag(symbol.strip(), tuple(m.strip() for m in modifiers), tuple(actions))


def parse(text: str) -> tuple[Node, ...]:
    """One rule text as literal strings, tags and actions."""
    nodes: list[Node] = []
    literal: list[str] = []

    def flush() -> None:
        if literal:
            nodes.append("".join(literal))
            literal.clear()

    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            literal.append(text[i + 1])
            i += 2
        elif c in "[#":
            end = _close(text, i, "]" if c == "[" else "#")
            flush()
            inner = text[i + 1 : end]
            nodes.append(_action(inner) if c == "[" else _tag(inner))
            i = end + 1
        elif c == "]":
            raise GrammarError('a "]" without its "["')
        else:
            literal.append(c)
            i += 1
    flush()
    return tuple(nodes)


# -- checking ----------------------------------------------------------------------------------


def _walk(nodes: tuple[Node, ...]) -> Iterator[Tag | Action]:
    for node in nodes:
        if isinstance(node, Tag):
            yield node
            for action in node.actions:
                yield from _walk((action,))
        elif isinstance(node, Action):
            yield node
            for option in node.options or ():
                yield from _walk(option)


def compile_grammar(grammar: dict) -> Rules:
    """Parse and check every rule; raise GrammarError with the first problem found."""
    rules: Rules = {}
    for name, value in grammar.items():
        options = [value] if isinstance(value, str) else value
        if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
            raise GrammarError(f'has a rule "{name}" that is neither text nor a list of texts')
        if not options:
            raise GrammarError(f'has an empty rule "{name}"; a rule needs at least one option')
        parsed = []
        for option in options:
            try:
                parsed.append(parse(option))
            except GrammarError as exc:
                raise GrammarError(f'has {exc} in rule "{name}": {option!r}') from None
        rules[name] = tuple(parsed)
    if "origin" not in rules:
        raise GrammarError('has no "origin" rule, where every post starts')
    _check(rules)
    return rules


def _check(rules: Rules) -> None:
    found = [item for options in rules.values() for o in options for item in _walk(o)]
    pushes: dict[str, list[tuple[Node, ...]]] = {}
    for item in found:
        if isinstance(item, Action) and item.target:
            pushes.setdefault(item.target, []).extend(item.options or ())
    known = set(rules) | set(pushes) | {"word"}
    for item in found:
        if not isinstance(item, Tag):
            continue
        if item.symbol and item.symbol not in known:
            raise GrammarError(f"uses #{item.symbol}#, which no rule defines")
        for m in item.modifiers:
            if m not in MODIFIERS:
                names = " ".join("." + k for k in MODIFIERS)
                raise GrammarError(f"uses the modifier .{m}, which is not one of {names}")
    # A symbol can end when one of its options uses only symbols that can end (a fixed point);
    # an action must finish all of its options, so all of them must end.
    ends: set[str] = set() if "word" in rules else {"word"}

    def can_end(nodes: tuple[Node, ...]) -> bool:
        for node in nodes:
            if isinstance(node, Tag):
                if node.symbol and node.symbol not in ends:
                    return False
                if not all(can_end((a,)) for a in node.actions):
                    return False
            elif isinstance(node, Action) and not all(can_end(o) for o in node.options or ()):
                return False
        return True

    symbols = list(rules) + [s for s in pushes if s not in rules]
    changed = True
    while changed:
        changed = False
        for symbol in symbols:
            options = rules.get(symbol, ()) + tuple(pushes.get(symbol, ()))
            if symbol not in ends and any(can_end(o) for o in options):
                ends.add(symbol)
                changed = True
    for symbol in symbols:
        if symbol not in ends:
            raise GrammarError(
                f'has a rule "{symbol}" that never ends: every option leads back into a loop'
            )


def uses_word(rules: Rules) -> bool:
    """Whether expansion can ask the word source (a `#word#` the grammar does not define)."""
    if "word" in rules:
        return False
    return any(
        isinstance(item, Tag) and item.symbol == "word"
        for options in rules.values()
        for o in options
        for item in _walk(o)
    )


# -- expanding ---------------------------------------------------------------------------------


class _Expansion:
    def __init__(self, rules: Rules, pick: Callable[[random.Random], str], rng: random.Random):
        self.rules = rules
        self.pick = pick
        self.rng = rng
        self.pushed: dict[str, list[list[str]]] = {}
        self.budget = MAX_EXPANSIONS

    def text(self, nodes: tuple[Node, ...], depth: int) -> str:
        out = []
        for node in nodes:
            if isinstance(node, str):
                out.append(node)
            elif isinstance(node, Tag):
                out.append(self.tag(node, depth))
            else:
                self.act(node, depth)
        return "".join(out)

    def tag(self, tag: Tag, depth: int) -> str:
        if depth > MAX_DEPTH:
            raise GrammarError(f"expanded past {MAX_DEPTH} levels; a rule recurses too often")
        for action in tag.actions:
            self.act(action, depth)
        text = self.symbol(tag.symbol, depth) if tag.symbol else ""
        for m in tag.modifiers:
            text = MODIFIERS[m](text)
        for action in tag.actions:  # a tag's own pushes last only while it expands
            stack = self.pushed.get(action.target)
            if action.target and action.options is not None and stack:
                stack.pop()
        return text

    def symbol(self, name: str, depth: int) -> str:
        stack = self.pushed.get(name)
        if stack:
            return self.rng.choice(stack[-1])
        options = self.rules.get(name)
        if options is None:
            if name == "word":
                return self.pick(self.rng)
            raise GrammarError(f"used #{name}# before an action set it")
        self.budget -= 1
        if self.budget < 0:
            raise GrammarError(f"grew past {MAX_EXPANSIONS} expansions; a rule recurses too often")
        return self.text(self.rng.choice(options), depth + 1)

    def act(self, action: Action, depth: int) -> None:
        if not action.target:
            self.text(action.options[0], depth + 1)  # type: ignore[index]
        elif action.options is None:
            stack = self.pushed.get(action.target)
            if stack:
                stack.pop()
        else:
            finished = [self.text(o, depth + 1) for o in action.options]
            self.pushed.setdefault(action.target, []).append(finished)


def expand(rules: Rules, pick: Callable[[random.Random], str], rng: random.Random) -> str:
    """One text from `origin`; raises GrammarError only for runaway recursion."""
    return _Expansion(rules, pick, rng).text((Tag("origin", (), ()),), 0)
