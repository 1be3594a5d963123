"""A training run as its owner lives it: `python bot.py` and a training script as two processes
sharing the store, the owner's phone played by the fake Bot API.

For each framework (Keras 3, Lightning 2, the Hugging Face Trainer) a real tiny model trains with
its callback; the owner sees the started message and its progress edits, changes the learning
rate and stops the run from the chat, and gets the final report with a chart. A training
process killed with SIGKILL is reported by the worker, which lives outside it.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from tests.fakes.telegram_api import FakeTelegram
from tests.training.helpers import need_installed
from tests.worker_process import WorkerProcess, clean_env

TOKEN = "123456:TEST-token-for-training-e2e"
OWNER = 42
STALL_AFTER = 10  # seconds: the smallest TRAINING_STALL_AFTER allowed

# Each script trains for up to 400 short epochs (0.2 s each) so that the owner has time to act,
# and prints the learning rate it ended with.
KERAS = """
import os, time
os.environ["KERAS_BACKEND"] = "torch"
import keras, numpy as np
from steward.training.keras import StewardCallback, current_lr

class Slow(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        time.sleep(0.2)

x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="mse")
model.fit(x, x.sum(axis=1, keepdims=True), epochs=400, batch_size=16, verbose=0,
          callbacks=[Slow(), StewardCallback(name="keras-e2e", database_url={url!r})])
print("FINAL_LR", current_lr(model.optimizer), flush=True)
"""

LIGHTNING = """
import time, torch, lightning.pytorch as pl
from steward.training.lightning import StewardCallback

class Tiny(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
    def training_step(self, batch, _):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss
    def on_train_epoch_end(self):
        time.sleep(0.2)
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

x = torch.randn(64, 4)
data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)),
                                   batch_size=16)
trainer = pl.Trainer(max_epochs=400, accelerator="cpu", logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False,
                     callbacks=[StewardCallback(name="lightning-e2e", database_url={url!r})])
module = Tiny()
trainer.fit(module, data)
print("FINAL_LR", trainer.optimizers[0].param_groups[0]["lr"], flush=True)
"""

HUGGINGFACE = """
import time, torch
from transformers import Trainer, TrainerCallback, TrainingArguments
from steward.training.huggingface import StewardCallback

class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
    def forward(self, x, labels=None):
        out = self.layer(x)
        return {{"loss": torch.nn.functional.mse_loss(out, labels), "logits": out}}

class Data(torch.utils.data.Dataset):
    def __init__(self):
        self.x = torch.randn(64, 4)
    def __len__(self):
        return 64
    def __getitem__(self, i):
        return {{"x": self.x[i], "labels": self.x[i].sum(0, keepdim=True)}}

