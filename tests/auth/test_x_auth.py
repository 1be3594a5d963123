"""`python auth_tool.py x`: the PIN flow end to end against the fake X, and its failures."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import urllib.request

import pytest
from dotenv import dotenv_values

from steward.auth.x import run_x_auth
from steward.config import EXIT_CONFIG, load_settings
from steward.posting.x_client import make_client
from tests.fakes.x_api import FakeX
from tests.worker_process import ROOT, clean_env

_TOKEN = re.compile(r"oauth_token=([^&\s]+)")


@pytest.fixture
def fake():
    with FakeX(consumer_key="ck", consumer_secret="cs") as server:
        server.add_user("42", "alice", "42-old-token", "42-old-secret", name="Alice A.")
        yield server


class Person:
    """Plays the person at the terminal: reads the printed lines, authorizes, types the PIN."""

    def __init__(self, fake: FakeX, user_id: str = "42", pin: str | None = None) -> None:
        self.fake, self.user_id, self.pin = fake, user_id, pin
        self.lines: list[str] = []
        self.opened: list[str] = []

    def out(self, line: str) -> None:
        self.lines.append(line)

    def open_browser(self, url: str) -> bool:
        self.opened.append(url)
        return False  # no browser here: the person copies the printed URL

    def input(self, prompt: str) -> str:
        token = _TOKEN.search("\n".join(self.lines)).group(1)
        self.fake.authorize(token, self.user_id)
        return self.pin if self.pin is not None else f"  {self.fake.pin_for(token)}\n"

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def env(fake_or_url, **extra: str) -> dict[str, str]:
    url = fake_or_url if isinstance(fake_or_url, str) else fake_or_url.url
    return {"X_CONSUMER_KEY": "ck", "X_CONSUMER_SECRET": "cs", "X_API_URL": url} | extra


def run(source, person: Person, **kw) -> int:
    kw.setdefault("reader", False)
    kw.setdefault("env_file", None)
    return run_x_auth(
        source, input=person.input, out=person.out, open_browser=person.open_browser, **kw
    )


def refused_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def assert_works(fake: FakeX, token: str, secret: str) -> None:
    client = make_client("ck", "cs", token, secret, fake.url)
    try:
        assert client.get_me(user_auth=True).data.username == "alice"
    finally:
        client.session.close()


def test_it_prints_a_heroku_line_with_a_working_token(fake):
    person = Person(fake)
    settings = load_settings(env(fake), env_file=None)
    assert run(settings, person) == 0, person.text
    assert person.opened and person.opened[0].startswith(f"{fake.url}/oauth/authorize?")
    assert "Authorized @alice (Alice A., id 42)." in person.lines
    line = person.lines[-1].strip()
    found = re.fullmatch(r"heroku config:set X_ACCESS_TOKEN=(\S+) X_ACCESS_SECRET=(\S+)", line)
    assert found, line
    assert_works(fake, *found.groups())


def test_it_takes_the_pin_from_the_authorize_page_as_a_person_would(fake):
    def browse(url: str) -> bool:
        with urllib.request.urlopen(url, timeout=5) as page:
            person.pin = re.search(r"<code>(\d+)</code>", page.read().decode()).group(1)
        return True

    person = Person(fake)
    person.open_browser = browse
    person.input = lambda prompt: person.pin
    assert run(env(fake), person) == 0, person.text
    assert "heroku config:set X_ACCESS_TOKEN=" in person.text


def test_with_reader_it_prints_the_reader_variables(fake):
    person = Person(fake)
    assert run(env(fake), person, reader=True) == 0, person.text
    assert "reader account" in person.text
    assert re.search(
        r"heroku config:set X_READER_ACCESS_TOKEN=\S+ X_READER_ACCESS_SECRET=\S+$", person.text
    )


def test_with_env_it_writes_the_keys_once_and_keeps_the_rest(fake, tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("POST_INTERVAL=5\nX_ACCESS_TOKEN=old\nX_ACCESS_SECRET=old\n")
    for _ in range(2):
        person = Person(fake)
        assert run(env(fake), person, env_file=env_file) == 0, person.text
    values = dotenv_values(env_file)
    assert values["POST_INTERVAL"] == "5"
    assert values["X_ACCESS_TOKEN"] != "old"
    lines = env_file.read_text().splitlines()
    assert sum(line.startswith("X_ACCESS_TOKEN=") for line in lines) == 1
    assert sum(line.startswith("X_ACCESS_SECRET=") for line in lines) == 1
    assert values["X_ACCESS_SECRET"] not in person.text  # written, not shown
    assert_works(fake, values["X_ACCESS_TOKEN"], values["X_ACCESS_SECRET"])


def test_a_wrong_pin_gets_one_sentence_and_status_1(fake):
    person = Person(fake, pin="12345678")  # X shows 7 digits: never this
    assert run(env(fake), person) == 1
    assert person.lines[-1].startswith("X did not accept that PIN")
    assert "Traceback" not in person.text and "heroku" not in person.text


def test_a_revoked_app_key_gets_one_sentence_and_the_config_status(fake):
    fake.revoke("ck")
    person = Person(fake)
    assert run(env(fake), person) == EXIT_CONFIG
    assert person.lines == [person.lines[0]]
    assert person.lines[0].startswith("X refused X_CONSUMER_KEY/X_CONSUMER_SECRET")


def test_an_unreachable_x_gets_one_sentence_and_status_1():
    url = refused_url()
    person = Person(fake=None)
    assert run(env(url), person) == 1
    assert person.lines == [
        f"Cannot reach X at {url} (connection refused): check the network and X_API_URL."
    ]


def test_missing_app_keys_are_named(fake):
    person = Person(fake)
    assert run({"X_API_URL": fake.url}, person) == EXIT_CONFIG
    assert person.lines[0].startswith("X_CONSUMER_KEY and X_CONSUMER_SECRET are not set")
    assert fake.calls == []


def test_no_pin_ends_without_changing_anything(fake, tmp_path):
    person = Person(fake)

    def no_input(prompt: str) -> str:
        raise EOFError

    person.input = no_input
    env_file = tmp_path / ".env"
    assert run(env(fake), person, env_file=env_file) == 1
    assert person.lines[-1].strip() == "No PIN given; nothing was changed."
    assert not env_file.exists()


def test_auth_tool_runs_the_flow_at_a_terminal(fake, tmp_path):
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "auth_tool.py"), "x"],
        env=clean_env(**env(fake), PYTHONUNBUFFERED="1"),
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        seen = ""
        while not (found := _TOKEN.search(seen)):
            line = proc.stdout.readline()
            assert line, seen
            seen += line
        fake.authorize(found.group(1), "42")
        rest, _ = proc.communicate(fake.pin_for(found.group(1)) + "\n", timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, seen + rest
    assert "Authorized @alice" in rest and "heroku config:set X_ACCESS_TOKEN=" in rest
