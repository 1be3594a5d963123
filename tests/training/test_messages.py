"""What the run messages say about numbers."""

from __future__ import annotations

from steward.training import messages
from steward.training.health import Best


def test_the_best_value_is_not_repeated_when_the_latest_value_is_as_good():
    latest = {"val_acc": (20, 1.0), "loss": (20, 0.3)}
    bests = {"val_acc": Best(1.0, 16), "loss": Best(0.25, 12)}
    lines = messages.metric_lines(latest, bests)
    assert lines == ["loss <b>0.3</b> (best 0.25 at step 12)", "val_acc <b>1</b>"]


def test_a_run_that_logs_per_epoch_says_epoch():
    lines = messages.metric_lines({"loss": (9, 0.3)}, {"loss": Best(0.2, 4)}, step_unit="epoch")
    assert lines == ["loss <b>0.3</b> (best 0.2 at epoch 4)"]
