"""`StewardCallback` for the Hugging Face Trainer: logs and evaluations to the store, commands.

from steward.training.huggingface import StewardCallback
Trainer(model, args, train_dataset=ds, callbacks=[StewardCallback(name="bert-ft")])
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

from transformers import TrainerCallback

from steward.training._callbacks import CustomHandler, report_crash, run_custom, scale_torch_lr
from steward.training.client import Command, Run


def _shared(commands: list[Command], global_step: int, every: int) -> list[Command]:
    """Rank 0's commands on every process (all ranks reach the same steps, so all call this)."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return commands
    if dist.get_world_size() < 2:
        return commands
    if global_step % every:
        return []  # rank 0 keeps its commands queued until the next agreed step
    box = [commands]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def changed_arguments(args: Any) -> dict[str, Any]:
    """The TrainingArguments that differ from their declared defaults: of over a hundred, the
    few that describe this run. (A second instance to compare with would reset the
    accelerator's process state in the middle of training.)"""
    shown = args.to_sanitized_dict()
    out = {}
    for f in dataclasses.fields(args):
        if f.name not in shown:
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = dataclasses.MISSING
        if not _same(getattr(args, f.name), default):
            out[f.name] = shown[f.name]
    return out


def _same(value: Any, default: Any) -> bool:
    """Equal, or equal once __post_init__'s conversions are undone (an enum for its string, a
    config object or False for an absent one, an empty list for None)."""
    value = getattr(value, "value", value)
    default = getattr(default, "value", default)
    if value == default or (value in ([], "") and default in ([], "")):
        return True
    if default is None or default == "none":
        return value in ([], {}, "", None, False) or dataclasses.is_dataclass(value)
    return False


class TrainingAborted(RuntimeError):
    """A train() that ended without completing (its exception was caught by the script)."""


class StewardCallback(TrainerCallback):
    """Logs what the Trainer logs (on_log, on_evaluate) and acts on commands after each step.

    Learning rate: the Trainer's scheduler rewrites the optimizer's rate at every step from its
    base rates, so set_lr scales the scheduler's base rates along with the current rate.
    In multi-process training commands are broadcast from rank 0 every `sync_every` steps.
    """

    def __init__(
        self,
        run: Run | None = None,
        *,
        name: str | None = None,
        config: dict[str, Any] | None = None,
        database_url: str | None = None,
        on_command: CustomHandler | None = None,
        sync_every: int = 20,
    ) -> None:
        self.run = run
        self._owned = run is None
        self._name, self._config, self._url = name, config, database_url
        self.on_command = on_command
        self.sync_every = max(1, sync_every)
        self._held: list[Command] = []
        self._watched: Any = None

    def on_train_begin(self, args, state, control, **kwargs):
        if self._owned and self.run is not None:
            # The last train() with this callback never reached on_train_end: it raised, and
            # the script caught the exception and went on.
            self.run.close(error=TrainingAborted("the previous train() ended without completing"))
            self.run = None
        if self.run is None:
            config = self._config if self._config is not None else changed_arguments(args)
            self.run = Run(
                self._name or args.run_name or "hf-trainer", config, database_url=self._url
            )
        self._watch_forward(kwargs.get("model"))

    def on_log(self, args, state, control, logs=None, **kwargs):
        values = {k: v for k, v in (logs or {}).items() if isinstance(v, int | float)}
        if values:
            self.run.log(step=state.global_step, **values)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        values = {k: v for k, v in (metrics or {}).items() if isinstance(v, int | float)}
        if values:
            self.run.log(step=state.global_step, **values)

    def on_step_end(self, args, state, control, optimizer=None, lr_scheduler=None, **kwargs):
        self.run.progress(state.global_step, state.max_steps or None, "training", unit="steps")
        self._held += self.run.commands()
        commands = _shared(self._held, state.global_step, self.sync_every)
        if commands is self._held or commands:
            self._held = []
        for cmd in commands:
            if cmd.kind == "stop":
                control.should_training_stop = True
                self.run.ack(cmd, True, f"stopping at step {state.global_step}")
            elif cmd.kind == "set_lr":
                if optimizer is None:
                    self.run.ack(cmd, False, "the Trainer has no optimizer yet")
                else:
                    self.run.ack(cmd, *scale_torch_lr(optimizer, [lr_scheduler], cmd))
            elif cmd.kind == "save":
                control.should_save = True
                self.run.ack(
                    cmd, True, f"checkpoint at step {state.global_step} in {args.output_dir}"
                )
            elif cmd.kind == "custom":
                run_custom(self.run, cmd, self.on_command)
            else:
                self.run.ack(cmd, False, f"unknown command {cmd.kind!r}")
        return control

    def _watch_forward(self, model: Any) -> None:
        """Wrap the model's forward so that an exception in it ends a run this callback started
        as crashed even when the script catches it around `train()` (no hook is called then)."""
        if model is None or "forward" in vars(model):
            return
        original, callback = model.forward, self

        def forward(*args, **kwargs):
            try:
                return original(*args, **kwargs)
            except BaseException as exc:
                callback._crashed(exc)
                raise

        model.forward = forward
        self._watched = model

    def _unwatch_forward(self) -> None:
        model, self._watched = self._watched, None
        if model is not None:
            vars(model).pop("forward", None)

    def _crashed(self, exc: BaseException) -> None:
        self._unwatch_forward()
        self.run = report_crash(self.run, exc, owned=self._owned, what="training")

    def on_train_end(self, args, state, control, **kwargs):
        self._unwatch_forward()
        if self._owned and self.run is not None:
            self.run.close()
            self.run = None
