"""The watcher: runs reported by the real client, turned into outbox rows by watch_once()."""

from __future__ import annotations

import math
import os
import signal
import threading

import pytest

from steward import db
from steward.features import Services
from steward.telegram.outbox import Outbox
from steward.training import bookkeeping, control, store
from steward.training.control import ControlError
from steward.training.job import build_feature, live_key
from tests.training.helpers import send
from tests.training.world import CHAT, LOST_AFTER, STALL_AFTER, UPDATE_EVERY


def new_rows(world, before: int):
    return world.rows()[before:]


def test_a_new_run_gets_one_live_message_edited_at_most_every_update_interval(world):
    watcher, run = world.watcher(), world.run()
    run.log(step=1, loss=2.5)
    run.flush()
    assert watcher.watch_once() == 1
    (live,) = world.rows()
    assert live.key == live_key(run.id) and live.chat_id == CHAT and live.edit is None
    assert "<b>resnet</b> (run 1) running on" in live.text
    assert "config: lr=0.1, batch=64" in live.text and "loss <b>2.5</b>" in live.text
    run.log(step=2, loss=1.5)
    run.flush()
    assert watcher.watch_once() == 0, "not yet: at most one edit every TRAINING_UPDATE_EVERY"
    world.clock.skip(UPDATE_EVERY)
    assert watcher.watch_once() == 1
    edit = world.rows()[-1]
    assert edit.edit == live.key and "step 2" in edit.text and "loss <b>1.5</b>" in edit.text
    world.clock.skip(UPDATE_EVERY)
    assert watcher.watch_once() == 0, "no news, no edit"
    run.close()


def test_a_finished_run_gets_a_final_report_with_its_chart(world):
    watcher = world.watcher()
    with world.run("mnist") as run:
        for step in range(1, 11):
            run.log(step=step, loss=1 / step, val_loss=1.2 / step + (0.05 if step == 10 else 0))
        run.flush()
        watcher.watch_once()
    before = len(world.rows())
    assert watcher.watch_once() == 2  # the live message's last edit, the report
    final_edit, report = new_rows(world, before)
    assert final_edit.edit == live_key(run.id) and "✅" in final_edit.text
    assert report.key == f"training:{run.id}:end" and report.photo.startswith(b"\x89PNG")
    assert "<b>mnist</b> (run 1) finished after" in report.caption and "10 steps" in report.caption
    assert "val_loss <b>0.17</b> (best 0.1333 at step 9)" in report.caption
    assert report.urgent is False
    assert watcher.watch_once() == 0
    assert world.watcher().watch_once() == 0, "a restarted worker says nothing again"


def test_a_crash_is_reported_with_the_exception_and_the_traceback_tail(world):
    watcher = world.watcher()
    with pytest.raises(MemoryError), world.run("llm") as run:
        run.log(step=1, loss=3.0)
        raise MemoryError("CUDA out of memory <tried to allocate 2 GiB>")
    watcher.watch_once()
    (report,) = [r for r in world.rows() if r.key == f"training:{run.id}:end"]
    assert report.urgent is True
    assert "💥 <b>llm</b> (run 1) crashed" in report.caption
    assert (
        "<b>MemoryError</b>: CUDA out of memory &lt;tried to allocate 2 GiB&gt;" in report.caption
    )
    assert "<pre>" in report.caption and "in test_a_crash_is_reported" in report.caption


def test_nan_loss_alerts_at_once_and_only_once(world):
    watcher, run = world.watcher(), world.run()
    for step in range(1, 5):
        run.log(step=step, loss=1.0, acc=0.5)
    run.flush()
    watcher.watch_once()
    run.log(step=5, loss=math.nan)
    run.log(step=6, loss=math.inf, acc=math.nan)
    run.flush()
    watcher.watch_once()
    run.log(step=7, loss=math.nan)
    run.flush()
    watcher.watch_once()
    alerts = [r for r in world.rows() if ":nan:" in (r.key or "")]
    assert len(alerts) == 1
    assert alerts[0].urgent is True
    assert alerts[0].text.startswith("💥 <b>resnet</b> (run 1): <b>loss</b> is nan at step 5.")
    run.close()


