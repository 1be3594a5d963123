"""`python auth_tool.py x`: X's PIN OAuth, from the app's keys to the account's access token.

The person opens X's authorize page, signs in as the account that will post (or, with
`--reader`, the account whose home timeline gives words), and types the PIN X shows. The token
is checked with a real request before the lines to set are printed (or written to .env).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
import webbrowser
from collections.abc import Callable, Mapping
from pathlib import Path

import requests
import tweepy

from steward.config import EXIT_CONFIG, Settings
from steward.posting.x_client import DEFAULT_API_URL, make_client, make_oauth_handler
from steward.posting.x_errors import Kind, classify

KEYS_HELP = (
    "create an app at https://developer.x.com (Projects & Apps > Keys and tokens), give it "
    "read and write permissions, and set its API key and secret"
)
POSTER_NAMES = ("X_ACCESS_TOKEN", "X_ACCESS_SECRET")
READER_NAMES = ("X_READER_ACCESS_TOKEN", "X_READER_ACCESS_SECRET")


def run_x_auth(
    settings_or_env: Settings | Mapping[str, str],
    *,
    reader: bool = False,
    env_file: Path | None = None,
    input: Callable[[str], str] = input,
    out: Callable[[str], None] = print,
    open_browser: Callable[[str], bool] | None = None,
    store: Callable[[dict[str, str]], str] | None = None,
) -> int:
    """Run the PIN flow; print one clear sentence and return non-zero when something fails."""
    open_browser = open_browser or open_in_browser
    key, secret, api_url = _app_keys(settings_or_env)
    if not key or not secret:
        out(f"X_CONSUMER_KEY and X_CONSUMER_SECRET are not set: {KEYS_HELP}.")
        return EXIT_CONFIG
    names = READER_NAMES if reader else POSTER_NAMES
    who = "the reader account (its home timeline gives words)" if reader else "the posting account"

    handler = make_oauth_handler(key, secret, api_url)
    try:
        url = handler.get_authorization_url()
    except tweepy.TweepyException as exc:
        keys = f"X refused X_CONSUMER_KEY/X_CONSUMER_SECRET: {KEYS_HELP} anew."
        return _fail(out, exc, api_url, auth=keys, auth_status=EXIT_CONFIG)
    out(f"1. Open this page, sign in to X as {who}, and authorize the app:")
    out(f"   {url}")
    # A broken browser set-up must not end the flow: the URL is printed above.
    with contextlib.suppress(Exception):
        open_browser(url)
    try:
        pin = input("2. Enter the PIN X shows: ").strip()
    except (EOFError, KeyboardInterrupt):
        out("\nNo PIN given; nothing was changed.")
        return 1
    if not pin:
        out("No PIN given; nothing was changed.")
        return 1

    try:
        token, token_secret = handler.get_access_token(pin)
    except tweepy.TweepyException as exc:
        wrong = "X did not accept that PIN: run this again and type the PIN shown after "
        wrong += "authorizing (each PIN works once, for a few minutes)."
        return _fail(out, exc, api_url, auth=wrong)
    client = make_client(key, secret, token, token_secret, api_url)
    try:
        me = client.get_me(user_auth=True).data
    except (tweepy.TweepyException, requests.RequestException) as exc:
        return _fail(out, exc, api_url, auth="X refused the new token when checking it.")
    finally:
        client.session.close()
    out(f"Authorized @{me.username} ({me.name}, id {me.id}).")

    values = dict(zip(names, (token, token_secret), strict=True))
    if store is not None:
        # A farm bot's tokens go to the store, encrypted; they are never printed.
        out(f"3. {store({name.lower(): value for name, value in values.items()})}")
    elif env_file is not None:
        write_env(env_file, values)
        out(f"{' and '.join(names)} written to {env_file}.")
    else:
        pairs = " ".join(f"{name}={shlex.quote(value)}" for name, value in values.items())
        out("3. Set them (they give full use of the account: keep them out of shared logs):")
        out(f"   heroku config:set {pairs}")
    return 0


def _app_keys(source: Settings | Mapping[str, str]) -> tuple[str, str, str]:
    if isinstance(source, Settings):
        key, secret = source.x_consumer_key, source.x_consumer_secret
        return (
            key.get_secret_value() if key else "",
            secret.get_secret_value() if secret else "",
            source.x_api_url,
        )
    # A plain environment: the seed bot's lowercase names are accepted, as in Settings.
    key = source.get("X_CONSUMER_KEY") or source.get("consumer_key") or ""
    secret = source.get("X_CONSUMER_SECRET") or source.get("consumer_secret") or ""
    api_url = (source.get("X_API_URL") or DEFAULT_API_URL).strip().rstrip("/")
    return key.strip(), secret.strip(), api_url


def _fail(
    out: Callable[[str], None], exc: BaseException, api_url: str, *, auth: str, auth_status=1
) -> int:
    """One sentence for what went wrong: the step's own for refused credentials."""
    error = classify(exc)
    if error.kind is Kind.AUTH:
        out(auth)
        return auth_status
    if error.status is None:
        out(f"Cannot reach X at {api_url} ({error.detail}): check the network and X_API_URL.")
    else:
        out(error.reason)
    return 1


def write_env(env_file: Path, values: Mapping[str, str]) -> None:
    """Set each key in the .env file, replacing an existing line rather than adding another."""
    from dotenv import set_key

    env_file.touch(exist_ok=True)
    for name, value in values.items():
        set_key(env_file, name, value, quote_mode="never")


def open_in_browser(url: str) -> bool:
    """Open `url` where a graphical browser exists; on a headless Linux box (a server, a
    `heroku run` dyno) webbrowser would start a text browser in this terminal, so skip it."""
    headless = sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )
    if headless and not os.environ.get("BROWSER"):
        return False
    return webbrowser.open(url)
