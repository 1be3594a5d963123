"""`python bot.py bots ...`: every action, its one-line errors, and export/import round trips."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa

from steward import db
from steward.farm.store import bot_secrets, work_units

POET = ["add", "poet", "--template", "{Word} is a quiet thing.", "--words", "rain,snow,sun"]


def test_it_adds_a_bot_and_lists_it_next_to_main(bots_cli):
    status, out, _ = bots_cli(
        *POET, "--interval", "30", "--per-tick", "2", "--to", "x,telegram:@poems"
    )
    assert status == 0
    assert "added poet: 2 post(s) every 30 min to x, telegram:@poems" in out
    assert "auth_tool.py x --bot poet" in out
    status, out, _ = bots_cli("list")
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["bot", "today", "words"]
    assert lines[1].split()[:3] == ["poet", "0", "-"]  # its own words, not the reader's
    assert lines[-1] == "main: the bot from the environment, every 30 min to dry-run"


def test_it_shows_a_bots_settings_and_stats(bots_cli):
    bots_cli(*POET, "--to", "dry-run")
    status, out, _ = bots_cli("show", "poet")
    assert status == 0
    assert "bot poet: running" in out
    assert "template: {Word} is a quiet thing." in out
    assert "1 post(s) every 60 min to dry-run" in out
    assert "words from its own words (3)" in out
    assert "reader words stored: 0 (poet does not use them)" in out
    assert "posts: 0 today, 0 this month (no monthly cap), 0 in all" in out
    assert "tokens stored: none" in out


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["add", "Bad!", "--template", "%s"], "'Bad!' is not a bot name"),
        (["add", "main", "--template", "%s"], "main is the bot configured by environment"),
        (["add", "b", "--template", "no slot"], "--template: "),
        (["add", "b", "--template", "%s", "--to", "myspace"], "'myspace' is not one of"),
        (["add", "b", "--template", "%s", "--to", "telegram"], "telegram needs a channel"),
        (["add", "b", "--template", "%s", "--interval", "0"], "--interval is minutes"),
        (["add", "b", "--template", "%s", "--per-tick", "99"], "--per-tick is posts per tick"),
        (["add", "b", "--template", "%s", "--feed", "ftp://x"], "--feed must be an http(s) URL"),
        (["show", "ghost"], "there is no bot named 'ghost'"),
        (["pause", "ghost"], "there is no bot named 'ghost'"),
        (["remove", "ghost"], "there is no bot named 'ghost'"),
    ],
)
def test_bad_input_gets_one_line_and_status_64(bots_cli, args, says):
    status, out, err = bots_cli(*args)
    assert status == 64
    assert says in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_adding_a_name_twice_is_refused(bots_cli):
    assert bots_cli(*POET)[0] == 0
    status, _, err = bots_cli(*POET)
    assert status == 64 and "a bot named 'poet' exists" in err


def test_pause_and_resume_change_the_next_post(bots_cli):
    bots_cli(*POET)
    status, out, _ = bots_cli("pause", "poet")
    assert (status, out.strip()) == (0, "poet is now paused")
    assert bots_cli("pause", "poet")[1].strip() == "poet was already paused"
    assert "paused" in bots_cli("list")[1].splitlines()[1]
    status, out, _ = bots_cli("resume", "poet")
    assert (status, out.strip()) == (0, "poet is now running")
    assert "bot poet: running" in bots_cli("show", "poet")[1]


def test_remove_deletes_the_bot_its_tokens_and_its_unit(bots_cli, key, store_url):
    bots_cli(*POET, "--to", "x")
    export = {"format": "steward-farm/1", "bots": [_spec("poet", secrets=TOKENS)]}
    _import(bots_cli, export, key)
    status, out, _ = bots_cli("remove", "poet")
    assert status == 0 and "removed poet" in out
    engine = db.make_engine(store_url)
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(bot_secrets)) == 0
        assert conn.scalar(sa.select(sa.func.count()).select_from(work_units)) == 0
    engine.dispose()
    assert "no farm bots yet" in bots_cli("list")[1]


TOKENS = {"x_access_token": "1-supersecrettoken", "x_access_secret": "supersecretsecret"}


def _spec(name: str, **extra) -> dict:
    spec = {
        "name": name,
        "template": "%s today",
        "interval_min": 60,
        "per_tick": 1,
        "words": None,
        "feed_url": None,
        "targets": ["x"],
        "monthly_limit": 0,
        "paused": False,
    }
    return spec | extra


def _import(bots_cli, data: dict, key: str | None) -> tuple[int, str, str]:
    path = "farm.json"
    with open(path, "w") as f:
        json.dump(data, f)
    return bots_cli("import", path, env={"STEWARD_SECRET_KEY": key} if key else {})


def test_export_leaves_tokens_out_unless_asked(bots_cli, key):
    data = {"format": "steward-farm/1", "bots": [_spec("poet", secrets=TOKENS)]}
    assert _import(bots_cli, data, key)[1].strip() == "imported 1 bot(s) and 2 token(s)"
    status, out, _ = bots_cli("export", env={"STEWARD_SECRET_KEY": key})
    assert status == 0
    assert "supersecret" not in out and "secrets" not in json.loads(out)["bots"][0]
    status, out, _ = bots_cli("export", "--with-secrets", env={"STEWARD_SECRET_KEY": key})
    assert json.loads(out)["bots"][0]["secrets"] == TOKENS


def test_an_export_imports_into_another_store_unchanged(bots_cli, key, tmp_path, monkeypatch):
    bots_cli(*POET, "--to", "x,telegram:@poems", "--interval", "15", "--monthly-limit", "100")
    bots_cli("add", "newsy", "--template", "{word}!", "--feed", "https://example.com/rss")
    bots_cli("pause", "newsy")
    _import(
        bots_cli, {"format": "steward-farm/1", "bots": [_spec("reader-fan", secrets=TOKENS)]}, key
    )
    _, exported, _ = bots_cli("export", "--with-secrets", env={"STEWARD_SECRET_KEY": key})
    for name in ("poet", "newsy", "reader-fan"):
        bots_cli("remove", name)
    assert "no farm bots yet" in bots_cli("list")[1]
    (tmp_path / "farm.json").write_text(exported)
    status, out, _ = bots_cli("import", "farm.json", env={"STEWARD_SECRET_KEY": key})
    assert (status, out.strip()) == (0, "imported 3 bot(s) and 2 token(s)")
    again = bots_cli("export", "--with-secrets", env={"STEWARD_SECRET_KEY": key})[1]
    assert json.loads(again) == json.loads(exported)


def test_import_refuses_a_broken_file_and_changes_nothing(bots_cli, key):
    good, bad = _spec("good"), _spec("bad", template="no slot")
    status, _, err = _import(bots_cli, {"format": "steward-farm/1", "bots": [good, bad]}, key)
    assert status == 64 and "bot 'bad': --template:" in err
    assert "no farm bots yet" in bots_cli("list")[1]
    with open("farm.json", "w") as f:
        f.write("{not json")
    status, _, err = bots_cli("import", "farm.json")
    assert status == 64 and "the file is not JSON" in err


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("interval_min", "often", "interval_min is not a whole number"),
        ("paused", "yes", "paused is not true or false"),
        ("targets", "x", "targets is not a list"),
        ("words", 7, "words is not text or null"),
    ],
)
def test_import_names_a_field_of_the_wrong_type(bots_cli, key, field, value, says):
    status, _, err = _import(
        bots_cli, {"format": "steward-farm/1", "bots": [_spec("b", **{field: value})]}, key
    )
    assert status == 64 and says in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "says", "shown"),
    [
        (
            ["--template", "{Word} is a loud thing."],
            "template: {Word} is a quiet thing. -> {Word} is a loud thing.",
            "template: {Word} is a loud thing.",
        ),
        (["--interval", "30"], "interval (min): 60 -> 30", "every 30 min"),
        (["--per-tick", "3"], "posts per tick: 1 -> 3", "3 post(s) every 60 min"),
        (
            ["--words", "owl,fox"],
            "words: its own words (rain,snow,sun) -> its own words (owl,fox)",
            "words from its own words (2)",
        ),
        (
            ["--feed", "https://example.com/feed.xml"],
            "words: its own words (rain,snow,sun) -> the feed https://example.com/feed.xml",
            "words from the feed https://example.com/feed.xml",
        ),
        (
            ["--reader"],
            "words: its own words (rain,snow,sun) -> the shared reader's timeline",
            "words from the shared reader's timeline",
        ),
        (["--to", "x,telegram:@poems"], "targets: dry-run -> x, telegram:@poems", "to x, tel"),
        (["--monthly-limit", "100"], "monthly limit: no cap -> 100", "this month of 100"),
    ],
)
def test_edit_changes_one_setting_and_says_what_changed(bots_cli, args, says, shown):
    bots_cli(*POET)
    status, out, err = bots_cli("edit", "poet", *args)
    assert (status, err) == (0, "")
    assert out.splitlines()[:2] == ["edited poet:", f"  {says}"]
    assert shown in bots_cli("show", "poet")[1]


def test_edit_says_what_to_run_for_a_new_networks_tokens(bots_cli):
    bots_cli(*POET, "--to", "x")
    out = bots_cli("edit", "poet", "--to", "x,mastodon")[1]
    assert "bots secret poet mastodon_access_token" in out and "auth_tool.py x" not in out


def test_edit_with_the_same_values_changes_nothing(bots_cli):
    bots_cli(*POET)
    assert bots_cli("edit", "poet", "--interval", "60") == (0, "poet: nothing changed\n", "")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["main", "--interval", "5"], "main is configured by environment variables"),
        (["ghost", "--interval", "5"], "there is no bot named 'ghost'"),
        (["poet"], "nothing to change: give one or more of --template, --interval"),
        (["poet", "--template", "no slot"], "--template: "),
        (["poet", "--template", "{word} " + "and so on " * 30, "--to", "x"], "too long for x"),
        (["poet", "--template", "{word} " + "and so on " * 30], "too long for x"),
        (["poet", "--feed", "ftp://x"], "--feed must be an http(s) URL"),
        (["poet", "--to", "myspace"], "'myspace' is not one of"),
        (["poet", "--to", "telegram"], "telegram needs a channel"),
        (["poet", "--interval", "0"], "--interval is minutes"),
        (["poet", "--per-tick", "99"], "--per-tick is posts per tick"),
        (["poet", "--monthly-limit", "-1"], "--monthly-limit is a whole number"),
        (["poet", "--words", " , "], "--words holds no word"),
    ],
)
def test_edit_refuses_bad_input_in_one_line_and_changes_nothing(bots_cli, args, says):
    bots_cli(*POET, "--to", "x")
    before = bots_cli("show", "poet")[1]
    status, out, err = bots_cli("edit", *args)
    assert status == 64 and out == ""
    assert says in err and err.startswith("bots edit: ")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert bots_cli("show", "poet")[1] == before


def test_add_refuses_a_template_too_long_for_its_targets(bots_cli):
    status, _, err = bots_cli("add", "b", "--template", "%s " + "x" * 300, "--to", "x")
    assert status == 64 and "even with one-letter words, too long for x" in err
    assert bots_cli("add", "b", "--template", "%s " + "x" * 300, "--to", "telegram:@poems")[0] == 0


def _due(store_url: str, name: str = "poet"):
    engine = db.make_engine(store_url)
    with engine.connect() as conn:
        query = sa.select(work_units).where(work_units.c.key == name)
        row = conn.execute(query).one()
    engine.dispose()
    return row


def _set_unit(store_url: str, **values) -> None:
    engine = db.make_engine(store_url)
    with engine.begin() as conn:
        conn.execute(sa.update(work_units).where(work_units.c.key == "poet").values(**values))
    engine.dispose()


def test_a_new_interval_moves_the_next_tick_from_the_last_one(bots_cli, store_url):
    bots_cli(*POET)
    last = db.utcnow().replace(microsecond=0) - dt.timedelta(minutes=10)
    _set_unit(store_url, due_at=last + dt.timedelta(minutes=60))  # it ticked 10 minutes ago
    out = bots_cli("edit", "poet", "--interval", "180")[1]
    assert _due(store_url).due_at == last + dt.timedelta(minutes=180)
    assert "next tick: " in out
    bots_cli("edit", "poet", "--interval", "5")
    assert _due(store_url).due_at == last + dt.timedelta(minutes=5)  # past: due at once


def test_a_new_interval_leaves_a_running_tick_alone(bots_cli, store_url):
    bots_cli(*POET)
    due = db.utcnow().replace(microsecond=0)
    until = due + dt.timedelta(minutes=1)
    _set_unit(store_url, due_at=due, lease_owner="w1", lease_until=until)
    assert bots_cli("edit", "poet", "--interval", "180")[0] == 0
    assert _due(store_url).due_at == due  # its holder finishes it on the old grid


def test_switching_to_the_reader_starts_at_its_newest_word(bots_cli, store_url):
    from steward.farm.store import farm_cursors, farm_words

    bots_cli(*POET)
    engine = db.make_engine(store_url)
    with engine.begin() as conn:
        words = [{"word": w, "read_at": db.utcnow()} for w in ("lantern", "orchard", "meadow")]
        conn.execute(sa.insert(farm_words), words)
    assert bots_cli("edit", "poet", "--reader")[0] == 0
    with engine.connect() as conn:
        cursor = conn.scalar(sa.select(farm_cursors.c.word_id).where(farm_cursors.c.bot == "poet"))
        assert cursor == conn.scalar(sa.select(sa.func.max(farm_words.c.id)))
    engine.dispose()
