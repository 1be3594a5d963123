"""What to check: the CHECKS and CHECKS_FILE settings, parsed into `CheckSpec`s.

Compact form (CHECKS, one line fits several): entries separated by `;` or newlines, each
`name=target` followed by optional `key=value` options separated by spaces. Quote a value
that holds spaces or `;` (shell style: `condition='$.status == "ok"'`). Targets:

    api=https://example.com/health                   http: GET, status 200-399 is good
    db=tcp://db.internal:5432                        tcp: connect time
    node=evm:https://node|https://ref1,https://ref2  evm_lag: blocks behind the references
    queue=python:myapp.checks:queue_depth            python: a function returning a number/bool
    cert=tls://example.com                           tls: days until the certificate expires
    name=dns://example.com                           dns: the name resolves (lookup time in ms)

    CHECKS='api=https://example.com/health timeout=5 alert_above=800; db=tcp://db:5432'

JSON form (CHECKS starting with `[`, or a CHECKS_FILE ending in .json holding a list or
`{"checks": [...]}`): a list of objects with `name`, `kind` (http, tcp, evm_lag, python) and the
kind's target: `url` (http), `host` and `port` (tcp), `url` and `references` (evm_lag),
`function` (python). TOML (a CHECKS_FILE ending in .toml) holds the same as `[[checks]]` tables.

Options (compact and JSON alike):
    interval        seconds between runs (or 30s, 5m); default CHECK_INTERVAL
    timeout         seconds one run may take; default 10
    fail_threshold  bad samples in a row before alerting; default 3
    ok_threshold    good samples in a row before recovering; default 2
    alert_above / clear_below   value band: alert above, clear below (hysteresis)
    alert_below / clear_above   the same for values that must stay high
    renotify        repeat an alert while still down this often (1h, 30m); 0 never; default 1h
    contains        http: the body must contain this text
    condition       http: a JSON body condition like `$.status == "ok"` (see condition.py)
    expect_status   http: the one status code that is good
    stall_after     evm_lag: the node's height unchanged this long is bad; default 10m, 0 off
    method          http: GET (default), HEAD, POST, PUT, PATCH, DELETE or OPTIONS
    headers         http: a JSON object of request headers; `${NAME}` in a value is read from
                    the environment variable NAME when the check runs (keep tokens out of URLs)
    body            http: the request body (sent as JSON when it parses as JSON)
    expect          dns: an address the name must resolve to
    maintenance     recurring windows (in TZ) when it alerts as if muted: 'sun 02:00-04:00'
    tls's value is the days left; it alerts below 14 days unless alert_below says otherwise.

Values: http's is the response time in ms, tcp's the connect time in ms, evm_lag's the blocks
the node is behind the median of the references, python's the number returned (a bool is 1/0).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import shlex
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from steward.monitoring.alerts import Rules
from steward.monitoring.condition import Condition, ConditionError, parse_condition
from steward.monitoring.maintenance import Window
from steward.monitoring.maintenance import parse as parse_windows
from steward.monitoring.options import ChecksError, Values
from steward.monitoring.request import request_options

KINDS = ("http", "tcp", "evm_lag", "python", "tls", "dns")
TLS_DAYS = 14.0  # a tls check alerts below this many days left unless told otherwise

DEFAULT_TIMEOUT = 10.0
DEFAULT_STALL = dt.timedelta(minutes=10)
COMPACT_FORM = "name=target entries separated by ';', e.g. api=https://example.com/health"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_FUNCTION = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")

_COMMON = {
    "name", "kind", "interval", "timeout", "fail_threshold", "ok_threshold", "alert_above",
    "clear_below", "alert_below", "clear_above", "renotify", "maintenance",
}  # fmt: skip
_KIND_KEYS = {
    "http": {"url", "contains", "condition", "expect_status", "method", "headers", "body"},
    "tcp": {"host", "port"},
    "tls": {"host", "port"},
    "dns": {"host", "expect"},
    "evm_lag": {"url", "references", "stall_after"},
    "python": {"function"},
}
_TARGET_FORM = {
    "http": "url like https://example.com/health",
    "tcp": "host and port like tcp://db.internal:5432",
    "evm_lag": "url and references like evm:https://node|https://ref1,https://ref2",
    "python": "function like python:package.module:function",
    "tls": "host like tls://example.com or tls://example.com:8443",
    "dns": "name like dns://example.com",
}


@dataclass(frozen=True)
class CheckSpec:
    name: str
    kind: str
    url: str | None = None
    host: str | None = None
    port: int | None = None
    references: tuple[str, ...] = ()
    function: str | None = None
    interval: int | None = None  # seconds; None = CHECK_INTERVAL
    timeout: float = DEFAULT_TIMEOUT
    rules: Rules = field(default_factory=Rules)
    contains: str | None = None
    condition: Condition | None = None
    expect_status: int | None = None
    stall_after: dt.timedelta | None = DEFAULT_STALL
    method: str = "GET"
    # Header values as written, `${NAME}` unresolved: the secret is read when the check runs,
    # so it appears in no spec, job name or log.
    headers: tuple[tuple[str, str], ...] = ()
    body: str | None = None
    expect: str | None = None
    maintenance: tuple[Window, ...] = ()  # recurring windows when it alerts as if muted

    @property
    def target(self) -> str:
        """The target as a person reads it (no reference list)."""
        if self.kind in ("tcp", "tls"):
            return f"{self.host}:{self.port}"
        if self.kind == "dns":
            return str(self.host)
        return self.function if self.kind == "python" else str(self.url)

    def band(self) -> tuple[float | None, float | None] | None:
        """The alert lines (low, high) for charts, or None without a band."""
        r = self.rules
        if r.alert_above is None and r.alert_below is None:
            return None
        return (r.alert_below, r.alert_above)


def load_checks(checks: str | None, checks_file: str | None = None) -> list[CheckSpec]:
    """Every check from CHECKS and CHECKS_FILE (both may be set; names must differ)."""
    specs = parse_checks(checks) if checks and checks.strip() else []
    if checks_file:
        specs += parse_file(checks_file)
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise ChecksError(f"check {spec.name!r} is defined twice; give each check its own name")
        seen.add(spec.name)
    return specs


def parse_checks(text: str) -> list[CheckSpec]:
    """CHECKS: the compact form, or a JSON list when it starts with `[`."""
    if text.lstrip().startswith("["):
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise ChecksError(
                f"is not valid JSON ({exc}); expected a JSON list of checks"
            ) from None
        return _from_list(raw, "the JSON list")
    return [build(entry) for entry in _compact_entries(text)]


def parse_file(path: str) -> list[CheckSpec]:
    """CHECKS_FILE: a .toml file of `[[checks]]` tables or a .json file."""
    where = Path(path)
    if where.suffix.lower() not in (".toml", ".json"):
        raise ChecksError(f"file {path!r} is neither .toml nor .json")
    try:
        text = where.read_text(encoding="utf-8")
    except OSError as exc:
        raise ChecksError(f"file {path!r} cannot be read ({exc.strerror})") from None
    try:
        raw: Any = tomllib.loads(text) if where.suffix.lower() == ".toml" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ChecksError(
            f"file {path!r} is not valid {where.suffix[1:].upper()} ({exc})"
        ) from None
    if isinstance(raw, dict):
        if "checks" not in raw:
            raise ChecksError(f"file {path!r} has no checks; expected [[checks]] tables")
        raw = raw["checks"]
    return _from_list(raw, f"file {path!r}")


def _from_list(raw: Any, where: str) -> list[CheckSpec]:
    if not isinstance(raw, list):
        raise ChecksError(f'{where} is not a list of checks; expected [{{"name": ..., ...}}]')
    specs = []
    for n, item in enumerate(raw, 1):
        if not isinstance(item, dict):
            raise ChecksError(f"check #{n} in {where} is not an object with name, kind and target")
        specs.append(build(item, f"#{n}"))
    return specs


def _compact_entries(text: str) -> Iterable[dict[str, Any]]:
    for line in text.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";")
        lexer.whitespace_split = True
        lexer.commenters = ""
        try:
            tokens = list(lexer)
        except ValueError:
            raise ChecksError(f"entry {line.strip()!r} has an unclosed quote") from None
        entry: list[str] = []
        for token in [*tokens, ";"]:
            if token.strip(";"):
                entry.append(token)
            elif entry:
                yield _compact_entry(entry)
                entry = []


def _compact_entry(tokens: list[str]) -> dict[str, Any]:
    name, eq, target = tokens[0].partition("=")
    if not eq or not name or not target:
        raise ChecksError(f"entry {tokens[0]!r} is not name=target; expected {COMPACT_FORM}")
    raw: dict[str, Any] = {"name": name, **_target(f"check {name!r}", target)}
    for option in tokens[1:]:
        key, eq, value = option.partition("=")
        if not eq or not key:
            raise ChecksError(
                f"check {name!r} has {option!r}, which is not key=value; "
                "options look like timeout=5 or alert_above=800"
            )
        raw[key] = value
    return raw


def parse_target(kind: str, text: str, label: str = "this check") -> dict[str, Any]:
    """A target typed for a check of `kind` (as /watch asks for it), as that check's options.

    The same forms and checks as CHECKS, except that tcp and evm_lag targets may leave out
    their `tcp://` or `evm:` prefix. Raises ChecksError with a sentence starting with `label`.
    """
    text = text.strip()
    if kind not in KINDS:
        raise ChecksError(f"{label} has the kind {kind!r}; expected one of {', '.join(KINDS)}")
    prefix = _PREFIXES[kind]
    if not text.lower().startswith(prefix):
        if kind not in ("tcp", "evm_lag"):
            raise ChecksError(f"{label} needs a {_TARGET_FORM[kind]}, not {text!r}")
        text = prefix[0] + text
    options = _target(label, text)
    build({"name": "new", **options}, label=label)  # URLs, references and port, as for CHECKS
    return options


_PREFIXES = {
    "http": ("http://", "https://"),
    "tcp": ("tcp://",),
    "evm_lag": ("evm:",),
    "python": ("python:", "py:"),
    "tls": ("tls://",),
    "dns": ("dns://",),
}


def _target(label: str, target: str) -> dict[str, Any]:
    low = target.lower()
    if low.startswith(("http://", "https://")):
        return {"kind": "http", "url": target}
    if low.startswith("tcp://"):
        parts = urlsplit(target)
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or port is None:
            raise ChecksError(f"{label} has {target!r}; expected {_TARGET_FORM['tcp']}")
        return {"kind": "tcp", "host": parts.hostname, "port": port}
    if low.startswith("evm:"):
        node, bar, refs = target[4:].partition("|")
        if not bar:
            raise ChecksError(f"{label} lists no references; expected {_TARGET_FORM['evm_lag']}")
        return {"kind": "evm_lag", "url": node, "references": refs}
    if low.startswith(("tls://", "dns://")):
        kind = low[:3]
        parts = urlsplit(target)
        try:
            port = parts.port
        except ValueError:
            port = -1
        if not parts.hostname or port == -1 or (kind == "dns" and port is not None):
            raise ChecksError(f"{label} has {target!r}; expected {_TARGET_FORM[kind]}")
        return {"kind": kind, "host": parts.hostname, **({"port": port} if port else {})}
    if low.startswith(("python:", "py:")):
        return {"kind": "python", "function": target.split(":", 1)[1]}
    raise ChecksError(
        f"{label} has the target {target!r}, which is none of: an http(s) URL, "
        "tcp://host:port, evm:URL|REF1,REF2, python:module:function, tls://host or dns://name"
    )


def build(raw: dict[str, Any], where: str = "", label: str | None = None) -> CheckSpec:
    """One CheckSpec from a mapping of option names to values (strings or JSON values).

    Errors name the check (`check 'api'`), or start with `label` when one is given.
    """
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        label = label or (f"check {where}" if where else "a check")
        raise ChecksError(
            f"{label} has the name {name!r}; expected 1-64 letters, digits, '_', '-' or '.'"
        )
    label = label or f"check {name!r}"
    kind = raw.get("kind")
    if kind not in KINDS:
        raise ChecksError(f"{label} has the kind {kind!r}; expected one of {', '.join(KINDS)}")
    allowed = _COMMON | _KIND_KEYS[kind]
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ChecksError(
            f"{label} has the unknown option {unknown[0]!r}; {kind} checks take "
            f"{', '.join(sorted(allowed - {'name', 'kind'}))}"
        )
    v = Values(label, raw)
    rules = Rules(
        fail_threshold=v.integer("fail_threshold", 3, 1, 1000),
        ok_threshold=v.integer("ok_threshold", 2, 1, 1000),
        alert_above=v.number("alert_above"),
        clear_below=v.number("clear_below"),
        alert_below=v.number("alert_below"),
        clear_above=v.number("clear_above"),
        renotify=v.duration("renotify", dt.timedelta(hours=1), allow_zero=True),
    )
    _check_band(label, rules)
    interval = v.duration("interval", None)
    timeout = v.duration("timeout", dt.timedelta(seconds=DEFAULT_TIMEOUT))
    target: dict[str, Any] = {}
    if kind in ("http", "evm_lag"):
        target["url"] = v.url("url")
    if kind == "evm_lag":
        target["references"] = v.references()
        target["stall_after"] = v.duration("stall_after", DEFAULT_STALL, allow_zero=True)
    if kind == "http" and (cond := v.text("condition")) is not None:
        try:
            target["condition"] = parse_condition(cond)
        except ConditionError as exc:
            raise ChecksError(f"{label}: {exc}") from None
    if kind in ("tcp", "tls", "dns"):
        target["host"] = v.text("host")
        if not target["host"]:
            raise ChecksError(f"{label} has no host; expected {_TARGET_FORM[kind]}")
    if kind == "tcp":
        target["port"] = v.integer("port", None, 1, 65535, required=True)
    if kind == "tls":
        target["port"] = v.integer("port", 443, 1, 65535)
        if rules.alert_below is None:
            rules = dataclasses.replace(rules, alert_below=TLS_DAYS)
    if kind == "dns":
        target["expect"] = v.text("expect")
    if kind == "http":
        target.update(request_options(label, v, raw))
    if kind == "python":
        target["function"] = v.text("function")
        if not target["function"] or not _FUNCTION.match(target["function"]):
            raise ChecksError(
                f"{label} has the function {target['function']!r}; "
                f"expected {_TARGET_FORM['python']}"
            )
    if (window := v.text("maintenance")) is not None:
        target["maintenance"] = parse_windows(window, label)
    return CheckSpec(
        name=name,
        kind=kind,
        interval=None if interval is None else max(1, round(interval.total_seconds())),
        timeout=timeout.total_seconds() if timeout else DEFAULT_TIMEOUT,
        rules=rules,
        contains=v.text("contains"),
        expect_status=v.integer("expect_status", None, 100, 599),
        **target,
    )


def _check_band(label: str, r: Rules) -> None:
    if r.clear_below is not None and r.alert_above is None:
        raise ChecksError(f"{label} sets clear_below without alert_above; set both, e.g. 10 and 3")
    if r.clear_above is not None and r.alert_below is None:
        raise ChecksError(f"{label} sets clear_above without alert_below; set both, e.g. 3 and 10")
    if r.clear_below is not None and r.clear_below > r.alert_above:
        raise ChecksError(
            f"{label} has clear_below above alert_above; expected clear_below <= alert_above"
        )
    if r.clear_above is not None and r.clear_above < r.alert_below:
        raise ChecksError(
            f"{label} has clear_above below alert_below; expected clear_above >= alert_below"
        )
