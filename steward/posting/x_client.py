"""X clients: tweepy objects pointed at X_API_URL (X's failures are sorted in x_errors.py).

tweepy writes `https://api.twitter.com` into every request it builds. When X_API_URL names
another server (a proxy, or the fake X in tests), the requests are sent there instead, and the
URL is changed before the request is signed: an OAuth 1.0a signature covers the URL, so a
request signed for one host and sent to another would be refused.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import requests
import tweepy

DEFAULT_API_URL = "https://api.twitter.com"
# Hosts tweepy writes into its URLs (API v2, OAuth, media upload).
X_HOSTS = frozenset({"api.twitter.com", "api.x.com", "upload.twitter.com", "upload.x.com"})
TIMEOUT = 30.0  # seconds; tweepy sets none, and a stalled connection would hold a tick forever


def reroute(url: str, api_url: str) -> str:
    """`url` with X's scheme and host replaced by `api_url`'s (its path prefix kept in front)."""
    parts, base = urlsplit(url), urlsplit(api_url)
    if parts.hostname not in X_HOSTS or api_url.rstrip("/") == DEFAULT_API_URL:
        return url
    path = base.path.rstrip("/") + parts.path
    return urlunsplit((base.scheme, base.netloc, path, parts.query, parts.fragment))


class XSession(requests.Session):
    """A requests session that sends X's hosts to `api_url` and never waits forever."""

    def __init__(self, api_url: str = DEFAULT_API_URL, timeout: float = TIMEOUT) -> None:
        super().__init__()
        self.api_url, self.timeout = api_url, timeout

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        # Preparing is where the OAuth1 auth signs, so the URL must be final before it.
        request.url = reroute(request.url, self.api_url)
        return super().prepare_request(request)

    def request(self, method, url, *args, **kwargs):  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().request(method, url, *args, **kwargs)


def make_client(
    consumer_key: str,
    consumer_secret: str,
    access_token: str,
    access_secret: str,
    api_url: str = DEFAULT_API_URL,
) -> tweepy.Client:
    """A tweepy Client in user context; rate limits raise (the caller decides when to retry)."""
    client = tweepy.Client(
        consumer_key=consumer_key,
        consumer_secret=consumer_secret,
        access_token=access_token,
        access_token_secret=access_secret,
        wait_on_rate_limit=False,
    )
    client.session.close()
    client.session = XSession(api_url)
    return client


class _RoutedOAuth1UserHandler(tweepy.OAuth1UserHandler):
    # tweepy builds a fresh OAuth1Session for the access-token step, so the one place that
    # reaches every OAuth request (request token, authorize page, access token) is the URL.
    def __init__(self, *args, api_url: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.api_url = api_url

    def _get_oauth_url(self, endpoint: str) -> str:
        return reroute(super()._get_oauth_url(endpoint), self.api_url)


def make_oauth_handler(
    consumer_key: str, consumer_secret: str, api_url: str = DEFAULT_API_URL, callback: str = "oob"
) -> tweepy.OAuth1UserHandler:
    """The PIN flow's handler: `get_authorization_url()`, then `get_access_token(pin)`."""
    return _RoutedOAuth1UserHandler(
        consumer_key, consumer_secret, callback=callback, api_url=api_url
    )
