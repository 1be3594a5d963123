"""`python auth_tool.py telegram`: token checked, one message awaited, config lines printed."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
from dotenv import dotenv_values

from tests.fakes.telegram_api import FakeTelegram
from tests.worker_process import ROOT, clean_env

TOKEN = "123456:TEST-token-for-auth"


@pytest.fixture
def fake():
    with FakeTelegram(token=TOKEN, enforce_limits=False) as server:
        yield server


def auth_tool(env: dict[str, str], cwd, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "auth_tool.py"), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def send_later(fake, delay: float = 1.0) -> None:
    def push() -> None:
        time.sleep(delay)
        fake.push_message(4242, 4242, "hi", username="alice", first_name="Alice")

    threading.Thread(target=push, daemon=True).start()


def test_it_prints_the_heroku_line_for_the_first_message(fake, tmp_path):
    send_later(fake)
    result = auth_tool(
        clean_env(TELEGRAM_TOKEN=TOKEN, TELEGRAM_API_URL=fake.url),
        tmp_path,
        "telegram",
        "--wait",
        "20",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "heroku config:set TELEGRAM_CHAT_ID=4242 ALLOWED_USERS=4242" in result.stdout
    assert "Alice (@alice)" in result.stdout
    assert TOKEN not in result.stdout


def test_with_env_it_writes_dotenv_without_duplicating_keys(fake, tmp_path):
    (tmp_path / ".env").write_text("ALLOWED_USERS=7\nTELEGRAM_CHAT_ID=1\nPOST_INTERVAL=5\n")
    send_later(fake)
    env = clean_env(TELEGRAM_TOKEN=TOKEN, TELEGRAM_API_URL=fake.url)
    result = auth_tool(env, tmp_path, "telegram", "--env", "--wait", "20")
    assert result.returncode == 0, result.stdout + result.stderr
    values = dotenv_values(tmp_path / ".env")
    assert values == {"ALLOWED_USERS": "7,4242", "TELEGRAM_CHAT_ID": "4242", "POST_INTERVAL": "5"}
    text = (tmp_path / ".env").read_text()
    assert text.count("TELEGRAM_CHAT_ID=") == 1


def test_a_wrong_token_gets_one_clear_sentence(fake, tmp_path):
    env = clean_env(TELEGRAM_TOKEN="123456:WRONG-token-value", TELEGRAM_API_URL=fake.url)
    result = auth_tool(env, tmp_path, "telegram", "--wait", "2")
    assert result.returncode == 78
    assert "Telegram rejected TELEGRAM_TOKEN" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_no_token_and_no_network_each_get_a_sentence(tmp_path):
    result = auth_tool(clean_env(), tmp_path, "telegram")
    assert result.returncode == 78 and "TELEGRAM_TOKEN is not set" in result.stdout
    env = clean_env(TELEGRAM_TOKEN=TOKEN, TELEGRAM_API_URL="http://127.0.0.1:9")
    result = auth_tool(env, tmp_path, "telegram", "--wait", "2")
    assert result.returncode == 1 and "Cannot reach the Bot API" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_silence_ends_with_a_sentence_not_a_hang(fake, tmp_path):
    env = clean_env(TELEGRAM_TOKEN=TOKEN, TELEGRAM_API_URL=fake.url)
    result = auth_tool(env, tmp_path, "telegram", "--wait", "2")
    assert result.returncode == 1 and "No message arrived within 2 s" in result.stdout
