"""`StewardCallback` for Lightning 2: epoch metrics, agreed stop across processes, crashes.

from steward.training.lightning import StewardCallback
trainer = Trainer(callbacks=[StewardCallback(name="resnet")])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl

from steward.training._callbacks import CustomHandler, checkpoint_path, run_custom, scale_torch_lr
from steward.training.client import Command, Run


def _logged_now(trainer: pl.Trainer) -> dict[str, Any]:
    """The epoch values the running loop (training or validation) logged, as Lightning will
    hand them to its loggers; trainer.callback_metrics mixes in the other loop's older values."""
    results = trainer._results
    return dict(results.metrics(False)["callback"]) if results is not None else {}


class StewardCallback(pl.Callback):
    """Logs each validation's and each training epoch's values at the step they belong to, the
    learning rate, and batch progress (a heartbeat with an ETA) during the epoch.

    Commands are read on rank 0 and broadcast, so every process applies the same learning rate
    and saves together; stop is agreed through the strategy's boolean reduction.
    """

    def __init__(
        self,
        run: Run | None = None,
        *,
        name: str | None = None,
        config: dict[str, Any] | None = None,
        database_url: str | None = None,
        checkpoint_dir: str | Path = "checkpoints",
        on_command: CustomHandler | None = None,
    ) -> None:
        self.run = run
        self._owned = run is None
        self._name, self._config, self._url = name, config, database_url
        self.checkpoint_dir = checkpoint_dir
        self.on_command = on_command

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.run is None and stage == "fit":
            config = self._config if self._config is not None else dict(pl_module.hparams)
            name = self._name or type(pl_module).__name__
            self.run = Run(name, config, database_url=self._url)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx) -> None:
        # A heartbeat and the ETA within the epoch: memory only, so it is cheap every batch.
        total = trainer.num_training_batches
        total = total if isinstance(total, int) else None  # inf for an iterable dataset
        desc = f"epoch {trainer.current_epoch + 1}"
        self.run.progress(batch_idx + 1, total, desc, unit="batches")

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Only what this validation logged: callback_metrics also holds the training values of
        # the previous epoch until the current training epoch ends.
        if not trainer.sanity_checking:
            self._log(trainer, _logged_now(trainer))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Called before the epoch's values reach callback_metrics: read them from the results.
        values = _logged_now(trainer)
        for i, optimizer in enumerate(trainer.optimizers):
            name = "learning_rate" if i == 0 else f"learning_rate/{i}"
            values.setdefault(name, optimizer.param_groups[0]["lr"])
        self._log(trainer, values)
        self._handle_commands(trainer)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if self._owned and self.run is not None:
            self.run.close(error=exception)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._owned and self.run is not None and stage == "fit":
            self.run.close()
            self.run = None

    def _log(self, trainer: pl.Trainer, values: dict[str, Any]) -> None:
        if values:
            self.run.log(step=trainer.global_step, **values)

    def _handle_commands(self, trainer: pl.Trainer) -> None:
        local = self.run.commands() if self.run.active else []
        commands: list[Command] = trainer.strategy.broadcast(local, src=0)
        stop = False
        for cmd in commands:
            if cmd.kind == "stop":
                stop = True
                self.run.ack(cmd, True, f"stopping after epoch {trainer.current_epoch + 1}")
            elif cmd.kind == "set_lr":
                self.run.ack(cmd, *self._set_lr(trainer, cmd))
            elif cmd.kind == "save":
                self._save(trainer, cmd)
            elif cmd.kind == "custom":
                run_custom(self.run, cmd, self.on_command)
            else:
                self.run.ack(cmd, False, f"unknown command {cmd.kind!r}")
        if trainer.strategy.reduce_boolean_decision(stop, all=False):
            trainer.should_stop = True

    def _set_lr(self, trainer: pl.Trainer, cmd: Command) -> tuple[bool, str]:
        if not trainer.optimizers:
            return False, "this model has no optimizer"
        schedulers = [c.scheduler for c in trainer.lr_scheduler_configs]
        results = [scale_torch_lr(opt, schedulers, cmd) for opt in trainer.optimizers]
        ok = all(r[0] for r in results)
        return ok, "; ".join(r[1] for r in results)

    def _save(self, trainer: pl.Trainer, cmd: Command) -> None:
        default = f"run{self.run.id}-step{trainer.global_step}"
        path = checkpoint_path(self.checkpoint_dir, cmd, default, ".ckpt")
        try:
            trainer.save_checkpoint(path)
        except Exception as exc:
            self.run.ack(cmd, False, f"saving failed: {type(exc).__name__}: {exc}")
        else:
            self.run.ack(cmd, True, f"saved {path}")