def test_a_loss_spike_far_above_its_recent_median_alerts_but_noise_does_not(world):
    watcher, run = world.watcher(), world.run()
    for step in range(1, 31):
        run.log(step=step, loss=0.30 + 0.03 * math.sin(step))  # a noisy but healthy loss
    run.flush()
    watcher.watch_once()
    assert not [t for t in world.texts() if "jumped" in t]
    run.log(step=31, loss=4.2)
    run.flush()
    watcher.watch_once()
    (spike,) = [t for t in world.texts() if "jumped" in t]
    assert "<b>loss</b> jumped to 4.2 at step 31, against a recent median of 0.3" in spike
    run.close()


def test_a_silent_run_is_reported_stalled_once_and_its_return_as_a_reply(world):
    watcher, run = world.watcher(), world.run()
    run.log(step=1, loss=1.0)
    run.flush()
    watcher.watch_once()
    world.clock.skip(STALL_AFTER + 1)
    # The client's thread touches last_seen_at every second; at the skipped clock it has too.
    with world.engine.begin() as conn:
        conn.execute(store.runs.update().values(last_seen_at=world.clock()))
    watcher.watch_once()
    (stalled,) = [r for r in world.rows() if r.key.startswith(f"training:{run.id}:stalled:")]
    assert stalled.urgent is True
    assert "no sign of life for 5m" in stalled.text and f"(pid {os.getpid()})" in stalled.text
    # Its thread still reaches the store, so the process lives: the loop itself is stuck.
    assert "stuck?" in stalled.text
    assert watcher.watch_once() == 0
    world.clock.skip(-(STALL_AFTER + 1))  # the run reports again, at the real time
    run.log(step=2, loss=0.9)
    run.flush()
    watcher.watch_once()
    (back,) = [r for r in world.rows() if r.key.endswith(":back")]
    assert back.reply_to == stalled.key and "is reporting again" in back.text
    run.close()


def test_a_promise_to_report_later_holds_off_the_stall_alert(world):
    watcher, run = world.watcher(), world.run()
    run.log(step=1, loss=1.0)
    run.expect(3600)  # a long validation ahead
    run.flush()
    world.clock.skip(STALL_AFTER * 10)
    watcher.watch_once()
    assert not [t for t in world.texts() if "no sign of life" in t]
    run.close()


def test_what_a_run_answers_goes_back_to_the_chat_that_asked(world):
    watcher, run = world.watcher(), world.run()
    run.flush()
    with world.engine.begin() as conn:
        asked = store.add_command(conn, run.id, "set_lr", {"value": 0.05}, db.utcnow(), "777")
    run.flush()
    (cmd,) = run.commands()
    assert cmd.id == asked
    run.ack(cmd, True, "learning rate 0.1 -> 0.05")
    run.flush()
    watcher.watch_once()
    watcher.watch_once()
    (answer,) = [r for r in world.rows() if r.key == f"training:cmd:{asked}"]
    assert answer.chat_id == "777"
    assert answer.text == "👍 <b>resnet</b> (run 1), learning rate: learning rate 0.1 -&gt; 0.05"
    run.close()


def test_a_command_the_run_never_read_is_answered_when_the_run_ends(world):
    watcher, run = world.watcher(), world.run()
    run.flush()
    run.close()
    send(world.engine, run.id, "save", None)  # too late: nobody reads it any more
    watcher.watch_once()
    (answer,) = [r for r in world.rows() if (r.key or "").startswith("training:cmd:")]
    assert "not applied: the run ended before it read this command" in answer.text


def test_two_workers_watching_one_store_say_everything_once(world):
    """Every claim is a conditional update: watchers racing in threads never both announce."""
    watchers = [world.watcher(), world.watcher()]
    run = world.run("shared")
    for step in range(1, 6):
        run.log(step=step, loss=1 / step)
    run.log(step=6, loss=math.nan)
    run.flush()
    race(watchers)  # the live message and the NaN alert
    world.clock.skip(UPDATE_EVERY)
    run.log(step=7, loss=0.1)
    run.flush()
    race(watchers)  # one progress edit
    run.close()
    race(watchers)  # the end: its edit and the report
    keys = [r.key for r in world.rows()]
    assert keys.count(live_key(run.id)) == 1
    assert keys.count(f"training:{run.id}:end") == 1
    assert len([k for k in keys if ":nan:" in k]) == 1
    progress = [r for r in world.rows() if r.edit == live_key(run.id) and "@" in r.key]
    assert len(progress) == 1
    assert len(keys) == 5


