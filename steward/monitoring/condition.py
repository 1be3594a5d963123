"""Body conditions for HTTP checks: a small JSON path compared with a JSON literal.

The form is `PATH OP LITERAL`, e.g. `$.status == "ok"`, `$.data[0].height > 100`,
`$.ready != false`. PATH is `$` followed by `.key` and `[n]` steps (`["odd key"]` for keys that
are not identifiers); OP is one of `==`, `!=`, `<`, `>`; LITERAL is JSON (a string in double
quotes, a number, true, false or null). `<` and `>` compare numbers only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_FORM = 'like $.status == "ok" or $.data[0].height > 100'
_STEP = re.compile(r'\.([A-Za-z_][\w-]*)|\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]')
_WHOLE = re.compile(r"^\s*(\$.*?)\s*(==|!=|<|>)\s*(.+?)\s*$")
_MISSING = object()


class ConditionError(ValueError):
    """A condition that cannot be parsed; `str()` says why and shows the expected form."""


@dataclass(frozen=True)
class Condition:
    source: str
    path_text: str
    path: tuple[str | int, ...]
    op: str
    expected: Any

    def check(self, document: Any) -> tuple[bool, str]:
        """Whether `document` satisfies the condition, and a short explanation when it does not."""
        found = _walk(document, self.path)
        if found is _MISSING:
            return False, f"{self.path_text} is missing"
        if self.op in ("<", ">"):
            if not _is_number(found) or not _is_number(self.expected):
                return False, f"{self.path_text} is {_show(found)}, not a number"
            ok = found < self.expected if self.op == "<" else found > self.expected
        else:
            same = found == self.expected and type(found) is type(self.expected)
            same = same or (
                _is_number(found) and _is_number(self.expected) and found == self.expected
            )
            ok = same if self.op == "==" else not same
        return ok, "" if ok else f"{self.path_text} is {_show(found)}"


def parse_condition(text: str) -> Condition:
    whole = _WHOLE.match(text)
    if whole is None:
        raise ConditionError(f"condition {text!r} is not of the form PATH OP VALUE, {_FORM}")
    path_text, op, literal = whole.groups()
    path: list[str | int] = []
    pos = 1
    for step in _STEP.finditer(path_text, 1):
        if step.start() != pos:
            break
        key, index, quoted = step.groups()
        if index is not None:
            path.append(int(index))
        else:
            path.append(key if key is not None else json.loads(f'"{quoted}"'))
        pos = step.end()
    if pos != len(path_text):
        raise ConditionError(
            f"condition {text!r} has a path {path_text!r} that is not $ followed by .key and [n] "
            f"steps, {_FORM}"
        )
    try:
        expected = json.loads(literal)
    except ValueError:
        raise ConditionError(
            f"condition {text!r} compares with {literal!r}, which is not a JSON value "
            '(strings need double quotes: "ok")'
        ) from None
    if op in ("<", ">") and not _is_number(expected):
        raise ConditionError(f"condition {text!r} uses {op} with a value that is not a number")
    return Condition(text.strip(), path_text, tuple(path), op, expected)


def _walk(document: Any, path: tuple[str | int, ...]) -> Any:
    here = document
    for step in path:
        if isinstance(step, int):
            if not isinstance(here, list) or step >= len(here):
                return _MISSING
        elif not isinstance(here, dict) or step not in here:
            return _MISSING
        here = here[step]
    return here


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _show(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:59] + "…"
