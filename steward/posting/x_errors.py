"""X's failures sorted into kinds: duplicate, bad credentials, rate limit, transient, rejected.

tweepy and requests are imported when an exception is classified (it came from them, so they
are loaded by then), not when this module is: posting imports it at start-up.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import requests


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
    import requests
    import tweepy
    from requests_oauthlib.oauth1_session import TokenRequestDenied

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
    import requests

    # requests' messages nest the whole urllib3 chain; the innermost reason is what helps.
    text = str(exc)
    if "Connection refused" in text:
        return "connection refused"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "unknown host"
    if isinstance(exc, requests.Timeout):
        return "timed out"
    return f"{type(exc).__name__}: {text}"[:200]


def rate_limited(cause: BaseException | None) -> bool:
    """Whether a publish failed on X's rate limit (for errors that carry no reset time)."""
    return cause is not None and classify(cause).kind is Kind.RATE_LIMITED
