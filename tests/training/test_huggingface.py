"""The Hugging Face callback, driving a real `Trainer.train` on a tiny torch model, offline."""

from __future__ import annotations

import pytest

from tests.training.helpers import need

torch = need("torch", "torch is not installed (requirements-ml.txt)")
transformers = need("transformers", "transformers is not installed")

from steward.training import Run  # noqa: E402
from steward.training.huggingface import StewardCallback  # noqa: E402
from tests.training.helpers import only_run, send, series, status  # noqa: E402


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def forward(self, x, labels=None):
        out = self.layer(x)
        return {"loss": torch.nn.functional.mse_loss(out, labels), "logits": out}


class Pairs(torch.utils.data.Dataset):
    def __init__(self, n=64):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 4, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "labels": self.x[i].sum().unsqueeze(0)}


class Owner(transformers.TrainerCallback):
    """Plays the worker: inserts commands into the store while training runs."""

    def __init__(self, engine, run, plan):
        self.engine, self.run, self.plan, self.sent = engine, run, plan, []

    def on_step_end(self, args, state, control, **kwargs):
        for kind, argument in self.plan.get(state.global_step, []):
            self.sent.append(send(self.engine, self.run.id, kind, argument))
            self.run.flush()


def test_it_logs_and_applies_set_lr_save_and_stop_during_train(url, engine, tmp_path):
    run = Run("hf", database_url=url)
    plan = {3: [("set_lr", {"factor": 0.5})], 6: [("save", None), ("stop", None)]}
    owner = Owner(engine, run, plan)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=20,
        per_device_train_batch_size=8,
        learning_rate=0.1,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        remove_unused_columns=False,
    )
    trainer = transformers.Trainer(
        model=Tiny(), args=args, train_dataset=Pairs(), callbacks=[owner, StewardCallback(run)]
    )
    trainer.train()
    run.close()
    assert trainer.state.global_step == 6
    assert trainer.lr_scheduler.base_lrs == pytest.approx(
        [0.05] * len(trainer.lr_scheduler.base_lrs)
    )
    steps, rates = series(engine, run.id)["learning_rate"]
    assert steps == [1, 2, 3, 4, 5, 6]
    # Linear decay over 20 steps: the rate logged at step s is the one step s used.
    unchanged = [0.1 * (21 - s) / 20 for s in steps]
    assert rates[:3] == pytest.approx(unchanged[:3])
    assert rates[3:] == pytest.approx([r / 2 for r in unchanged[3:]])
    assert len(series(engine, run.id)["loss"][0]) == 6
    set_lr, save, stop = (status(engine, c) for c in owner.sent)
    assert set_lr.ok and "schedule scaled x0.5" in set_lr.message
    assert save.ok and list(tmp_path.glob("checkpoint-6"))
    assert stop.ok and only_run(engine).state == "stopped"


def test_the_callback_can_start_and_finish_its_own_run(url, engine, tmp_path):
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=4,
        logging_steps=2,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        remove_unused_columns=False,
        run_name="tiny-ft",
    )
    callback = StewardCallback(database_url=url)
    transformers.Trainer(
        model=Tiny(), args=args, train_dataset=Pairs(), callbacks=[callback]
    ).train()
    row = only_run(engine)
    assert row.name == "tiny-ft" and row.state == "finished"
    # Only what differs from TrainingArguments' defaults, not its hundred-odd fields.
    assert row.config["max_steps"] == 4 and row.config["run_name"] == "tiny-ft"
    assert "per_device_train_batch_size" not in row.config and len(row.config) < 15
    assert series(engine, row.id)["loss"][0] == [2, 4]


def test_a_crash_the_script_catches_around_train_is_recorded_as_a_crash(url, engine, tmp_path):
    class Breaks(Tiny):
        calls = 0

        def forward(self, x, labels=None):
            Breaks.calls += 1
            if Breaks.calls == 3:
                raise FloatingPointError("logits overflowed")
            return super().forward(x, labels)

    args = transformers.TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=6,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        remove_unused_columns=False,
    )
    callback = StewardCallback(name="sweep trial", database_url=url)
    trainer = transformers.Trainer(
        model=Breaks(), args=args, train_dataset=Pairs(), callbacks=[callback]
    )
    with pytest.raises(FloatingPointError):
        trainer.train()  # a sweep would catch this and go on to the next trial
    row = only_run(engine)
    assert row.state == "crashed" and row.error_type == "FloatingPointError"
    assert "logits overflowed" in row.error_message
    assert "forward" not in vars(trainer.model)  # the model is left as it was
