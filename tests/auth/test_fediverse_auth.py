"""`auth_tool.py mastodon` and `auth_tool.py bluesky` against the fake servers."""

from __future__ import annotations

import subprocess
import sys

from steward.auth.fediverse import run_bluesky_auth, run_mastodon_auth
from tests.fakes.bluesky_api import FakeBluesky
from tests.fakes.mastodon_api import FakeMastodon
from tests.worker_process import ROOT, clean_env


def test_mastodon_registers_an_app_trades_the_code_and_prints_the_heroku_line():
    with FakeMastodon() as fake:
        said: list[str] = []
        code = lambda _prompt: fake.code_for(next(iter(fake.apps)))  # noqa: E731 - the person
        status = run_mastodon_auth(
            fake.url, input=code, out=said.append, open_browser=lambda _url: False
        )
        assert status == 0, said
        [line] = [s for s in said if "heroku config:set" in s]
        [token] = fake.tokens
        assert f"MASTODON_API_URL={fake.url}" in line and f"MASTODON_ACCESS_TOKEN={token}" in line


def test_mastodon_with_a_wrong_code_says_so_in_one_sentence():
    with FakeMastodon() as fake:
        said: list[str] = []
        status = run_mastodon_auth(
            fake.url, input=lambda _p: "wrong", out=said.append, open_browser=lambda _u: False
        )
        assert status == 1 and "did not accept the code" in said[-1]


def test_bluesky_checks_the_app_password_before_printing_the_lines(tmp_path):
    with FakeBluesky() as fake:
        fake.add_account("alice.bsky.social", "abcd-efgh-ijkl-mnop")
        said: list[str] = []
        bad = run_bluesky_auth("alice.bsky.social", "wrong", fake.url, out=said.append)
        assert bad == 1 and "refused" in said[-1]
        good = run_bluesky_auth(
            "@alice.bsky.social", "abcd-efgh-ijkl-mnop", fake.url, out=said.append
        )
        assert good == 0
        assert (
            "BLUESKY_HANDLE=alice.bsky.social BLUESKY_APP_PASSWORD=abcd-efgh-ijkl-mnop" in said[-1]
        )


def test_mastodon_asked_for_its_instance_on_a_closed_stdin_says_so_in_one_sentence(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "auth_tool.py"), "mastodon"],
        env=clean_env(), cwd=tmp_path, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip() == (
        "auth_tool: a question got no answer (the input was closed); nothing was changed. "
        "Run it in a terminal."
    )
