"""A farm bot on Mastodon and Bluesky: its own accounts from `bots secret`, posting's publishers
and length rules, exactly once through a crash (against the fake Mastodon and Bluesky)."""

from __future__ import annotations

import datetime as dt
import io

import pytest
import sqlalchemy as sa

from steward import db
from steward.farm import bots as farm_bots
from steward.farm.job import Farm
from steward.posting.store import posts as posts_table
from steward.posting.textcount import fits
from tests.clock import Clock
from tests.fakes.bluesky_api import FakeBluesky
from tests.fakes.mastodon_api import FakeMastodon
from tests.posting.helpers import outbox_rows, services

HANDLE, APP_PASSWORD = "poet.bsky.social", "abcd-efgh-ijkl-mnop"


@pytest.fixture
def mastodon():
    with FakeMastodon(max_characters=600) as server:
        server.add_token("poet-token")
        yield server


@pytest.fixture
def bluesky():
    with FakeBluesky() as server:
        server.add_account(HANDLE, APP_PASSWORD)
        yield server


def store_secret(bots_cli, monkeypatch, key: str, name: str, value: str) -> None:
    """`python bot.py bots secret poet NAME`, the value typed on stdin as the README says."""
    monkeypatch.setattr("sys.stdin", io.StringIO(value + "\n"))
    status, out, err = bots_cli("secret", "poet", name, env={"STEWARD_SECRET_KEY": key})
    assert status == 0, err
    assert f"stored {name} for poet, encrypted" in out and value not in out


def add_poet(bots_cli, monkeypatch, key, mastodon, bluesky, **secrets: str) -> str:
    status, out, err = bots_cli(
        "add", "poet", "--template", "{Word} at dusk, {word2} at dawn.",
        "--words", "owls,bats,moths,larks,wrens", "--to", "mastodon,bluesky",
    )  # fmt: skip
    assert status == 0, err
    assert "next: python auth_tool.py mastodon --bot poet" in out
    assert "next: python auth_tool.py bluesky --bot poet" in out
    assert "bots secret poet mastodon_access_token" in out
    assert "bots secret poet bluesky_app_password" in out
    values = {
        "mastodon_api_url": mastodon.url,
        "mastodon_access_token": "poet-token",
        "bluesky_handle": HANDLE,
        "bluesky_app_password": APP_PASSWORD,
        "bluesky_api_url": bluesky.url,
    }
    for name, value in (values | secrets).items():
        store_secret(bots_cli, monkeypatch, key, name, value)
    return out


def posts(engine) -> list[sa.Row]:
    with engine.connect() as conn:
        return conn.execute(sa.select(posts_table).order_by(posts_table.c.id)).all()


def farm_at(engine, clock, key: str) -> Farm:
    return Farm(services(engine, clock, STEWARD_SECRET_KEY=key))


def test_a_farm_bot_posts_once_to_its_own_mastodon_and_bluesky_accounts(
    bots_cli, monkeypatch, key, engine, mastodon, bluesky
):
    add_poet(bots_cli, monkeypatch, key, mastodon, bluesky)
    clock = Clock(db.utcnow() + dt.timedelta(minutes=1))
    farm = farm_at(engine, clock, key)
    assert farm.run_due() == 1
    assert len(mastodon.statuses) == 1 and len(bluesky.posts) == 1
    text = mastodon.statuses[0]["text"]
    assert bluesky.posts[0]["text"] == text and text.endswith("at dawn.")
    assert fits(text, "mastodon") and fits(text, "bluesky")
    rows = posts(engine)
    assert sorted(r.channel for r in rows) == ["bluesky", "mastodon"]
    assert all(r.state == "sent" and r.remote_id for r in rows)
    assert any(r.remote_id.startswith("at://") for r in rows)
    assert farm.run_due() == 0  # nothing more until the next interval
    clock.advance(minutes=61)
    assert farm.run_due() == 1
    assert len(mastodon.statuses) == 2 and len(bluesky.posts) == 2
    assert mastodon.statuses[1]["text"] != text  # the bot's own dedupe


