"""`StewardCallback` for Keras 3: epoch metrics to the store; stop, learning rate and save commands.

from steward.training.keras import StewardCallback
model.fit(x, y, epochs=10, callbacks=[StewardCallback(name="mnist")])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras

from steward.training._callbacks import CustomHandler, checkpoint_path, lr_target, run_custom
from steward.training.client import Command, Run


def current_lr(optimizer) -> float:
    rate = optimizer.learning_rate
    return float(getattr(rate, "value", rate))  # a 0-d backend tensor or a plain number


class StewardCallback(keras.callbacks.Callback):
    """Reports at each epoch end and acts on commands there (every batch if asked).

    Pass a `Run` to share it with your own code, or a name (and config) to let the callback
    start one at `fit` and end it when `fit` returns.
    """

    def __init__(
        self,
        run: Run | None = None,
        *,
        name: str | None = None,
        config: dict[str, Any] | None = None,
        database_url: str | None = None,
        checkpoint_dir: str | Path = "checkpoints",
        commands_every_batch: bool = False,
        on_command: CustomHandler | None = None,
    ) -> None:
        super().__init__()
        self.run = run
        self._owned = run is None
        self._name, self._config, self._url = name, config, database_url
        self.checkpoint_dir = checkpoint_dir
        self.commands_every_batch = commands_every_batch
        self.on_command = on_command
        self._epoch = 0

    def on_train_begin(self, logs=None):
        if self.run is None:
            self.run = Run(self._name or self.model.name, self._config, database_url=self._url)

    def on_epoch_end(self, epoch, logs=None):
        self._epoch = epoch + 1
        self.run.log(step=self._epoch, **(logs or {}))
        self._handle_commands()

    def on_train_batch_end(self, batch, logs=None):
        if self.commands_every_batch:
            self._handle_commands()

    def on_train_end(self, logs=None):
        if self._owned and self.run is not None:
            self.run.close()
            self.run = None

    def _handle_commands(self) -> None:
        for cmd in self.run.commands():
            if cmd.kind == "stop":
                self.model.stop_training = True
                self.run.ack(cmd, True, f"stopping after epoch {self._epoch}")
            elif cmd.kind == "set_lr":
                self.run.ack(cmd, *self._set_lr(cmd))
            elif cmd.kind == "save":
                self._save(cmd)
            elif cmd.kind == "custom":
                run_custom(self.run, cmd, self.on_command)
            else:
                self.run.ack(cmd, False, f"unknown command {cmd.kind!r}")

    def _set_lr(self, cmd: Command) -> tuple[bool, str]:
        optimizer = self.model.optimizer
        driver = getattr(optimizer, "_learning_rate", None)
        if isinstance(driver, keras.optimizers.schedules.LearningRateSchedule) or (
            callable(driver) and not isinstance(driver, keras.Variable)
        ):
            kind = type(driver).__name__
            return False, (
                f"the learning rate follows a schedule ({kind}), so it cannot be set from "
                "outside; change the schedule in the training script"
            )
        current = current_lr(optimizer)
        target, why = lr_target(cmd, current)
        if target is None:
            return False, why
        optimizer.learning_rate = target
        return True, f"learning rate {current:.4g} -> {target:.4g} from epoch {self._epoch + 1}"

    def _save(self, cmd: Command) -> None:
        default = f"run{self.run.id}-epoch{self._epoch}"
        path = checkpoint_path(self.checkpoint_dir, cmd, default, ".keras")
        try:
            self.model.save(path)
        except Exception as exc:
            self.run.ack(cmd, False, f"saving failed: {type(exc).__name__}: {exc}")
        else:
            self.run.ack(cmd, True, f"saved {path}")
