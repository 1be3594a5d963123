"""`auth_tool.py mastodon|bluesky --bot NAME`: the flows store a farm bot's account encrypted,
print no secret, check the key and the bot before any request, and the bot then posts with it."""

from __future__ import annotations

import datetime as dt
import io

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from steward import cli as bot_cli
from steward import db
from steward.auth import cli as auth_cli
from steward.farm import secrets
from steward.farm.job import Farm
from steward.farm.store import bot_secrets
from tests.clock import Clock
from tests.fakes.bluesky_api import FakeBluesky
from tests.fakes.mastodon_api import FakeMastodon
from tests.posting.helpers import services

HANDLE, APP_PASSWORD = "poet.bsky.social", "abcd-efgh-ijkl-mnop"
CLEARED = (
    "DATABASE_URL", "STEWARD_SECRET_KEY", "MASTODON_API_URL", "MASTODON_ACCESS_TOKEN",
    "BLUESKY_HANDLE", "BLUESKY_APP_PASSWORD", "BLUESKY_API_URL", "X_CONSUMER_KEY",
    "X_CONSUMER_SECRET", "DISPLAY", "WAYLAND_DISPLAY", "BROWSER",
)  # fmt: skip


class Typed(io.TextIOBase):
    """The person at the terminal: each line read is the next answer (a callable is asked then,
    as the Mastodon code exists only once the app is registered)."""

    def __init__(self, answers) -> None:
        self.answers = list(answers)

    def readline(self, size: int = -1) -> str:
        answer = self.answers.pop(0)
        return (answer() if callable(answer) else answer) + "\n"


class Terminal:
    """`python auth_tool.py ...` and `python bot.py bots ...`, in process, on one store."""

    def __init__(self, monkeypatch, capsys, caplog, url: str) -> None:
        self.monkeypatch, self.capsys, self.caplog, self.url = monkeypatch, capsys, caplog, url
        self.said = ""  # everything printed or logged so far

    def run(self, main, *args: str, env: dict[str, str] | None = None, typed=()) -> tuple:
        with self.monkeypatch.context() as m:
            m.setenv("DATABASE_URL", self.url)
            for name, value in (env or {}).items():
                m.setenv(name, value)
            m.setattr("sys.stdin", Typed(typed))
            status = main(list(args))
        out = self.capsys.readouterr()
        self.said += out.out + out.err + self.caplog.text
        return status, out.out, out.err

    def tool(self, *args: str, **kw) -> tuple:
        return self.run(auth_cli.main, *args, **kw)

    def bots(self, *args: str, **kw) -> tuple:
        return self.run(bot_cli.main, "bots", *args, **kw)

    def add_poet(self, to: str) -> None:
        status, _, err = self.bots(
            "add", "poet", "--template", "{Word} at dusk.", "--words", "owls,bats,moths",
            "--to", to,
        )  # fmt: skip
        assert status == 0, err

    def stored(self, key: str) -> tuple[dict[str, str], list[str]]:
        """The bot's secrets decrypted, and the raw column as it is."""
        engine = db.make_engine(self.url)
        try:
            with engine.connect() as conn:
                raw = list(conn.scalars(sa.select(bot_secrets.c.value)))
                return secrets.get(conn, secrets.Vault(key), "poet"), raw
        finally:
            engine.dispose()


@pytest.fixture
def key() -> str:
    return Fernet.generate_key().decode()


def _terminal(monkeypatch, capsys, caplog, tmp_path, url) -> Terminal:
    monkeypatch.chdir(tmp_path)
    for name in CLEARED:
        monkeypatch.delenv(name, raising=False)
    return Terminal(monkeypatch, capsys, caplog, url)


@pytest.fixture
def terminal(monkeypatch, capsys, caplog, tmp_path, sqlite_url) -> Terminal:
    return _terminal(monkeypatch, capsys, caplog, tmp_path, sqlite_url)


@pytest.fixture
def mastodon():
    with FakeMastodon() as server:
        yield server


@pytest.fixture
def bluesky():
    with FakeBluesky() as server:
        server.add_account(HANDLE, APP_PASSWORD)
        yield server


def approve(fake: FakeMastodon):
    """The code the instance shows once the person approves the newest app."""
    return lambda: fake.code_for(list(fake.apps)[-1])


def test_mastodon_stores_the_instance_and_token_encrypted_and_prints_neither_secret(
    terminal, key, mastodon
):
    terminal.add_poet("mastodon")
    env = {"STEWARD_SECRET_KEY": key}
    status, out, err = terminal.tool(
        "mastodon", mastodon.url, "--bot", "poet", env=env, typed=[approve(mastodon)]
    )
    assert status == 0, out + err
    assert out.splitlines()[-1] == (
        "Stored the tokens for bot poet, encrypted with STEWARD_SECRET_KEY "
        "(mastodon_api_url, mastodon_access_token)."
    )
    [token] = mastodon.tokens
    stored, raw = terminal.stored(key)
    assert stored == {"mastodon_api_url": mastodon.url, "mastodon_access_token": token}
    assert token not in str(raw) and token not in terminal.said
    # Again, without the instance: the bot's own is the default; the new token replaces the old.
    status, out, err = terminal.tool(
        "mastodon", "--bot", "poet", env=env, typed=[approve(mastodon)]
    )
    assert status == 0, out + err
    assert len(mastodon.apps) == 2
    new = terminal.stored(key)[0]["mastodon_access_token"]
    assert new != token and new in mastodon.tokens and new not in terminal.said


