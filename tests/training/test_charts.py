"""A run's chart: panels chosen by what metrics mean, marks where things happened."""

from __future__ import annotations

import math

from steward.training import Run, charts, store
from tests.training.helpers import send

HF_LOGS = [
    "loss",
    "grad_norm",
    "learning_rate",
    "epoch",
    "eval_loss",
    "eval_accuracy",
    "eval_runtime",
    "eval_samples_per_second",
    "eval_steps_per_second",
    "train_runtime",
    "train_samples_per_second",
    "train_steps_per_second",
    "total_flos",
    "train_loss",
]


def test_panels_are_losses_results_and_the_learning_rate_never_bookkeeping():
    assert charts.by_meaning(HF_LOGS) == [
        "eval_loss",
        "loss",
        "train_loss",
        "eval_accuracy",
        "learning_rate",
        "grad_norm",
    ]


def test_the_chart_marks_a_learning_rate_change_and_where_the_loss_diverged(url, engine):
    with Run("marked", database_url=url) as run:
        for step in range(5):
            run.log(step=step, loss=1.0 / (step + 1), learning_rate=0.1)
        run.flush()
        sent = send(engine, run.id, "set_lr", {"factor": 0.5})
        run.flush()
        (cmd,) = run.commands()
        assert cmd.id == sent
        run.ack(cmd, True, "learning rate 0.1 -> 0.05")
        run.flush()
        for step in range(5, 9):
            run.log(step=step, loss=math.nan if step >= 7 else 0.2, learning_rate=0.05)
    with engine.connect() as conn:
        series = store.series(conn, run.id)
        assert charts.markers(conn, run.id, series) == [(4, "lr x0.5"), (7, "diverged")]
    with engine.connect() as conn:
        row = store.get_run(conn, run.id)
    png = charts.render(engine, row)
    assert png is not None and png.startswith(b"\x89PNG")
