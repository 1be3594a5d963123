"""How the worker watches training runs: how often it edits a run's message, when it worries."""

from __future__ import annotations

from steward.config.fields import SettingsPart, env


class TrainingSettings(SettingsPart):
    training_update_every: int = env(
        "TRAINING_UPDATE_EVERY",
        expect="seconds as a whole number, e.g. 60",
        default=60,
        ge=1,
        description="Seconds between progress edits of a run's message.",
    )
    training_stall_after: int = env(
        "TRAINING_STALL_AFTER",
        expect="seconds as a whole number, e.g. 300",
        default=300,
        ge=10,
        description="Seconds of silence before a run is reported stalled.",
    )
    training_lost_after: int = env(
        "TRAINING_LOST_AFTER",
        expect="seconds as a whole number, e.g. 3600",
        default=3600,
        ge=60,
        description="Seconds without a word from a run's process before the run is marked lost.",
    )