def race(watchers) -> None:
    barrier = threading.Barrier(len(watchers))
    errors: list[BaseException] = []

    def go(watcher) -> None:
        barrier.wait()
        try:
            for _ in range(3):
                watcher.watch_once()
        except BaseException as exc:  # reported below: a thread's error would vanish
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(w,)) for w in watchers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_status_lines_count_running_and_stalled_runs(world):
    watcher, run = world.watcher(), world.run("bert")
    run.flush()
    assert watcher.status_lines() == ["training: 1 running (1 bert), 1 run in the store"]
    run.close()
    assert watcher.status_lines() == [
        "training: 0 running, 1 run in the store; the last, 1 bert, finished"
    ]
    feature = build_feature(watcher_services(world))
    assert feature.enabled and [j.name for j in feature.jobs] == ["training.watch"]
    names = [c.name for c in feature.commands]
    assert names == ["runs", "compare", "run", "plot", "stop", "setlr", "save", "cmd", "forget"]


def watcher_services(world) -> Services:
    outbox = Outbox(world.engine, CHAT, clock=world.clock)
    return Services(settings=world.settings, engine=world.engine, outbox=outbox, clock=world.clock)


def test_a_killed_run_is_marked_lost_once_and_commands_to_it_are_refused(world, script):
    proc = script(
        f"""
        import time
        from steward.training import Run
        run = Run("killed", database_url={world.url!r})
        run.log(step=1, loss=1.0)
        run.flush()
        print("ready", flush=True)
        while True:
            time.sleep(0.01)
        """
    )
    assert proc.stdout.readline().strip() == "ready"
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    watcher, alive = world.watcher(), world.run("alive")
    with world.engine.connect() as conn:
        killed = bookkeeping.find_run(conn, "killed")
    pending = send(world.engine, killed.id, "save", None)  # sent before anyone knew
    watcher.watch_once()
    world.clock.skip(LOST_AFTER + 1)
    # The other run goes on reporting: at the skipped clock, its loop and thread have too.
    with world.engine.begin() as conn:
        now = world.clock()
        conn.execute(
            store.runs.update()
            .where(store.runs.c.id == alive.id)
            .values(last_seen_at=now, last_heartbeat_at=now)
        )
    watcher.watch_once()
    watcher.watch_once()
    lost = [r for r in world.rows() if r.key == f"training:{killed.id}:end"]
    assert len(lost) == 1 and lost[0].urgent is True
    assert "is lost" in (lost[0].text or lost[0].caption)
    (answer,) = [r for r in world.rows() if r.key == f"training:cmd:{pending}"]
    assert "the run was lost before it read this command" in answer.text
    with world.engine.connect() as conn:
        assert store.get_run(conn, killed.id).state == "lost"
    with pytest.raises(ControlError, match=r"is lost: nothing heard from it since .* /forget"):
        control.pick_run(world.engine, str(killed.id), active=True)
    # Without an id, the one run still alive is meant: the lost one no longer makes it ambiguous.
    assert control.pick_run(world.engine, None, active=True).id == alive.id
    with pytest.raises(ControlError, match="still reporting"):
        control.forget(world.engine, str(alive.id))
    control.forget(world.engine, str(killed.id))
    with world.engine.connect() as conn:
        assert store.get_run(conn, killed.id) is None
        assert store.series(conn, killed.id) == {}
    alive.close()


def test_a_crash_report_shows_the_machines_memory_at_the_end(world):
    watcher = world.watcher()
    with pytest.raises(MemoryError), world.run() as run:
        run.log(step=1, loss=1.0)
        run.flush()
        watcher.watch_once()
        raise MemoryError("CUDA out of memory")
    watcher.watch_once()
    (live,) = [r for r in world.rows() if r.key == live_key(run.id)]
    assert "RAM " in live.text and "GiB (this process " in live.text
    (end,) = [r for r in world.rows() if r.key == f"training:{run.id}:end"]
    report = end.caption or end.text
    assert "MemoryError" in report and "\nat the end: RAM " in report
