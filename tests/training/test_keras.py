"""The Keras 3 callback, driving a real `fit` on the torch backend."""

from __future__ import annotations

import os

import pytest

from tests.training.helpers import need

os.environ["KERAS_BACKEND"] = "torch"
keras = need("keras", "Keras is not installed (requirements-ml.txt)")
np = need("numpy", "numpy is not installed")

from steward.training import Run  # noqa: E402
from steward.training.keras import StewardCallback, current_lr  # noqa: E402
from tests.training.helpers import only_run, send, series, status  # noqa: E402


def tiny_model(optimizer):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dense(1)])
    model.compile(optimizer=optimizer, loss="mse")
    return model


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    return x, x.sum(axis=1, keepdims=True)


class Owner(keras.callbacks.Callback):
    """Plays the worker: inserts commands into the store while training runs."""

    def __init__(self, engine, run, plan):
        super().__init__()
        self.engine, self.run, self.plan, self.sent = engine, run, plan, []

    def on_epoch_end(self, epoch, logs=None):
        for kind, argument in self.plan.get(epoch, []):
            self.sent.append(send(self.engine, self.run.id, kind, argument))
        self.run.flush()


# Keras 3.15 saving torch 2.13 tensors goes through numpy's old __array__ protocol; a library
# warning, not ours, and saving works.
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_it_reports_epochs_and_applies_set_lr_and_stop_during_fit(url, engine, tmp_path):
    run = Run("keras", database_url=url)
    model = tiny_model(keras.optimizers.SGD(learning_rate=0.01))
    plan = {0: [("set_lr", {"value": 0.05})], 2: [("stop", None), ("save", {"path": "../x"})]}
    owner = Owner(engine, run, plan)
    callback = StewardCallback(run, checkpoint_dir=tmp_path)
    history = model.fit(*data(), epochs=10, batch_size=16, verbose=0, callbacks=[owner, callback])
    run.close()
    assert len(history.history["loss"]) == 3
    assert current_lr(model.optimizer) == pytest.approx(0.05)
    steps, losses = series(engine, run.id)["loss"]
    assert steps == [1, 2, 3]
    assert losses == pytest.approx([float(v) for v in history.history["loss"]])
    set_lr, stop, save = (status(engine, c) for c in owner.sent)
    assert set_lr.ok and "0.01 -> 0.05" in set_lr.message
    assert stop.ok and save.ok and (tmp_path / "x.keras").exists()
    assert only_run(engine).state == "stopped"


def test_it_refuses_to_set_a_learning_rate_that_a_schedule_drives(url, engine):
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.9)
    model = tiny_model(keras.optimizers.SGD(learning_rate=schedule))
    callback = StewardCallback(name="scheduled", database_url=url)

    class Owner2(keras.callbacks.Callback):
        sent: list[int] = []

        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                self.sent.append(send(engine, callback.run.id, "set_lr", {"factor": 2}))
                callback.run.flush()

    model.fit(*data(), epochs=2, batch_size=16, verbose=0, callbacks=[Owner2(), callback])
    refused = status(engine, Owner2.sent[0])
    assert refused.acked and refused.ok is False and "ExponentialDecay" in refused.message
    row = only_run(engine)
    assert row.name == "scheduled" and row.state == "finished"
