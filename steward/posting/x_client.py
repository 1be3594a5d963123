"""X clients: tweepy objects pointed at X_API_URL, and X's failures sorted into kinds.

tweepy writes `https://api.twitter.com` into every request it builds. When X_API_URL names
another server (a proxy, or the fake X in tests), the requests are sent there instead, and the
URL is changed before the request is signed: an OAuth 1.0a signature covers the URL, so a
request signed for one host and sent to another would be refused.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import requests
import tweepy
from requests_oauthlib.oauth1_session import TokenRequestDenied

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


class Kind(enum.StrEnum):
    DUPLICATE = "duplicate"  # X already has this text from this account
    AUTH = "auth"  # keys or tokens wrong or revoked, or the app may not do this
    RATE_LIMITED = "rate_limited"  # come back at retry_at
    TRANSIENT = "transient"  # X or the network failed; the same request may work later
    REJECTED = "rejected"  # X refused this request for good (too long, malformed, ...)


@dataclass(frozen=True)
class XError:
    kind: Kind
    reason: str  # one sentence for a person; never holds a secret
    status: int | None = None  # None: no answer from X at all
    retry_at: dt.datetime | None = None
    detail: str = ""  # X's own words, or the network's, as said in `reason`

    @property
    def permanent(self) -> bool:
        return self.kind in (Kind.DUPLICATE, Kind.AUTH, Kind.REJECTED)


def classify(exc: BaseException) -> XError:
    """Sort an exception from tweepy, requests or requests-oauthlib into an `XError`."""
    # tweepy's OAuth handler wraps whatever went wrong in a bare TweepyException.
    while (
        type(exc) is tweepy.TweepyException and exc.args and isinstance(exc.args[0], BaseException)
    ):
        exc = exc.args[0]
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if isinstance(exc, tweepy.HTTPException | TokenRequestDenied) and status is not None:
        return _from_response(response, status)
    # requests' exceptions are OSErrors too, so the network-level ones are told apart first.
    if isinstance(exc, requests.Timeout | requests.ConnectionError):
        short = _short(exc)
        return XError(Kind.TRANSIENT, f"X could not be reached ({short}).", detail=short)
    if isinstance(exc, requests.RequestException | tweepy.TweepyException | OSError):
        short = _short(exc)
        return XError(Kind.TRANSIENT, f"The request to X failed ({short}).", detail=short)
    short = f"{type(exc).__name__}: {exc}"[:200]
    return XError(Kind.REJECTED, f"Unexpected error talking to X ({short}).", detail=short)


def _from_response(response: requests.Response, status: int) -> XError:
    detail = _detail(response)
    if status == 403 and "duplicate content" in detail.lower():
        reason = "X refused the text as a duplicate of an earlier post."
        return XError(Kind.DUPLICATE, reason, 403, detail=detail)
    if status == 401:
        reason = "X did not accept the credentials (401 Unauthorized)."
        return XError(Kind.AUTH, reason, 401, detail=detail)
    if status == 403:
        return XError(Kind.AUTH, f"X refused the request (403): {detail}", 403, detail=detail)
    if status == 429:
        retry_at = _reset_time(response.headers)
        when = f" until {retry_at:%Y-%m-%d %H:%M:%S} UTC" if retry_at else ""
        reason = f"X's rate limit is reached{when}."
        return XError(Kind.RATE_LIMITED, reason, 429, retry_at, detail=detail)
    if status >= 500 or status == 408:
        reason = f"X answered {status} ({detail}); it may work again later."
        return XError(Kind.TRANSIENT, reason, status, detail=detail)
    reason = f"X refused the request ({status}): {detail}"
    return XError(Kind.REJECTED, reason, status, detail=detail)


def _reset_time(headers) -> dt.datetime | None:
    """When the exhausted limit resets: the 15-minute window, or a 24-hour cap if that is out."""
    resets = []
    for prefix in ("x-rate-limit", "x-user-limit-24hour", "x-app-limit-24hour"):
        reset = headers.get(f"{prefix}-reset")
        if reset and reset.isdigit() and headers.get(f"{prefix}-remaining", "0") == "0":
            resets.append(int(reset))
    if not resets:
        return None
    return dt.datetime.fromtimestamp(max(resets), dt.UTC)


def _detail(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return (response.text or response.reason or "").strip()[:200]
    if not isinstance(body, dict):
        return str(body)[:200]
    if body.get("detail"):
        return str(body["detail"])
    errors = body.get("errors") or []
    messages = [str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors]
    return "; ".join(messages) or str(body.get("title") or response.reason or "")


def _short(exc: BaseException) -> str:
    # requests' messages nest the whole urllib3 chain; the innermost reason is what helps.
    text = str(exc)
    if "Connection refused" in text:
        return "connection refused"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "unknown host"
    if isinstance(exc, requests.Timeout):
        return "timed out"
    return f"{type(exc).__name__}: {text}"[:200]