class Slow(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        time.sleep(0.2)

args = TrainingArguments(output_dir={out!r}, max_steps=400, per_device_train_batch_size=16,
                         learning_rate=0.01, lr_scheduler_type="constant", logging_steps=2,
                         report_to="none", save_strategy="no", use_cpu=True, disable_tqdm=True,
                         remove_unused_columns=False)
trainer = Trainer(model=Tiny(), args=args, train_dataset=Data(),
                  callbacks=[Slow(), StewardCallback(name="hf-e2e", database_url={url!r})])
trainer.train()
print("FINAL_LR", trainer.optimizer.param_groups[0]["lr"], flush=True)
"""

FRAMEWORKS = {
    "keras": ("keras", KERAS),
    "lightning": ("lightning", LIGHTNING),
    "huggingface": ("transformers", HUGGINGFACE),
}


@pytest.fixture
def fake():
    with FakeTelegram(token=TOKEN, enforce_limits=False) as server:
        yield server


@pytest.fixture
def worker(fake, tmp_path):
    env = clean_env(
        TELEGRAM_TOKEN=TOKEN,
        TELEGRAM_API_URL=fake.url,
        TELEGRAM_CHAT_ID=str(OWNER),
        ALLOWED_USERS=str(OWNER),
        DATABASE_URL=f"sqlite:///{tmp_path}/steward.sqlite",
        TRAINING_UPDATE_EVERY="1",
        TRAINING_STALL_AFTER=str(STALL_AFTER),
    )
    with WorkerProcess(env, tmp_path) as process:
        process.wait_ready()
        yield process
        assert process.terminate()[0] == 0
    assert "Traceback" not in process.output


def html(message: dict) -> str:
    return message.get("html") or message.get("text") or ""


def wait_message(fake, contains: str, method: str | None = None, timeout: float = 60) -> dict:
    found: list[dict] = []

    def seen(f) -> bool:
        found[:] = [
            m
            for m in f.messages(OWNER)
            if contains in html(m) and (method is None or m["method"] == method)
        ]
        return bool(found)

    texts = lambda: [html(m)[:90] for m in fake.messages(OWNER)]  # noqa: E731
    assert fake.wait_for(seen, timeout=timeout), (contains, texts())
    return found[0]


def press(fake, message: dict, label: str) -> None:
    raw = message["reply_markup"]
    rows = (json.loads(raw) if isinstance(raw, str) else raw)["inline_keyboard"]
    button = next(b for row in rows for b in row if b["text"] == label)
    fake.push_callback(OWNER, OWNER, button["callback_data"], message["message_id"])


@pytest.mark.slow
@pytest.mark.parametrize("framework", list(FRAMEWORKS))
def test_the_owner_follows_steers_and_stops_a_real_training_run(
    framework, fake, worker, script, tmp_path
):
    module, code = FRAMEWORKS[framework]
    need_installed(module, f"{module} is not installed (requirements-ml.txt)")
    url = f"sqlite:///{tmp_path}/steward.sqlite"
    training = script(code.format(url=url, out=str(tmp_path / "hf")), cwd=tmp_path)
    try:
        started = wait_message(fake, "(run 1) running on", "sendMessage", timeout=120)
        assert "<code>" in html(started), "the command line is in the started message"
        counted = "epoch " if framework == "keras" else "step "  # Keras logs once per epoch
        edit = wait_message(fake, counted, "editMessageText")
        assert edit["message_id"] == started["message_id"], "progress edits the same message"

        fake.push_message(OWNER, OWNER, "/setlr 1 0.05")
        wait_message(fake, "Sent to <b>")
        applied = wait_message(fake, "👍")
        assert "learning rate" in html(applied) and "0.05" in html(applied)

        fake.push_message(OWNER, OWNER, "/stop 1")
        question = wait_message(fake, "? It stops at its next epoch or log.")
        press(fake, question, "Stop it")
        wait_message(fake, "Asked <b>")
        closed = lambda f: any(  # noqa: E731
            m["method"] == "editMessageReplyMarkup"
            and m["message_id"] == question["message_id"]
            and not m.get("reply_markup")
            for m in f.messages(OWNER)
        )
        assert fake.wait_for(closed, timeout=30), "the answered question's buttons go"
        out, err = training.communicate(timeout=120)
    finally:
        if training.poll() is None:
            training.kill()
            training.communicate()
    assert training.returncode == 0, err
    assert float(out.split("FINAL_LR")[-1]) == pytest.approx(0.05)
    stopped = wait_message(fake, "👍 <b>", timeout=30)
    report = wait_message(fake, "was stopped after", "sendPhoto", timeout=30)
    assert report["photo"], "the final report carries the run's chart"
    assert stopped


@pytest.mark.slow
def test_a_training_process_killed_with_sigkill_is_reported_stalled_and_nan_once(
    fake, worker, script, tmp_path
):
    url = f"sqlite:///{tmp_path}/steward.sqlite"
    training = script(
        f"""
        import math, time
        from steward.training import Run
        run = Run("doomed", {{"lr": 0.1}}, database_url={url!r})
        step = 0
        while True:
            step += 1
            run.log(step=step, loss=math.nan if step > 5 else 1.0 / step)
            time.sleep(0.2)
        """
    )
    try:
        wait_message(fake, "(run 1) running on", "sendMessage", timeout=60)
        wait_message(fake, "<b>loss</b> is nan at step 6")
        time.sleep(2)  # a few more NaNs reach the store
        os.kill(training.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        stalled = wait_message(fake, "no sign of life", timeout=STALL_AFTER + 30)
    finally:
        if training.poll() is None:
            training.kill()
        training.communicate()
    took = time.monotonic() - killed_at
    # The deadline, plus the watcher's 5 s cadence, plus the outbox's send.
    assert took < STALL_AFTER + 5 + 5, took
    assert "stalled or killed?" in html(stalled)
    nans = [m for m in fake.messages(OWNER) if "is nan" in html(m)]
    assert len(nans) == 1
