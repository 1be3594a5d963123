"""A dialog's answers: what a person sent, how it is checked, and the buttons that offer choices.

Pure: no store and no Telegram, so the engine (dialogs.py) and the router (dialog_router.py)
share one notion of an answer and of a button's data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Validator = Callable[[str], Any]  # returns the parsed value or raises ValueError("sentence")


@dataclass(frozen=True)
class Answer:
    """What a person sent in answer to a question, as it is logged."""

    text: str | None = None
    photo: str | None = None  # Telegram file_id of the largest size
    caption: str | None = None
    # The Telegram message it came in: an update delivered again after a crash is known by it.
    message_id: int | None = None

    def to_json(self) -> dict:
        pairs = (("t", self.text), ("p", self.photo), ("c", self.caption), ("m", self.message_id))
        return {k: v for k, v in pairs if v}

    @classmethod
    def from_json(cls, data: dict) -> Answer:
        return cls(
            text=data.get("t"), photo=data.get("p"), caption=data.get("c"), message_id=data.get("m")
        )


def check_answer(answer: Answer, choices, validate, raw) -> Any:
    """The value `answer` stands for: what `raw` or `validate` makes of it, or the choice it names;
    raises ValueError("sentence") when it is not acceptable."""
    if raw is not None:
        return raw(answer)
    if answer.text is None:
        raise ValueError("Please answer with text.")
    text = answer.text.strip()
    if choices:
        for choice in choices:
            if text.casefold() == choice.casefold():
                return choice
        raise ValueError("Please choose one of: " + ", ".join(choices) + ".")
    return validate(text) if validate is not None else text


def choice_buttons(dialog_id: str, question: int, choices) -> list[list[tuple[str, str]]] | None:
    """The choices as buttons, three to a row, each carrying `dlg:<dialog id>:<question>:<i>`."""
    if not choices:
        return None
    row = [(c, f"dlg:{dialog_id}:{question}:{i}") for i, c in enumerate(choices)]
    return [row[i : i + 3] for i in range(0, len(row), 3)]


def parse_button(data: str) -> tuple[str, int, int] | None:
    """`dlg:<dialog id>:<question>:<choice>` -> parts, or None for other buttons."""
    parts = data.split(":")
    if len(parts) != 4 or parts[0] != "dlg" or not parts[2].isdigit() or not parts[3].isdigit():
        return None
    return parts[1], int(parts[2]), int(parts[3])
