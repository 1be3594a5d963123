"""The training client: cheap on the loop, reliable to the store, honest about endings."""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import signal
import threading
import time

import pytest
import sqlalchemy as sa

from steward import db
from steward.training import Run, RunLogHandler, store
from tests.training.conftest import create_tables
from tests.training.helpers import series


def rows(engine, table, **where):
    stmt = sa.select(table)
    for key, value in where.items():
        stmt = stmt.where(table.c[key] == value)
    with engine.connect() as conn:
        return conn.execute(stmt).all()


def the_run(engine, run_id):
    with engine.connect() as conn:
        return store.get_run(conn, run_id)


def test_the_training_thread_never_touches_the_store(url, engine):
    """log(), event(), expect(), track() and commands() only touch memory: every SQL statement
    of the run comes from its background thread (bench/training.py measures the cost)."""
    threads: set[int] = set()

    def seen(*_args) -> None:
        threads.add(threading.get_ident())

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", seen)
    try:
        with Run("quiet loop", database_url=url) as run:
            threads.clear()  # registration waits for the writer; from here on it is the loop
            for step in run.track(range(2_000), desc="epoch 1", bar=False):
                run.log(step=step, loss=0.5, acc=0.9)
                if step % 500 == 0:
                    run.event(f"step {step}")
                    run.expect(60)
                    run.commands()
            assert run.flush(10)
            assert threading.get_ident() not in threads
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", seen)
    assert threads, "the writer thread did write"
    assert len(series(engine, run.id)["loss"][0]) == 2_000


def test_it_delivers_metrics_events_progress_and_config(url, engine):
    config = {"lr": 0.1, "layers": (2, 3), "api_key": "hunter2", "eps": math.inf}
    with Run("delivery", config, database_url=url) as run:
        assert run.id is not None
        for step in range(5):
            run.log(step=step, loss=1.0 / (step + 1))
        run.log(loss=0.1)  # no step: one after the last
        run.log(step=9, loss=math.nan, weights=[1, 2])
        logger = logging.getLogger("tests.training.delivery")
        logger.addHandler(RunLogHandler(run))
        logger.warning("disk is %d%% full", 93)
        logger.info("not an event")
        for _ in run.track(range(4), desc="epoch 1", bar=False):
            pass
        assert run.flush()
        live = the_run(engine, run.id)
        assert live.state == "running" and live.progress == {"desc": "epoch 1", "n": 4, "total": 4}
    with engine.connect() as conn:
        loss = store.series(conn, run.id)["loss"]
        names = store.metric_names(conn, run.id)
        events = [e.message for e in store.recent_events(conn, run.id, limit=10)]
    assert loss[0] == [0, 1, 2, 3, 4, 5, 9]
    assert loss[1][5] == pytest.approx(0.1) and math.isnan(loss[1][6])
    assert names == ["loss"]
    assert any("disk is 93% full" in e for e in events)
    assert any("'weights' is not a single number" in e for e in events)
    assert not any("not an event" in e for e in events)
    ended = the_run(engine, run.id)
    assert ended.state == "finished" and ended.ended_at is not None
    assert ended.config == {"lr": 0.1, "layers": [2, 3], "api_key": "***", "eps": "inf"}
    assert ended.pid == os.getpid() and ended.host


def test_it_marks_a_run_crashed_with_the_exception_and_the_traceback_tail(url, engine):
    def train(run):
        run.log(step=1, loss=2.0)
        raise RuntimeError("CUDA out of memory")

    with pytest.raises(RuntimeError), Run("crash", database_url=url) as run:
        train(run)
    row = the_run(engine, run.id)
    assert row.state == "crashed" and row.error_type == "RuntimeError"
    assert row.error_message == "CUDA out of memory"
    assert "in train" in row.traceback_tail
    assert row.traceback_tail.splitlines()[-1] == "RuntimeError: CUDA out of memory"
    assert len(rows(engine, store.metrics, run_id=run.id)) == 1


def test_an_acknowledged_stop_ends_the_run_as_stopped(url, engine):
    with Run("stop", database_url=url) as run:
        with engine.begin() as conn:
            store.add_command(conn, run.id, "stop", None, db.utcnow())
        assert run.flush()
        (cmd,) = run.commands()
        run.ack(cmd, True, "stopping after epoch 3")
    assert the_run(engine, run.id).state == "stopped"


def test_commands_round_trip_from_the_store_to_the_loop_and_back(url, engine):
    with Run("commands", database_url=url) as run:
        with engine.begin() as conn:
            first = store.add_command(conn, run.id, "set_lr", {"factor": 0.5}, db.utcnow())
            second = store.add_command(conn, run.id, "custom", {"name": "eval"}, db.utcnow())
        assert run.flush()
        got = run.commands()
        assert [(c.id, c.kind) for c in got] == [(first, "set_lr"), (second, "custom")]
        assert got[0].new_lr(0.02) == pytest.approx(0.01) and got[0].describe_lr() == "x0.5"
        assert run.flush() and run.commands() == []  # each command is handed over once
        run.ack(got[0], True, "learning rate 0.02 -> 0.01")
        run.ack(got[1], False, "this training script does not handle custom commands")
        assert run.flush()
        with engine.connect() as conn:
            done = store.command_status(conn, first)
            refused = store.command_status(conn, second)
    assert done.fetched and done.acked and done.ok and done.message.endswith("0.01")
    assert refused.acked and refused.ok is False


