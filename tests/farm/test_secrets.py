"""Bots' tokens at rest: encrypted with STEWARD_SECRET_KEY, rotated, refused without a key,
and stored by `auth_tool.py x --bot NAME` without ever being printed."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from steward import db
from steward.farm import secrets
from steward.farm.store import bot_secrets
from tests.worker_process import ROOT, clean_env

TOKEN, SECRET = "1-supersecrettoken", "supersecretsecret"
FILE = {
    "format": "steward-farm/1",
    "bots": [
        {
            "name": "poet",
            "template": "%s!",
            "targets": ["x"],
            "secrets": {"x_access_token": TOKEN, "x_access_secret": SECRET},
        }
    ],
}


def raw_values(store_url) -> list[str]:
    engine = db.make_engine(store_url)
    with engine.connect() as conn:
        values = list(conn.scalars(sa.select(bot_secrets.c.value)))
    engine.dispose()
    return values


def test_the_raw_column_never_holds_a_token(bots_cli, key, store_url, tmp_path):
    (tmp_path / "farm.json").write_text(json.dumps(FILE))
    assert bots_cli("import", "farm.json", env={"STEWARD_SECRET_KEY": key})[0] == 0
    values = raw_values(store_url)
    assert len(values) == 2
    for value in values:
        assert TOKEN not in value and SECRET not in value
        assert Fernet(key.encode()).decrypt(value.encode()).decode() in (TOKEN, SECRET)


def test_without_a_key_the_farm_refuses_to_store_tokens_and_says_how_to_make_one(
    bots_cli, store_url, tmp_path
):
    (tmp_path / "farm.json").write_text(json.dumps(FILE))
    status, _, err = bots_cli("import", "farm.json")
    assert status == 64
    assert err.strip().splitlines() == [f"bots import: {secrets.NO_KEY}"]
    assert "Fernet.generate_key()" in err
    assert raw_values(store_url) == []
    assert "no farm bots yet" in bots_cli("list")[1]  # all or nothing


def test_an_old_key_listed_second_still_reads_and_rekey_moves_to_the_new(
    bots_cli, key, store_url, tmp_path
):
    (tmp_path / "farm.json").write_text(json.dumps(FILE))
    bots_cli("import", "farm.json", env={"STEWARD_SECRET_KEY": key})
    new = Fernet.generate_key().decode()
    both = {"STEWARD_SECRET_KEY": f"{new},{key}"}
    exported = json.loads(bots_cli("export", "--with-secrets", env=both)[1])
    assert exported["bots"][0]["secrets"]["x_access_token"] == TOKEN
    assert bots_cli("rekey", env=both)[1].strip().startswith("re-encrypted 2 token(s)")
    only_new = {"STEWARD_SECRET_KEY": new}
    exported = json.loads(bots_cli("export", "--with-secrets", env=only_new)[1])
    assert exported["bots"][0]["secrets"]["x_access_secret"] == SECRET
    status, _, err = bots_cli("export", "--with-secrets", env={"STEWARD_SECRET_KEY": key})
    assert status == 64 and "a key STEWARD_SECRET_KEY no longer lists" in err


def test_a_malformed_key_stops_with_the_config_status(bots_cli):
    status, _, err = bots_cli("list", env={"STEWARD_SECRET_KEY": "not-a-key"})
    assert status == 78
    assert "STEWARD_SECRET_KEY holds a value that is not a Fernet key" in err
    assert "not-a-key" not in err


@pytest.fixture
def x_fake():
    from tests.fakes.x_api import FakeX

    with FakeX(consumer_key="ck", consumer_secret="cs") as server:
        server.add_user("42", "alice", "42-old-token", "42-old-secret", name="Alice A.")
        yield server


def test_auth_tool_stores_a_bots_tokens_encrypted_and_prints_none(x_fake, key, tmp_path):
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    env = clean_env(
        X_CONSUMER_KEY="ck",
        X_CONSUMER_SECRET="cs",
        X_API_URL=x_fake.url,
        DATABASE_URL=url,
        STEWARD_SECRET_KEY=key,
        PYTHONUNBUFFERED="1",
    )
    added = subprocess.run(
        [sys.executable, str(ROOT / "bot.py"), "bots", "add", "poet", "--template", "%s", "--to=x"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "auth_tool.py"), "x", "--bot", "poet"],
        env=env, cwd=tmp_path, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        seen = ""
        while not (found := re.search(r"oauth_token=([^&\s]+)", seen)):
            line = proc.stdout.readline()
            assert line, seen
            seen += line
        x_fake.authorize(found.group(1), "42")
        rest, _ = proc.communicate(x_fake.pin_for(found.group(1)) + "\n", timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, seen + rest
    assert "Stored the tokens for bot poet, encrypted" in rest
    engine = db.make_engine(url)
    with engine.connect() as conn:
        stored = secrets.get(conn, secrets.Vault(key), "poet")
    engine.dispose()
    assert set(stored) == {"x_access_token", "x_access_secret"}
    assert stored["x_access_token"] not in seen + rest and stored["x_access_secret"] not in rest
    assert stored["x_access_token"] not in str(raw_values(url))


def test_auth_tool_for_a_bot_without_a_key_stops_before_the_pin_flow(x_fake, tmp_path):
    env = clean_env(X_CONSUMER_KEY="ck", X_CONSUMER_SECRET="cs", X_API_URL=x_fake.url)
    done = subprocess.run(
        [sys.executable, str(ROOT / "auth_tool.py"), "x", "--bot", "poet"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 78
    assert done.stderr.strip() == secrets.NO_KEY
    assert x_fake.calls == []


def test_bots_secret_stores_a_token_read_from_stdin_encrypted(
    bots_cli, key, store_url, monkeypatch
):
    import io

    bots_cli("add", "poet", "--template", "%s", "--to", "mastodon")
    monkeypatch.setattr("sys.stdin", io.StringIO("mastodon-token-value\n"))
    status, out, _ = bots_cli(
        "secret", "poet", "mastodon_access_token", env={"STEWARD_SECRET_KEY": key}
    )
    assert (status, out.strip()) == (0, "stored mastodon_access_token for poet, encrypted")
    assert "mastodon-token-value" not in str(raw_values(store_url))
    assert "tokens stored: mastodon_access_token" in bots_cli("show", "poet")[1]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    status, _, err = bots_cli(
        "secret", "poet", "mastodon_access_token", env={"STEWARD_SECRET_KEY": key}
    )
    assert status == 64 and "no value given" in err
