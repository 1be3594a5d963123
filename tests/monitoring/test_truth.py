"""The chart, the exit code and the alert tell the same truth: a value past its band is bad
wherever it is shown, a check that cannot run is refused, and no credential is ever shown."""

from __future__ import annotations

import pytest

from steward.config import EXIT_CONFIG, load_settings
from steward.monitoring.checks import Runner
from steward.monitoring.cli import run_check, run_checks_once
from steward.monitoring.redact import redact, secrets_in
from steward.monitoring.spec import parse_checks
from tests.clock import Clock
from tests.monitoring import pychecks
from tests.monitoring.targets import T0, Route
from tests.test_config import run_bot

QUEUE = "queue=python:tests.monitoring.pychecks:value alert_above=10"


@pytest.fixture(autouse=True)
def fifty():
    pychecks.result = 50.0
    yield
    pychecks.result = 1.0


def test_it_exits_non_zero_when_a_value_is_past_its_band():
    settings = load_settings({"CHECKS": QUEUE}, env_file=None)
    table, status = run_checks_once(settings)
    assert status == 1
    assert "bad" in table.splitlines()[1]
    assert "50, alert above 10" in table


async def test_a_sample_past_its_band_is_stored_as_bad(server):
    (spec,) = parse_checks(f"api={server.url('/api')} alert_above=0.001")
    server.routes["/api"] = Route(200, b"ok", delay=0.01)
    runner = Runner(clock=Clock(T0))
    try:
        sample = await runner.run_one(spec)
    finally:
        await runner.aclose()
    assert sample.status == "bad"
    assert sample.details["band"] == "high"


def test_it_refuses_a_python_check_whose_module_cannot_be_imported(capsys):
    settings = load_settings({"CHECKS": "q=python:no_such_module_here:f"}, env_file=None)
    assert run_check(settings) == EXIT_CONFIG
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "no_such_module_here" in err and "Traceback" not in err


def test_the_worker_refuses_a_python_check_whose_function_is_missing(tmp_path):
    env = {
        "CHECKS": "q=python:tests.monitoring.pychecks:nope",
        "DATABASE_URL": f"sqlite:///{tmp_path}/s.sqlite",
        "PYTHONPATH": str(run_bot.__globals__["ROOT"]),
    }
    result = run_bot(env, "check")
    assert result.returncode == EXIT_CONFIG
    assert "nope" in result.stderr and "Traceback" not in result.stderr


SECRET_CHECKS = (
    "a=https://user:hunter2pass@api.example.com/health?token=tok-123456&x=1; "
    "b=https://api.example.com/q?apikey=KEY-987654; "
    "n=evm:https://mainnet.infura.io/v3/0123456789abcdef0123456789abcdef"
    "|https://ref.example/rpc?api_key=refkey-1111,https://ref2.example/"
)
SECRETS = ("hunter2pass", "tok-123456", "KEY-987654", "0123456789abcdef0123456789abcdef", "refkey")


def test_redaction_hides_passwords_secret_query_values_and_key_like_path_segments():
    shown = redact(SECRET_CHECKS)
    for secret in SECRETS:
        assert secret not in shown
    assert "https://***@api.example.com/health?token=***&x=1" in shown
    assert "https://mainnet.infura.io/v3/***" in shown
    assert set(secrets_in(SECRET_CHECKS)) >= {"hunter2pass", "tok-123456", "KEY-987654"}


def test_config_prints_checks_without_their_credentials(tmp_path):
    env = {"CHECKS": SECRET_CHECKS, "DATABASE_URL": f"sqlite:///{tmp_path}/s.sqlite"}
    result = run_bot(env, "config", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "api.example.com" in result.stdout
    for secret in SECRETS:
        assert secret not in result.stdout + result.stderr


def test_a_config_error_about_checks_shows_no_credential(tmp_path):
    env = {
        "CHECKS": "a=https://u:hunter2pass@api.example.com/?token=tok-123456 timeout=never",
        "DATABASE_URL": f"sqlite:///{tmp_path}/s.sqlite",
    }
    for command in ("check", "config"):
        result = run_bot(env, command, cwd=tmp_path)
        assert result.returncode == EXIT_CONFIG
        out = result.stdout + result.stderr
        assert "hunter2pass" not in out and "tok-123456" not in out
