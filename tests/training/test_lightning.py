"""The Lightning 2 callback, driving a real `Trainer.fit` on CPU."""

from __future__ import annotations

import pytest

from tests.training.helpers import need

torch = need("torch", "torch is not installed (requirements-ml.txt)")
pl = need("lightning.pytorch", "Lightning is not installed")

from steward.training import Run  # noqa: E402
from steward.training.lightning import StewardCallback  # noqa: E402
from tests.training.helpers import only_run, send, series, status  # noqa: E402

# Warnings of the libraries about each other or about tiny test loaders, not about this code:
# Lightning 2.6 uses a torch pytree API that torch 2.13 deprecates.
pytestmark = [
    pytest.mark.filterwarnings("ignore:The '.*dataloader' does not have many workers"),
    pytest.mark.filterwarnings("ignore:`isinstance\\(treespec, LeafSpec\\)` is deprecated"),
]


class Tiny(pl.LightningModule):
    def __init__(self, lr: float = 0.1):
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(4, 1)
        self.val_history: list[float] = []
        self._val: list[float] = []

    def training_step(self, batch, _):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, _):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self._val.append(float(loss))
        self.log("val_loss", loss)

    def on_validation_epoch_end(self):
        if not self.trainer.sanity_checking:
            self.val_history.append(sum(self._val) / len(self._val))
        self._val = []

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=self.hparams.lr)
        return [optimizer], [torch.optim.lr_scheduler.StepLR(optimizer, step_size=100)]


def loader():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 4, generator=g)
    data = torch.utils.data.TensorDataset(x, x.sum(dim=1, keepdim=True))
    return torch.utils.data.DataLoader(data, batch_size=8)


class Owner(pl.Callback):
    """Plays the worker: inserts commands into the store while training runs."""

    def __init__(self, engine, run, plan):
        self.engine, self.run, self.plan, self.sent = engine, run, plan, []

    def on_train_epoch_end(self, trainer, pl_module):
        for kind, argument in self.plan.get(trainer.current_epoch, []):
            self.sent.append(send(self.engine, self.run.id, kind, argument))
        self.run.flush()


def trainer(callbacks, tmp_path):
    return pl.Trainer(
        max_epochs=5,
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        logger=False,
        callbacks=callbacks,
        default_root_dir=tmp_path,
        num_sanity_val_steps=0,
    )


def test_it_reports_epochs_and_applies_set_lr_save_and_stop_during_fit(url, engine, tmp_path):
    run = Run("lightning", database_url=url)
    plan = {0: [("set_lr", {"factor": 0.5})], 1: [("stop", None), ("save", None)]}
    owner = Owner(engine, run, plan)
    model = Tiny()
    fit = trainer([owner, StewardCallback(run, checkpoint_dir=tmp_path)], tmp_path)
    fit.fit(model, loader(), loader())
    run.close()
    assert fit.current_epoch == 2  # stopped after the second epoch of five
    optimizer, scheduler = fit.optimizers[0], fit.lr_scheduler_configs[0].scheduler
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.05)
    assert scheduler.base_lrs == pytest.approx([0.05])
    stored = series(engine, run.id)
    assert stored["train_loss"][0] == [4, 8]
    assert stored["val_loss"][1] == pytest.approx(model.val_history, rel=1e-5)
    set_lr, stop, save = (status(engine, c) for c in owner.sent)
    assert set_lr.ok and "0.1 -> 0.05" in set_lr.message
    assert stop.ok and save.ok and list(tmp_path.glob("*.ckpt"))
    assert only_run(engine).state == "stopped"


def test_a_crash_inside_fit_is_recorded_by_the_callback_that_started_the_run(url, engine, tmp_path):
    class Broken(Tiny):
        def training_step(self, batch, index):
            if self.current_epoch == 1:
                raise FloatingPointError("loss exploded")
            return super().training_step(batch, index)

    fit = trainer([StewardCallback(name="broken", database_url=url)], tmp_path)
    with pytest.raises(FloatingPointError):
        fit.fit(Broken(), loader(), loader())
    row = only_run(engine)
    assert row.state == "crashed" and row.error_type == "FloatingPointError"
    assert row.config == {"lr": 0.1} and "loss exploded" in row.traceback_tail


class Capture(pl.loggers.Logger):
    """What Lightning hands its loggers: the values the store must hold."""

    def __init__(self):
        super().__init__()
        self.values: dict[str, list[float]] = {}

    @property
    def name(self):
        return "capture"

    @property
    def version(self):
        return 0

    def log_hyperparams(self, params, *args, **kwargs):
        pass

    def log_metrics(self, metrics, step=None):
        for key, value in metrics.items():
            self.values.setdefault(key, []).append(float(value))


class Peek(pl.Callback):
    """Reads the run's row in the middle of each epoch."""

    def __init__(self, engine, run):
        self.engine, self.run, self.seen = engine, run, []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch_idx == 2:
            self.run.flush()
            self.seen.append(only_run(self.engine).progress)


def test_it_stores_lightnings_own_values_at_the_step_they_belong_to(url, engine, tmp_path):
    run = Run("lightning values", database_url=url)
    capture, peek = Capture(), Peek(engine, run)
    fit = pl.Trainer(
        max_epochs=3,
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        logger=capture,
        log_every_n_steps=1,
        callbacks=[StewardCallback(run), peek],
        default_root_dir=tmp_path,
        num_sanity_val_steps=0,
    )
    fit.fit(Tiny(), loader(), loader())
    run.close()
    stored = series(engine, run.id)
    assert stored["train_loss"][0] == [4, 8, 12]
    assert stored["train_loss"][1] == pytest.approx(capture.values["train_loss"], rel=1e-6)
    assert stored["val_loss"][0] == [4, 8, 12]
    assert stored["val_loss"][1] == pytest.approx(capture.values["val_loss"], rel=1e-6)
    assert stored["learning_rate"][1] == pytest.approx([0.1, 0.1, 0.1])
    assert [p["desc"] for p in peek.seen] == ["epoch 1", "epoch 2", "epoch 3"]
    assert all((p["n"], p["total"], p["unit"]) == (3, 4, "batches") for p in peek.seen)
