"""The Keras 3 callback, driving a real `fit` on the torch backend."""

from __future__ import annotations

import datetime as dt
import os
import time

import pytest
import sqlalchemy as sa

from tests.training.helpers import need

os.environ["KERAS_BACKEND"] = "torch"
keras = need("keras", "Keras is not installed (requirements-ml.txt)")
np = need("numpy", "numpy is not installed")

from steward.training import Run, store  # noqa: E402
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


class Pause(keras.callbacks.Callback):
    """Makes each batch slow and, mid-epoch, reads what the store knows about the run."""

    def __init__(self, engine, run):
        super().__init__()
        self.engine, self.run, self.seen = engine, run, []

    def on_train_batch_end(self, batch, logs=None):
        if batch == 1:
            self.before = time.time()
        if batch == 2:
            self.run.flush()
            self.seen.append(only_run(self.engine))


def test_it_sends_a_heartbeat_and_batch_progress_during_an_epoch(url, engine):
    run = Run("long epochs", database_url=url)
    pause = Pause(engine, run)
    model = tiny_model(keras.optimizers.SGD(learning_rate=0.01))
    model.fit(*data(), epochs=2, batch_size=16, verbose=0, callbacks=[StewardCallback(run), pause])
    run.close()
    first, second = pause.seen
    assert first.progress["desc"] == "epoch 1" and second.progress["desc"] == "epoch 2"
    assert (second.progress["n"], second.progress["total"], second.progress["unit"]) == (
        3,
        4,
        "batches",
    )
    assert second.progress["eta"] >= 0
    # The last heartbeat is the batch just done, not the previous epoch's end: a stall deadline
    # shorter than an epoch sees a live run.
    assert second.last_heartbeat_at.timestamp() >= pause.before - 0.01
    stall = dt.timedelta(seconds=0.5)
    with engine.connect() as conn:
        assert store.overdue_runs(conn, second.last_heartbeat_at + stall * 0.9, stall) == []
    assert series(engine, run.id)["learning_rate"][1] == pytest.approx([0.01, 0.01])


class Boom(keras.layers.Layer):
    armed = False

    def call(self, x):
        if Boom.armed:
            raise FloatingPointError("activations overflowed")
        return x


def test_a_crash_the_script_catches_around_fit_is_recorded_as_a_crash(url, engine):
    class Arm(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            Boom.armed = True

    model = keras.Sequential([keras.Input((4,)), Boom(), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    callback = StewardCallback(name="caught", database_url=url)
    try:
        model.fit(*data(), epochs=3, batch_size=16, verbose=0, callbacks=[Arm(), callback])
    except FloatingPointError:
        pass  # a sweep moves on to its next trial
    finally:
        Boom.armed = False
    row = only_run(engine)
    assert row.state == "crashed" and row.error_type == "FloatingPointError"
    assert "activations overflowed" in row.error_message
    assert row.step_unit == "epoch"  # Keras reports once per epoch: messages and charts say so
    # the next fit with the same callback is a new run, and an honest one
    model.fit(*data(), epochs=1, batch_size=16, verbose=0, callbacks=[callback])
    with engine.connect() as conn:
        states = conn.execute(sa.select(store.runs.c.state).order_by(store.runs.c.id)).scalars()
        assert list(states) == ["crashed", "finished"]
