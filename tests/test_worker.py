"""The worker as a user runs it: `python bot.py` started as a subprocess."""

from __future__ import annotations

import pytest

from tests.worker_process import WorkerProcess, clean_env


def test_it_starts_with_an_empty_environment_and_says_what_is_on_and_off(tmp_path):
    with WorkerProcess(clean_env(), tmp_path) as worker:
        worker.wait_ready()
        worker.wait_for(r"notifications go to this log")
        worker.wait_for(r"posting: on - .*dry-run")
        worker.wait_for(r"monitoring: ")
        worker.wait_for(r"training: ")
        status, took = worker.terminate()
    assert status == 0
    assert took < 5
    assert (tmp_path / "steward.sqlite").exists(), "the default store is a SQLite file here"
    assert "Traceback" not in worker.output


def test_sigterm_and_sigint_stop_it_cleanly_within_five_seconds(tmp_path):
    for signal_name in ("SIGTERM", "SIGINT"):
        with WorkerProcess(clean_env(), tmp_path) as worker:
            worker.wait_ready()
            import signal as sig

            worker.proc.send_signal(getattr(sig, signal_name))
            assert worker.proc.wait(timeout=5) == 0
            worker.wait_for(rf"received {signal_name}")
            worker.wait_for(r"stopped")


def test_it_logs_and_exits_78_when_the_postgres_schema_is_behind(pg_url, tmp_path):
    with WorkerProcess(clean_env(DATABASE_URL=pg_url), tmp_path) as worker:
        assert worker.proc.wait(timeout=30) == 78
    assert "python bot.py migrate" in worker.output
    assert "Traceback" not in worker.output


def test_migrate_then_run_on_postgres(pg_url, tmp_path):
    with WorkerProcess(clean_env(DATABASE_URL=pg_url), tmp_path, "migrate") as migrate:
        assert migrate.proc.wait(timeout=60) == 0
    with WorkerProcess(clean_env(DATABASE_URL=pg_url), tmp_path) as worker:
        worker.wait_ready()
        assert worker.terminate()[0] == 0


@pytest.mark.parametrize("command", ["--help", "status", "config"])
def test_the_other_subcommands_run_without_configuration(tmp_path, command):
    with WorkerProcess(clean_env(), tmp_path, command) as worker:
        assert worker.proc.wait(timeout=60) == 0, worker.output


@pytest.mark.parametrize("command", [(), ("migrate",)])
def test_an_unreachable_database_is_one_line_without_its_password(tmp_path, command):
    env = clean_env(DATABASE_URL="postgres://app:Hidden-Pw-77@127.0.0.1:9/app")
    with WorkerProcess(env, tmp_path, *command) as worker:
        assert worker.proc.wait(timeout=60) == 69
    line = worker.wait_for(r"cannot use the database")
    assert "127.0.0.1:9/app" in line and "Connection refused" in line
    assert "Hidden-Pw-77" not in worker.output and "Traceback" not in worker.output
