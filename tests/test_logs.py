"""Logs: one line per event on stdout, every secret replaced, chatty loggers quiet at INFO."""

from __future__ import annotations

import logging

import pytest

from steward import logs


@pytest.fixture
def captured(capsys):
    previous = logging.getLogger().handlers[:], logging.getLogger().level
    yield capsys
    root = logging.getLogger()
    root.handlers[:] = previous[0]
    root.setLevel(previous[1])


def test_it_redacts_known_secrets_and_bot_tokens_in_messages_and_tracebacks(captured):
    logs.setup("DEBUG", ["s3cret-password", "xkey-abcdef"])
    log = logging.getLogger("tweepy.client")
    log.info("POST with key xkey-abcdef to postgres://u:s3cret-password@h/db")
    logging.getLogger("httpx").debug(
        "HTTP Request: POST https://api.telegram.org/bot987654321:AAHk-unknown-token-value_x/getMe"
    )
    try:
        raise RuntimeError("login failed for s3cret-password")
    except RuntimeError:
        logging.getLogger("steward.x").exception("it broke")
    out = captured.readouterr().out
    assert "s3cret-password" not in out and "xkey-abcdef" not in out
    assert "AAHk-unknown-token-value_x" not in out
    assert out.count("***") >= 4


def test_it_writes_one_line_per_event_with_level_and_logger(captured):
    logs.setup("INFO")
    logging.getLogger("steward.demo").info("first\nsecond")
    out = captured.readouterr().out.strip().splitlines()
    assert len(out) == 1
    assert " INFO steward.demo: first ⏎ second" in out[0]


def test_per_request_and_per_run_lines_are_quiet_at_info(captured):
    logs.setup("INFO")
    logging.getLogger("httpx").info('HTTP Request: GET https://example.com "HTTP/1.1 200 OK"')
    logging.getLogger("apscheduler.executors.default").info('Job "x" executed successfully')
    logging.getLogger("httpx").warning("but warnings still show")
    out = captured.readouterr().out
    assert "HTTP Request" not in out and "executed successfully" not in out
    assert "but warnings still show" in out
