"""`StewardCallback` for Keras 3: epoch metrics to the store; stop, learning rate and save commands.

from steward.training.keras import StewardCallback
model.fit(x, y, epochs=10, callbacks=[StewardCallback(name="mnist")])
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import keras

from steward.training._callbacks import (
    CustomHandler,
    checkpoint_path,
    lr_target,
    report_crash,
    run_custom,
)
from steward.training.client import Command, Run


def current_lr(optimizer) -> float:
    rate = optimizer.learning_rate
    return float(getattr(rate, "value", rate))  # a 0-d backend tensor or a plain number


class FitAborted(RuntimeError):
    """A fit that ended without completing and without an exception the callback saw."""


class StewardCallback(keras.callbacks.Callback):
    """Reports batch progress (a heartbeat) and epoch metrics; acts on commands at epoch ends
    (every batch if asked). An exception in the train step ends a run it started as crashed,
    even when the script catches it.

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
        if self._owned and self.run is not None:
            # The last fit with this callback never reached on_train_end and its exception
            # was not seen (raised outside the train step): the script caught it and went on.
            self.run.close(error=FitAborted("the previous fit ended without completing"))
            self.run = None
        if self.run is None:
            name = self._name or self.model.name
            self.run = Run(name, self._config, database_url=self._url, step_unit="epoch")
        self._watch_train_step()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self.run.progress(0, self.params.get("steps"), f"epoch {epoch + 1}", unit="batches")

    def on_epoch_end(self, epoch, logs=None):
        self._epoch = epoch + 1
        values = dict(logs or {})
        if "learning_rate" not in values and "lr" not in values:
            with contextlib.suppress(Exception):  # a schedule-driven rate may not be readable
                values["learning_rate"] = current_lr(self.model.optimizer)
        self.run.log(step=self._epoch, **values)
        self._handle_commands()

    def on_train_batch_end(self, batch, logs=None):
        # A heartbeat and the ETA within the epoch: memory only, so it is cheap every batch.
        steps, desc = self.params.get("steps"), f"epoch {self._epoch + 1}"
        self.run.progress(batch + 1, steps, desc, unit="batches")
        if self.commands_every_batch:
            self._handle_commands()

    def on_train_end(self, logs=None):
        self._restore_train_step()
        if self._owned and self.run is not None:
            self.run.close()
            self.run = None

    def _watch_train_step(self) -> None:
        """Wrap the model's compiled train step so that an exception in it ends the run as a
        crash even when the script catches it around `fit` (Keras calls no hook then)."""
        original = self.model.train_function
        if original is None or getattr(original, "_steward", False):
            return
        callback = self

        def train_function(*args, **kwargs):
            try:
                return original(*args, **kwargs)
            except BaseException as exc:
                callback._crashed(exc)
                raise

        train_function._steward = True  # type: ignore[attr-defined]
        train_function._steward_original = original  # type: ignore[attr-defined]
        self.model.train_function = train_function

    def _restore_train_step(self) -> None:
        current = getattr(self.model, "train_function", None)
        original = getattr(current, "_steward_original", None)
        if original is not None:
            self.model.train_function = original

    def _crashed(self, exc: BaseException) -> None:
        self._restore_train_step()
        self.run = report_crash(self.run, exc, owned=self._owned, what="fit")

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
