"""Publishers: the one interface every place a post can go to (X, a Telegram channel, a dry run).

A publisher has a `name` (the post's channel in the store) and one method, `publish(text, key)`,
which returns `Published` or raises `PublishError` saying whether trying again could help. `key`
is the post's id in the store; a publisher that can deliver idempotently uses it so that a retry
after a crash never posts twice. A new network (Mastodon, Bluesky) is one more class here.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import sqlalchemy as sa

from steward.posting import textcount
from steward.posting.x_errors import Kind, classify
from steward.telegram.formatting import esc

if TYPE_CHECKING:
    import tweepy

    from steward.posting.wiring import LazyClient
    from steward.telegram.outbox import Outbox

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Published:
    remote_id: str | None  # the post's id where it went (None for a dry run)
    url: str | None = None


@dataclass
class Outcome:
    channel: str
    post_id: int
    state: str  # "sent", "pending" (try again later), "failed"
    url: str | None = None
    remote_id: str | None = None
    error: str | None = None

    def to_json(self) -> dict:
        return self.__dict__.copy()


def month_start(now: dt.datetime) -> dt.datetime:
    return now.astimezone(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


class PublishError(Exception):
    """A post that did not go out. `permanent`: the same text will never go out there, so do
    not retry it; `duplicate`: the channel already has this text; `auth`: the credentials are
    wrong or revoked (every post will fail until a person fixes them); `retry_at`: not before;
    `retry_soon`: the service answered a passing fault (500, 503): try again within minutes."""

    def __init__(
        self,
        reason: str = "",
        *,
        permanent: bool,
        duplicate: bool = False,
        retry_at: dt.datetime | None = None,
        auth: bool = False,
        retry_soon: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason, self.permanent, self.duplicate = reason, permanent, duplicate
        self.retry_at, self.auth, self.retry_soon = retry_at, auth, retry_soon


class AccountCache(Protocol):
    """Where a publisher keeps its account's name between runs (a row of the store)."""

    def load(self) -> str | None: ...

    def save(self, value: str) -> None: ...


class Publisher(Protocol):
    name: str

    def publish(self, text: str, key: str) -> Published: ...


class XPublisher:
    """Posts to X with a user-context tweepy Client (see x_client.make_client). Blocking."""

    name = "x"

    def __init__(
        self, client: tweepy.Client | LazyClient, account: AccountCache | None = None
    ) -> None:
        self.client = client
        self.account = account  # keeps the @name across runs: GET /2/users/me is billed
        self._username: str | None = account.load() if account else None

    def publish(self, text: str, key: str) -> Published:
        # X has no idempotency key: the store's pending row is what prevents a second attempt.
        if not textcount.fits(text, "x"):
            raise PublishError(
                f"the text is {textcount.x_length(text)} characters as X counts them "
                f"(at most {textcount.X_LIMIT}, no control characters)",
                permanent=True,
            )
        import requests  # here, not at import: see wiring.LazyClient
        import tweepy

        try:
            response = self.client.create_tweet(text=text, user_auth=True)
        except (tweepy.TweepyException, requests.RequestException) as exc:
            error = classify(exc)
            raise PublishError(
                error.reason,
                permanent=error.permanent,
                duplicate=error.kind is Kind.DUPLICATE,
                retry_at=error.retry_at,
                auth=error.kind is Kind.AUTH,
                retry_soon=error.status is not None
                and (error.status >= 500 or error.status == 408),
            ) from exc
        post_id = str(response.data["id"])
        return Published(post_id, f"https://x.com/{self._account()}/status/{post_id}")

    def _account(self) -> str:
        """The account's @name for links; "i" (X's own alias) until it is known."""
        if self._username is None:
            import requests
            import tweepy

            try:
                self._username = self.client.get_me(user_auth=True).data.username
                if self.account is not None:
                    self.account.save(self._username)
            except (tweepy.TweepyException, requests.RequestException) as exc:
                # The post is out; a link through X's alias is better than a failed publish.
                log.warning("x: could not look up the account name: %s", classify(exc).reason)
                return "i"
        return self._username


QUEUED = "outbox:"  # the remote id of a post handed to the outbox: "outbox:<row id>"


class TelegramChannelPublisher:
    """Posts to a Telegram channel or group through the outbox, which sends each key once."""

    name = "telegram"

    def __init__(self, outbox: Outbox, chat: str | int) -> None:
        self.outbox, self.chat = outbox, chat

    def publish(self, text: str, key: str) -> Published:
        if not textcount.fits(text, "telegram"):
            raise PublishError(
                f"the text is {textcount.telegram_length(text)} characters "
                f"(Telegram takes at most {textcount.TELEGRAM_LIMIT})",
                permanent=True,
            )
        try:
            row = self.outbox.notify(esc(text), chat_id=self.chat, key=f"post:{key}")
        except sa.exc.SQLAlchemyError as exc:
            reason = f"the outbox could not store the post: {type(exc).__name__}"
            raise PublishError(reason, permanent=False) from exc
        # The message is queued, not sent: its Telegram id is not known yet; the outbox row is,
        # and /posts reads from it whether Telegram took the post.
        return Published(f"{QUEUED}{row}", None)


class DryRunPublisher:
    """Publishes nowhere: logs what would have been posted (to try templates without posting)."""

    name = "dry-run"

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.log = logger or log

    def publish(self, text: str, key: str) -> Published:
        self.log.info("would post: %s", text)
        return Published(None, None)
