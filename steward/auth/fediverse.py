"""`python auth_tool.py mastodon` and `python auth_tool.py bluesky`: accounts beyond X.

Mastodon: registers an OAuth app on the instance (write:statuses), has the person approve it in
the browser and paste the code the instance shows, trades the code for a token, checks it, and
prints `heroku config:set MASTODON_API_URL=... MASTODON_ACCESS_TOKEN=...`. Bluesky: signs in
with the app password once (never the account password) and prints the lines to set. With a
`store` (`auth_tool.py ... --bot NAME`) the values go to a farm bot's store instead, encrypted.
"""

from __future__ import annotations

import getpass
import shlex
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import urlencode

import httpx

from steward.auth.x import open_in_browser, write_env
from steward.config import EXIT_CONFIG

OOB = "urn:ietf:wg:oauth:2.0:oob"  # the instance shows the code instead of redirecting
SCOPES = "read:accounts write:statuses"
TIMEOUT = 30.0
Store = Callable[[dict[str, str]], str]  # steward.farm.auth.BotTokens


def ask_secret(prompt: str) -> str:
    """Typed at a terminal without echo; read from stdin when it is piped."""
    return getpass.getpass(prompt) if sys.stdin.isatty() else sys.stdin.readline()


def _deliver(values: Mapping[str, str], env_file: Path | None, store: Store | None, out) -> int:
    if store is not None:
        # A bot's secrets are named as the variables, in lower case; never printed.
        out(store({name.lower(): value for name, value in values.items()}))
    elif env_file is not None:
        write_env(env_file, values)
        out(f"{' and '.join(values)} written to {env_file}.")
    else:
        pairs = " ".join(f"{name}={shlex.quote(value)}" for name, value in values.items())
        out("Set them with:")
        out(f"   heroku config:set {pairs}")
    return 0


def run_mastodon_auth(
    instance: str,
    *,
    env_file: Path | None = None,
    store: Store | None = None,
    input: Callable[[str], str] = input,
    out: Callable[[str], None] = print,
    open_browser: Callable[[str], bool] | None = None,
) -> int:
    base = instance.strip().rstrip("/")
    if not base.startswith(("http://", "https://")):
        base = f"https://{base}"
    try:
        with httpx.Client(base_url=base, timeout=TIMEOUT) as http:
            app = http.post(
                "/api/v1/apps",
                data={"client_name": "steward", "redirect_uris": OOB, "scopes": SCOPES},
            )
            if app.status_code != 200:
                out(f"{base} did not register the app ({app.status_code}): is it a Mastodon?")
                return 1
            client = app.json()
            query = {
                "client_id": client["client_id"],
                "response_type": "code",
                "redirect_uri": OOB,
                "scope": SCOPES,
            }
            url = f"{base}/oauth/authorize?{urlencode(query)}"
            out(f"Open this page, sign in as the account that will post, and approve:\n   {url}")
            (open_browser or open_in_browser)(url)
            code = input("Code shown by the instance: ").strip()
            token = http.post(
                "/oauth/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "client_id": client["client_id"],
                    "client_secret": client["client_secret"],
                    "redirect_uri": OOB,
                    "scope": SCOPES,
                },
            )
            if token.status_code != 200:
                out("The instance did not accept the code; run the command again for a new one.")
                return 1
            access = token.json()["access_token"]
            me = http.get(
                "/api/v1/accounts/verify_credentials",
                headers={"Authorization": f"Bearer {access}"},
            )
            if me.status_code != 200:
                out(f"The new token does not work ({me.status_code}); try again.")
                return 1
    except httpx.HTTPError as exc:
        out(f"{base} could not be reached ({type(exc).__name__}).")
        return 1
    out(f"Posting as @{me.json().get('acct')} on {base}.")
    values = {"MASTODON_API_URL": base, "MASTODON_ACCESS_TOKEN": access}
    return _deliver(values, env_file, store, out)


def run_bluesky_auth(
    handle: str | None,
    app_password: str | None,
    api_url: str,
    *,
    env_file: Path | None = None,
    store: Store | None = None,
    default_handle: str | None = None,
    input: Callable[[str], str] = input,
    secret_input: Callable[[str], str] = ask_secret,
    out: Callable[[str], None] = print,
) -> int:
    if not handle:
        ask = f"[{default_handle}]" if default_handle else "(name.bsky.social)"
        handle = input(f"Bluesky handle {ask}: ").strip() or default_handle or ""
    handle = handle.strip().lstrip("@")
    password = app_password or secret_input(
        "App password (Settings > Privacy and security > App "
        "passwords; never your account password; not shown): "
    )
    password = password.strip()
    if not handle or not password:
        out("A handle and an app password are both needed.")
        return EXIT_CONFIG
    try:
        response = httpx.post(
            f"{api_url.rstrip('/')}/xrpc/com.atproto.server.createSession",
            json={"identifier": handle, "password": password},
            timeout=TIMEOUT,
        )
    except httpx.HTTPError as exc:
        out(f"{api_url} could not be reached ({type(exc).__name__}).")
        return 1
    if response.status_code != 200:
        out(
            f"Bluesky refused {handle} with that app password ({response.status_code}); "
            "nothing was changed."
        )
        return 1
    out(f"Signed in as @{response.json().get('handle', handle)}.")
    values = {"BLUESKY_HANDLE": handle, "BLUESKY_APP_PASSWORD": password}
    if api_url.rstrip("/") != "https://bsky.social":
        values["BLUESKY_API_URL"] = api_url
    return _deliver(values, env_file, store, out)
