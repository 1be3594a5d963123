"""Settings: typed, strict, aliases, .env semantics and the one-line error with status 78."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from steward.config import EXIT_CONFIG, ConfigError, load_settings

ROOT = Path(__file__).resolve().parent.parent


def run_bot(env: dict[str, str], *args: str, cwd: Path | None = None, timeout: float = 30):
    clean = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "SYSTEMROOT")}
    clean.update(env)
    return subprocess.run(
        [sys.executable, str(ROOT / "bot.py"), *args],
        env=clean,
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    ("env", "variable", "expected"),
    [
        ({"POST_INTERVAL": "ten"}, "POST_INTERVAL", "minutes as a whole number"),
        ({"DATABASE_URL": "nonsense"}, "DATABASE_URL", "postgres://"),
        ({"ALLOWED_USERS": "@@"}, "ALLOWED_USERS", "numeric user ids or @usernames"),
        ({"TELEGRAM_TOKEN": "not-a-token"}, "TELEGRAM_TOKEN", "@BotFather"),
        ({"ALLOW_GROUPS": "maybe"}, "ALLOW_GROUPS", "true or false"),
        ({"TZ": "Mars/Olympus"}, "TZ", "IANA time zone"),
        ({"PORT": "70000"}, "PORT", "TCP port"),
        ({"timeout": "soon"}, "timeout", "alias of POST_INTERVAL"),
        ({"CHECKS": "api=ftp://x"}, "CHECKS", "an http(s) URL, tcp://host:port"),
        ({"CHECKS": "api=https://x.example interval=often"}, "CHECKS", "a duration like 30s"),
        ({"CHECKS": '[{"name": "api"}]'}, "CHECKS", "api"),
        ({"POST_TEMPLATE": "no slots here"}, "POST_TEMPLATE", "write %s or {word}"),
    ],
)
def test_it_stops_with_one_line_and_status_78_on_a_bad_value(tmp_path, env, variable, expected):
    result = run_bot(env, cwd=tmp_path)
    assert result.returncode == EXIT_CONFIG
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert variable in lines[0] and expected in lines[0]
    assert "Traceback" not in lines[0]
    assert not list(tmp_path.iterdir()), "nothing may be done before the config is valid"


def test_it_never_echoes_a_bad_secret_value():
    with pytest.raises(ConfigError) as err:
        load_settings({"TELEGRAM_TOKEN": "123456:ABCDEFtoo short?"}, env_file=None)
    assert "ABCDEF" not in str(err.value)


def test_it_reads_dotenv_without_overriding_the_environment(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text('POST_INTERVAL=45\nexport TWEETS_PER_TICK=2\nPOST_TEMPLATE="%s, quoted"\n')
    settings = load_settings({"POST_INTERVAL": "15"}, env_file=env_file)
    assert settings.post_interval == 15  # the real environment wins
    assert settings.tweets_per_tick == 2  # python-dotenv's `export` form
    assert settings.post_template == "%s, quoted"


def test_it_treats_blank_values_as_unset():
    settings = load_settings({"TELEGRAM_CHAT_ID": "", "POST_INTERVAL": " "}, env_file=None)
    assert settings.telegram_chat_id is None and settings.post_interval == 30


def test_it_accepts_the_seed_bots_names_as_aliases():
    seed = {
        "consumer_key": "ck-seed",
        "consumer_secret": "cs-seed",
        "user_access_token": "at-seed",
        "user_access_secret": "as-seed",
        "template": "%s – это когда тебя любят.",
        "timeout": "30",
        "tweet_grab": "3",
        "tweets_per_tick": "2",
        "reader_name": "strizhechenko",
        "strizhechenko_access_token": "rt-seed",
        "strizhechenko_access_secret": "rs-seed",
    }
    s = load_settings(seed, env_file=None)
    assert s.x_credentials == ("ck-seed", "cs-seed", "at-seed", "as-seed")
    assert s.post_template == "%s – это когда тебя любят."
    assert (s.post_interval, s.tweet_grab, s.tweets_per_tick) == (30, 3, 2)
    assert s.x_reader_access_token.get_secret_value() == "rt-seed"
    assert s.x_reader_access_secret.get_secret_value() == "rs-seed"


def test_our_names_win_over_the_seed_aliases():
    s = load_settings({"POST_INTERVAL": "5", "timeout": "30"}, env_file=None)
    assert s.post_interval == 5


def test_it_parses_allowed_users_as_ids_and_usernames():
    s = load_settings({"ALLOWED_USERS": "123, @Alice\n456"}, env_file=None)
    assert s.allowed_users == (123, "alice", 456)


def test_settings_are_frozen():
    s = load_settings({}, env_file=None)
    with pytest.raises(ValueError):
        s.post_interval = 5  # type: ignore[misc]


def test_it_collects_every_secret_for_redaction():
    s = load_settings(
        {
            "TELEGRAM_TOKEN": "123456:secret-token-value",
            "X_CONSUMER_SECRET": "xsecret",
            "DATABASE_URL": "postgres://u:dbpassword@db.example.com/app",
        },
        env_file=None,
    )
    secrets = s.secrets()
    assert {"123456:secret-token-value", "xsecret", "dbpassword"} <= set(secrets)


def test_config_command_prints_the_configuration_with_secrets_redacted(tmp_path):
    result = run_bot(
        {
            "TELEGRAM_TOKEN": "123456:visible-if-broken-AAAA",
            "X_CONSUMER_KEY": "ck-hidden",
            "X_CONSUMER_SECRET": "cs-hidden",
            "X_ACCESS_TOKEN": "at-hidden",
            "X_ACCESS_SECRET": "as-hidden",
            "DATABASE_URL": f"sqlite:///{tmp_path}/s.sqlite",
            "POST_INTERVAL": "7",
        },
        "config",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    for secret in ("visible-if-broken", "ck-hidden", "cs-hidden", "at-hidden", "as-hidden"):
        assert secret not in result.stdout
    assert "POST_INTERVAL" in result.stdout and " 7" in result.stdout
    assert "posting:" in result.stdout and "monitoring:" in result.stdout
    assert "training:" in result.stdout


def test_config_command_shows_the_table_then_what_keeps_the_worker_from_starting(tmp_path):
    env = {"X_CONSUMER_KEY": "ck-hidden", "DATABASE_URL": f"sqlite:///{tmp_path}/s.sqlite"}
    result = run_bot(env, "config", cwd=tmp_path)
    assert result.returncode == 78
    assert "X_CONSUMER_KEY" in result.stdout and "ck-hidden" not in result.stdout
    assert result.stdout.strip().splitlines()[-1].startswith("config error: X_CONSUMER_SECRET")
    assert "Traceback" not in result.stdout + result.stderr


def test_of_the_database_url_only_the_password_is_secret_in_both_spellings():
    url = "postgres://app:p%40ss-word@db.example.com/app"
    secrets = load_settings({"DATABASE_URL": url}, env_file=None).secrets()
    assert {"p@ss-word", "p%40ss-word"} <= set(secrets)
    assert url not in secrets, "the rest of the URL may be logged, to say which store is used"


def test_the_webhook_secret_derived_from_the_token_is_a_secret_too():
    settings = load_settings({"TELEGRAM_TOKEN": "123456:token-value-AAAA"}, env_file=None)
    derived = settings.effective_webhook_secret()
    assert derived and len(derived) == 48 and derived in settings.secrets()
    again = load_settings({"TELEGRAM_TOKEN": "123456:token-value-AAAA"}, env_file=None)
    assert again.effective_webhook_secret() == derived, "every dyno derives the same one"
    chosen = load_settings(
        {"TELEGRAM_TOKEN": "123456:token-value-AAAA", "WEBHOOK_SECRET": "my-own-secret"},
        env_file=None,
    )
    assert chosen.effective_webhook_secret() == "my-own-secret"