def test_other_ranks_write_nothing_and_receive_no_commands(url, engine, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    with Run("rank1", database_url=url) as run:
        run.log(step=1, loss=1.0)
        run.expect(60)
        assert list(run.track([1, 2])) == [1, 2]
        assert run.flush() and run.commands() == []
    assert not run.active and run.id is None
    assert rows(engine, store.runs) == [] and rows(engine, store.metrics) == []


def test_it_keeps_metrics_while_the_store_is_unreachable_and_delivers_them_later(tmp_path, caplog):
    # The store's folder does not exist yet: SQLite cannot open the file, a real outage.
    place = tmp_path / "store"
    url = f"sqlite:///{place / 'steward.sqlite'}"
    caplog.set_level(logging.INFO, "steward.training")
    run = Run("outage", database_url=url, register_timeout=1.0)
    assert run.id is None
    slowest = 0
    for step in range(5000):
        start = time.perf_counter_ns()
        run.log(step=step, loss=float(step))
        slowest = max(slowest, time.perf_counter_ns() - start)
        if step % 1000 == 0:
            run._writer.retry_at = 0.0  # skip the backoff: every flush here meets the outage
            assert not run.flush(2)
    # Waiting on the store would take a register timeout (1 s here); 50 ms leaves room for a
    # garbage collection or a busy machine's scheduler, which is not what this is about.
    assert slowest < 50_000_000  # no log() call ever waited on the store
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "unreachable" in warnings[0].getMessage()

    # The store comes back: a ready folder moved into place in one step.
    ready = tmp_path / "ready"
    ready.mkdir()
    engine = db.make_engine(f"sqlite:///{ready / 'steward.sqlite'}")
    create_tables(engine)
    engine.dispose()
    ready.rename(place)
    deadline = time.monotonic() + 10
    while run.id is None and time.monotonic() < deadline:
        run._writer.retry_at = 0.0
        run.flush(2)
    run.close()
    engine = db.make_engine(url)
    with engine.connect() as conn:
        steps = store.series(conn, run.id)["loss"][0]
    assert steps == list(range(5000))
    assert the_run(engine, run.id).state == "finished"
    assert any("reachable again" in r.getMessage() for r in caplog.records)
    engine.dispose()


def test_it_keeps_only_the_newest_points_up_to_its_bound_and_says_so(tmp_path):
    place = tmp_path / "store"
    url = f"sqlite:///{place / 'steward.sqlite'}"
    run = Run("bounded", database_url=url, max_points=100, register_timeout=0.5)
    for batch in range(5):
        for step in range(batch * 50, batch * 50 + 50):
            run.log(step=step, loss=1.0)
        run._writer.retry_at = 0.0  # skip the backoff: every flush here meets the outage
        assert not run.flush(2)
    assert run.dropped == 150
    place.mkdir()
    engine = db.make_engine(url)
    create_tables(engine)
    run._writer.retry_at = 0.0
    run.close()
    with engine.connect() as conn:
        steps = store.series(conn, run.id)["loss"][0]
        events = [e.message for e in store.recent_events(conn, run.id)]
    assert steps == list(range(150, 250))
    assert any("150 metric points were dropped" in e for e in events)
    engine.dispose()


def test_an_unusable_database_url_is_refused_at_once():
    with pytest.raises(ValueError):
        Run("bad", database_url="mysql://u@h/db")


def test_an_uncaught_exception_in_a_training_process_is_recorded(url, engine, script):
    proc = script(
        f"""
        from steward.training import Run
        run = Run("subprocess crash", database_url={url!r})
        run.log(step=1, loss=3.0)
        def validate():
            raise ZeroDivisionError("division by zero in validation")
        validate()
        """
    )
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "ZeroDivisionError" in err  # the previous hook still ran
    (row,) = rows(engine, store.runs)
    assert row.state == "crashed" and row.error_type == "ZeroDivisionError"
    assert "in validate" in row.traceback_tail
    assert len(rows(engine, store.metrics, run_id=row.id)) == 1


def test_a_failing_side_thread_is_an_event_and_the_run_goes_on(url, engine, script):
    proc = script(
        f"""
        import threading
        from steward.training import Run
        run = Run("uploader crash", database_url={url!r})
        def upload():
            raise OSError("bucket is unreachable")
        t = threading.Thread(target=upload, name="uploader")
        t.start()
        t.join()
        for step in range(50):
            run.log(step=step, loss=1.0)
        """
    )
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "bucket is unreachable" in err
    (row,) = rows(engine, store.runs)
    assert row.state == "finished" and len(rows(engine, store.metrics)) == 50
    (event,) = rows(engine, store.run_events, run_id=row.id)
    assert event.level == "error" and "'uploader' failed: OSError: bucket" in event.message


def test_sys_exit_0_inside_a_run_block_finishes_the_run(url, engine, script):
    proc = script(
        f"""
        import sys
        from steward.training import Run
        with Run("early exit", database_url={url!r}) as run:
            run.log(step=1, loss=1.0)
            sys.exit(0)
        """
    )
    proc.communicate(timeout=60)
    assert proc.returncode == 0
    (row,) = rows(engine, store.runs)
    assert row.state == "finished" and row.traceback_tail is None


def test_sys_exit_with_a_failure_status_inside_a_run_block_is_a_crash(url, engine, script):
    proc = script(
        f"""
        import sys
        from steward.training import Run
        with Run("bad exit", database_url={url!r}):
            sys.exit(3)
        """
    )
    proc.communicate(timeout=60)
    assert proc.returncode == 3
    (row,) = rows(engine, store.runs)
    assert row.state == "crashed" and row.error_type == "SystemExit"


def test_a_script_that_simply_ends_finishes_its_run(url, engine, script):
    proc = script(
        f"""
        from steward.training import Run
        run = Run("plain", database_url={url!r})
        for step in range(3):
            run.log(step=step, loss=1.0)
        """
    )
    proc.communicate(timeout=60)
    (row,) = rows(engine, store.runs)
    assert row.state == "finished" and len(rows(engine, store.metrics)) == 3


def test_a_killed_training_process_leaves_a_running_run_with_a_stale_heartbeat(url, engine, script):
    proc = script(
        f"""
        import time
        from steward.training import Run
        run = Run("killed", database_url={url!r})
        run.log(step=0, loss=1.0)
        run.flush()
        print("ready", flush=True)
        while True:
            time.sleep(0.01)
        """
    )
    assert proc.stdout.readline().strip() == "ready"
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    (row,) = rows(engine, store.runs)
    assert row.state == "running" and row.ended_at is None
    stall = dt.timedelta(seconds=300)
    with engine.connect() as conn:
        assert store.overdue_runs(conn, db.utcnow(), stall) == []
        later = row.last_heartbeat_at + stall + dt.timedelta(seconds=1)
        assert [r.id for r in store.overdue_runs(conn, later, stall)] == [row.id]


def test_a_promise_to_report_later_moves_the_stall_deadline(url, engine):
    stall = dt.timedelta(seconds=300)
    with Run("promise", database_url=url) as run:
        run.expect(3600)
        assert run.flush()
        row = the_run(engine, run.id)
        assert row.expect_until - row.last_heartbeat_at == dt.timedelta(seconds=3600)
        with engine.connect() as conn:
            later = row.last_heartbeat_at + stall + dt.timedelta(minutes=10)
            assert store.overdue_runs(conn, later, stall) == []


def test_a_stalled_run_that_reports_again_is_running_again(url, engine):
    with Run("revive", database_url=url) as run:
        row = the_run(engine, run.id)
        with engine.begin() as conn:
            assert store.mark_stalled(conn, run.id, row.last_heartbeat_at)
        assert run.flush()  # the thread is alive but the loop said nothing: still stalled
        assert the_run(engine, run.id).state == "stalled"
        run.log(step=1, loss=1.0)
        assert run.flush()
        assert the_run(engine, run.id).state == "running"


def test_it_creates_its_tables_on_a_fresh_sqlite_file(tmp_path):
    try:
        db.head_revision()
    except Exception as exc:
        pytest.skip(f"the migration chain is not complete yet ({type(exc).__name__})")
    url = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    with Run("fresh", database_url=url) as run:
        run.log(step=1, loss=1.0)
    engine = db.make_engine(url)
    assert the_run(engine, run.id).state == "finished"
    assert db.current_revision(engine) == db.head_revision()
    engine.dispose()


def test_importing_the_client_loads_no_ml_framework(script):
    proc = script(
        """
        import sys
        import steward.training
        from steward.training import Run, RunLogHandler
        loaded = {"torch", "keras", "lightning", "transformers", "numpy", "tqdm"} & set(sys.modules)
        print(sorted(loaded))
        """
    )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.strip() == "[]"


def test_a_crash_report_carries_no_terminal_colour_codes(url, engine):
    with pytest.raises(ValueError), Run("colourful", database_url=url) as run:
        raise ValueError("\x1b[1mInvalid shape\x1b[0m: expected \x1b[31m(4,)\x1b[0m")
    row = the_run(engine, run.id)
    assert row.error_message == "Invalid shape: expected (4,)"
    assert "\x1b" not in row.traceback_tail and "Invalid shape: expected (4,)" in row.traceback_tail