def test_a_post_left_pending_by_a_crash_goes_out_once_on_each_network(
    bots_cli, monkeypatch, key, engine, mastodon, bluesky
):
    add_poet(bots_cli, monkeypatch, key, mastodon, bluesky)
    clock = Clock(db.utcnow() + dt.timedelta(minutes=1))
    farm = farm_at(engine, clock, key)
    assert farm.run_due() == 1
    # As if the worker died after both networks took the post but before it was marked sent.
    with engine.begin() as conn:
        conn.execute(sa.update(posts_table).values(state="pending", remote_id=None))
    clock.advance(minutes=61)
    assert farm_at(engine, clock, key).run_due() == 1  # a fresh worker, as after a restart
    assert len(mastodon.statuses) == 2 and len(bluesky.posts) == 2  # one new, none repeated
    assert [r.state for r in posts(engine)] == ["sent"] * 4


def test_a_missing_token_names_the_command_and_the_owner_hears_it_once(
    bots_cli, monkeypatch, key, engine, mastodon, bluesky
):
    status, _, err = bots_cli(
        "add", "poet", "--template", "%s at dusk.", "--words", "owls,bats", "--to", "bluesky",
    )  # fmt: skip
    assert status == 0, err
    store_secret(bots_cli, monkeypatch, key, "bluesky_handle", HANDLE)
    clock = Clock(db.utcnow() + dt.timedelta(minutes=1))
    farm = farm_at(engine, clock, key)
    farm.run_due()
    clock.advance(minutes=61)
    farm.run_due()
    with engine.connect() as conn:
        error = farm_bots.last_error(conn, "poet")
    assert error == "no Bluesky app password: run python auth_tool.py bluesky --bot poet"
    told = [r.text for r in outbox_rows(engine) if "poet" in r.text]
    assert len(told) == 1 and "auth_tool.py bluesky --bot poet" in told[0]
    assert bluesky.posts == []


def test_a_revoked_mastodon_token_pauses_mastodon_and_tells_the_owner_once_by_name(
    bots_cli, monkeypatch, key, engine, mastodon, bluesky
):
    add_poet(bots_cli, monkeypatch, key, mastodon, bluesky, mastodon_access_token="revoked")
    clock = Clock(db.utcnow() + dt.timedelta(minutes=1))
    farm = farm_at(engine, clock, key)
    farm.run_due()
    assert mastodon.statuses == [] and len(bluesky.posts) == 1
    states = {r.channel: r.state for r in posts(engine)}
    assert states == {"bluesky": "sent", "mastodon": "pending"}  # it waits for a new token
    clock.advance(minutes=61)
    farm.run_due()  # Mastodon stays paused; Bluesky goes on
    assert mastodon.statuses == [] and len(bluesky.posts) == 2
    [told] = [r.text for r in outbox_rows(engine) if "poet" in r.text]
    assert told.startswith("⚠️ Bot <b>poet</b>: Mastodon refused the access token (401)")
    assert "auth_tool.py mastodon --bot poet" in told and "revoked" not in told
    store_secret(bots_cli, monkeypatch, key, "mastodon_access_token", "poet-token")
    clock.advance(minutes=61)
    farm.run_due()  # the new token: the waiting post goes out, then the tick's own
    assert len(mastodon.statuses) == 2 and len(bluesky.posts) == 3
    assert {r.state for r in posts(engine)} == {"sent"}


def test_an_api_url_that_is_not_one_is_refused_with_one_line(bots_cli, monkeypatch, key):
    assert bots_cli("add", "poet", "--template", "%s!", "--to", "mastodon")[0] == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("mastodon.social\n"))
    status, _, err = bots_cli("secret", "poet", "mastodon_api_url", env={"STEWARD_SECRET_KEY": key})
    assert status == 64
    assert err == (
        "bots secret: mastodon_api_url must be an http(s) URL such as https://mastodon.social\n"
    )
