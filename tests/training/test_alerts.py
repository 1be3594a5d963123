"""The script's own alerts: run.alert() and metric rules given to Run(alerts=...)."""

from __future__ import annotations

import time

import pytest

from steward.training import client


def test_metric_alert_rules_speak_once_each_and_a_plateau_again_after_an_improvement(world):
    watcher = world.watcher()
    run = world.run(
        alerts={"val_acc": "below 0.8 after step 1000", "val_loss": "no improvement for 3 evals"}
    )
    accuracy = {500: 0.5, 1000: 0.85, 1500: 0.75, 2000: 0.7}  # low at 500: too early to judge
    losses = [0.9, 0.5, 0.6, 0.55, 0.52, 0.51, 0.4, 0.45, 0.46, 0.47]
    for i, loss in enumerate(losses):
        step = 500 * (i + 1)
        extra = {"val_acc": accuracy[step]} if step in accuracy else {}
        run.log(step=step, val_loss=loss, **extra)
        run.flush()
        watcher.watch_once()
    alerts = [t for t in world.texts() if "your alert" in t]
    assert alerts == [
        "🔔 <b>resnet</b> (run 1): <b>val_acc</b> is 0.75 at step 1500, below 0.8 (your alert: "
        "below 0.8 after step 1000).",
        "🔔 <b>resnet</b> (run 1): <b>val_loss</b> is 0.52 at step 2500, no better than its best "
        "0.5 (your alert: no improvement for 3 evals).",
        "🔔 <b>resnet</b> (run 1): <b>val_loss</b> is 0.47 at step 5000, no better than its best "
        "0.4 (your alert: no improvement for 3 evals).",
    ]
    run.close()


def test_a_bad_alert_rule_is_refused_with_one_sentence(world):
    with pytest.raises(ValueError, match=r"alert for 'val_acc': 'under 0.8' is not a rule; write"):
        world.run(alerts={"val_acc": "under 0.8"})
    with pytest.raises(ValueError, match="does not say whether higher or lower is better"):
        world.run(alerts={"throughput": "no improvement for 5 evals"})


def test_run_alert_reaches_the_chat_once_and_is_rate_limited(world, monkeypatch):
    watcher, run = world.watcher(), world.run()
    sent = [run.alert(f"checkpoint {i} uploaded") for i in range(5)]
    assert sent == [True, True, True, False, False]  # a burst of three, then held back
    monkeypatch.setattr(client, "ALERT_EVERY", 0.05)  # a refill every 50 ms, not every minute
    time.sleep(0.1)
    assert run.alert("\x1b[31mdisk\x1b[0m is 97% full", level="error")
    run.flush()
    watcher.watch_once()
    watcher.watch_once()
    alerts = [r for r in world.rows() if ":alert:" in (r.key or "")]
    assert [r.text for r in alerts] == [
        "💬 <b>resnet</b> (run 1): checkpoint 0 uploaded",
        "💬 <b>resnet</b> (run 1): checkpoint 1 uploaded",
        "💬 <b>resnet</b> (run 1): checkpoint 2 uploaded",
        "🚨 <b>resnet</b> (run 1): disk is 97% full (2 more alerts held back: rate limit)",
    ]
    assert [r.urgent for r in alerts] == [False, False, False, True]
    run.close()