def test_bluesky_asks_the_handle_and_app_password_checks_them_and_stores_them_encrypted(
    terminal, key, bluesky
):
    terminal.add_poet("bluesky")
    env = {"STEWARD_SECRET_KEY": key, "BLUESKY_API_URL": bluesky.url}
    status, out, err = terminal.tool(
        "bluesky", "--bot", "poet", env=env, typed=["@" + HANDLE, APP_PASSWORD]
    )
    assert status == 0, out + err
    assert f"Signed in as @{HANDLE}." in out
    assert "bluesky_app_password" in out.splitlines()[-1]
    stored, raw = terminal.stored(key)
    assert stored == {
        "bluesky_handle": HANDLE,
        "bluesky_app_password": APP_PASSWORD,
        "bluesky_api_url": bluesky.url,  # not bsky.social: the bot keeps its PDS
    }
    assert APP_PASSWORD not in str(raw) and APP_PASSWORD not in terminal.said
    # Again with an empty answer for the handle: the bot's stored one.
    status, out, err = terminal.tool("bluesky", "--bot", "poet", env=env, typed=["", APP_PASSWORD])
    assert status == 0, out + err
    assert f"[{HANDLE}]" in out and APP_PASSWORD not in terminal.said


def test_a_refused_bluesky_password_stores_nothing_and_says_so(terminal, key, bluesky):
    terminal.add_poet("bluesky")
    env = {"STEWARD_SECRET_KEY": key, "BLUESKY_API_URL": bluesky.url}
    status, out, err = terminal.tool(
        "bluesky", "--bot", "poet", env=env, typed=[HANDLE, "wrong-pass-word"]
    )
    assert status == 1
    assert out.endswith(  # after the prompt, as the typed line is not echoed here
        f"Bluesky refused {HANDLE} with that app password (401); nothing was changed.\n"
    )
    assert "wrong-pass-word" not in terminal.said
    assert terminal.stored(key) == ({}, [])


@pytest.mark.parametrize("network", ["mastodon", "bluesky"])
def test_without_a_key_it_stops_before_any_request(terminal, network, mastodon, bluesky):
    terminal.add_poet(network)
    args = [mastodon.url] if network == "mastodon" else []
    status, out, err = terminal.tool(
        network, *args, "--bot", "poet", env={"BLUESKY_API_URL": bluesky.url}
    )
    assert (status, out, err.strip()) == (78, "", secrets.NO_KEY)
    assert mastodon.calls == [] and bluesky.calls == []


@pytest.mark.parametrize("network", ["mastodon", "bluesky"])
def test_an_unknown_bot_is_refused_before_any_request(terminal, key, network, mastodon, bluesky):
    args = [mastodon.url] if network == "mastodon" else []
    env = {"STEWARD_SECRET_KEY": key, "BLUESKY_API_URL": bluesky.url}
    status, out, err = terminal.tool(network, *args, "--bot", "nobody", env=env)
    assert (status, out) == (64, "")
    assert err == "there is no bot named 'nobody'; `python bot.py bots list` shows them\n"
    assert mastodon.calls == [] and bluesky.calls == []


@pytest.mark.parametrize("network", ["x", "mastodon", "bluesky"])
def test_bot_and_env_together_are_refused_in_one_sentence(
    terminal, key, network, mastodon, bluesky, tmp_path
):
    terminal.add_poet("dry-run")
    args = [mastodon.url] if network == "mastodon" else []
    env = {"STEWARD_SECRET_KEY": key, "BLUESKY_API_URL": bluesky.url}
    status, out, err = terminal.tool(network, *args, "--bot", "poet", "--env", env=env)
    assert (status, out) == (64, "")
    assert err == (
        "--bot stores the tokens in the store, encrypted, not in .env: give one of them.\n"
    )
    assert not (tmp_path / ".env").exists()
    assert mastodon.calls == [] and bluesky.calls == []


def test_x_bot_and_reader_together_are_refused_in_one_sentence(terminal, key):
    status, out, err = terminal.tool("x", "--reader", "--bot", "poet")
    assert (status, out) == (64, "")
    assert err.count("\n") == 1 and err.startswith("--reader is the worker's reader account")


@pytest.fixture
def farm_terminal(monkeypatch, capsys, caplog, tmp_path, engine, store_url) -> Terminal:
    """As `terminal`, on a migrated store on each backend (`engine`)."""
    return _terminal(monkeypatch, capsys, caplog, tmp_path, store_url)


def run_farm(engine, key: str) -> int:
    clock = Clock(db.utcnow() + dt.timedelta(minutes=1))
    return Farm(services(engine, clock, STEWARD_SECRET_KEY=key)).run_due()


def test_a_bot_authorized_on_mastodon_posts_there(farm_terminal, engine, key, mastodon):
    farm_terminal.add_poet("mastodon")
    status, out, err = farm_terminal.tool(
        "mastodon", mastodon.url, "--bot", "poet",
        env={"STEWARD_SECRET_KEY": key}, typed=[approve(mastodon)],
    )  # fmt: skip
    assert status == 0, out + err
    assert run_farm(engine, key) == 1
    [status_] = mastodon.statuses
    assert status_["text"].endswith(" at dusk.")


def test_a_bot_authorized_on_bluesky_posts_there(farm_terminal, engine, key, bluesky):
    farm_terminal.add_poet("bluesky")
    status, out, err = farm_terminal.tool(
        "bluesky", "--bot", "poet", env={"STEWARD_SECRET_KEY": key, "BLUESKY_API_URL": bluesky.url},
        typed=[HANDLE, APP_PASSWORD],
    )  # fmt: skip
    assert status == 0, out + err
    assert run_farm(engine, key) == 1  # the worker's BLUESKY_API_URL is not set: the bot's own
    [post] = bluesky.posts
    assert post["text"].endswith(" at dusk.")
