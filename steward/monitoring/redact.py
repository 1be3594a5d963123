"""Credentials out of everything monitoring shows: CHECKS in `python bot.py config`, /checks,
/check, logs and error sentences.

Monitoring targets often carry a secret in the URL itself: a password before the host
(`https://user:pass@host`), an API key as a query value (`?apikey=...`, `?token=...`), or a key as
a path segment (`https://mainnet.infura.io/v3/<32 hex digits>`). Each is replaced by `***`; the
scheme, host, port and the rest of the path stay, so a person can still tell targets apart.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit, urlunsplit

MASK = "***"
# Query keys whose values are credentials (compared lower-case, `-` read as `_`).
_SECRET_KEYS = re.compile(
    r"(^|_)(token|apikey|api_key|key|secret|password|passwd|pass|pwd|auth|authorization|"
    r"access_token|sig|signature|credential|credentials|session|jwt|bearer|private)($|_)"
)
# A path segment that looks like a generated key: long, letters and digits mixed.
_KEY_SEGMENT = re.compile(r"^(?=[A-Za-z0-9_\-]*\d)(?=[A-Za-z0-9_\-]*[A-Za-z])[A-Za-z0-9_\-]{20,}$")
# A URL in free text: up to whitespace, a quote or a separator CHECKS uses between URLs.
_URL = re.compile(r"""\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s'"<>|,;]+""")


def _secret_key(key: str) -> bool:
    return bool(_SECRET_KEYS.search(key.lower().replace("-", "_")))


def redact_url(url: str) -> str:
    """The URL with its credentials replaced by ***."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
    except ValueError:
        return MASK
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    path = "/".join(MASK if _KEY_SEGMENT.match(seg) else seg for seg in parts.path.split("/"))
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        shown = [f"{k}={MASK}" if _secret_key(k) and v else f"{k}={v}" for k, v in pairs]
        query = "&".join(shown) if pairs else query
    return urlunsplit((parts.scheme, netloc, path, query, parts.fragment))


def redact(text: str) -> str:
    """Free text (CHECKS, an error sentence, a log line) with every URL's credentials hidden."""
    return _URL.sub(lambda m: redact_url(m.group(0)), text)


def secrets_in(text: str | None) -> list[str]:
    """The credential values the URLs in `text` hold, for the log's redaction list."""
    found: list[str] = []
    for match in _URL.finditer(text or ""):
        try:
            parts = urlsplit(match.group(0))
            password = parts.password
        except ValueError:
            continue
        if password:
            found.append(password)
        if parts.username and "@" in parts.netloc and len(parts.username) >= 16:
            found.append(parts.username)  # a key given as the user name (https://KEY@host)
        found += [seg for seg in parts.path.split("/") if _KEY_SEGMENT.match(seg)]
        found += [v for k, v in parse_qsl(parts.query) if v and _secret_key(k)]
    return [s for s in found if len(s) >= 4]
