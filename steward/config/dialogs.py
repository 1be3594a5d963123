"""How long a conversation in the chat waits for its answer."""

from __future__ import annotations

from steward.config.fields import SettingsPart, env


class DialogSettings(SettingsPart):
    dialog_timeout: int = env(
        "DIALOG_TIMEOUT",
        expect="seconds as a whole number, e.g. 600",
        default=600,
        ge=10,
        description="Seconds a question in a dialog waits for an answer.",
    )
