"""Running checks: each kind (http, tcp, evm_lag, python) turned into a `Sample`, many at once.

One `Runner` per worker holds a shared httpx client and a bound on how many checks run at the
same time; every check has its own timeout, so a target that hangs delays nobody else. A check
whose target is down or wrong is "bad"; a check that could not judge its target (too few
reference nodes answered, a python check raised or hung) is "unknown".
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import importlib
import inspect
import json
import logging
import math
import statistics
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import httpx

from steward import db
from steward.monitoring import probes
from steward.monitoring.alerts import BAD, GOOD, UNSURE, Sample, judge
from steward.monitoring.options import ChecksError
from steward.monitoring.request import header_values
from steward.monitoring.spec import CheckSpec
from steward.timeutil import human

CHECK_CONCURRENCY = 100  # checks in flight at once
PYTHON_THREADS = 8  # python checks in flight at once (each blocks a thread)
MAX_BODY = 1_000_000  # bytes of a response body read for `contains` and `condition`
KEEPALIVE = 20  # idle connections kept between ticks
GRACE = 1.0  # seconds past a check's timeout before the runner gives up on it
ERROR_CHARS = 200
# What a request on a pooled connection the other side had closed fails with.
STALE = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
log = logging.getLogger("steward.monitoring")


def display_url(url: str) -> str:
    """A URL as it may appear in a chat or a log: scheme and host only.

    RPC URLs often carry an API key in the path or the query, so neither is ever shown.
    """
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    more = "/…" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{host}{port}{more}"


class Runner:
    """Runs checks concurrently. Create it on the event loop that runs it; `aclose()` at the end."""

    def __init__(
        self, *, concurrency: int = CHECK_CONCURRENCY, clock: Callable[[], dt.datetime] = db.utcnow
    ) -> None:
        self.concurrency = concurrency
        self.clock = clock
        self._client: httpx.AsyncClient | None = None
        self._threads = ThreadPoolExecutor(PYTHON_THREADS, thread_name_prefix="check")
        # Python checks whose last run has not returned yet: a hung function is not started
        # again on top of itself (the thread cannot be killed; it would eat the pool).
        self._busy: set[str] = set()
        self._functions: dict[str, Callable[[], Any]] = {}
        # evm_lag: each check's last target height and since when it has been that height.
        self.heights: dict[str, tuple[int, dt.datetime]] = {}

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                follow_redirects=False,
                # Few idle connections: targets are mostly distinct origins, and httpcore scans
                # its whole pool for every request (a pool of 1,000 made a tick several times
                # slower in bench/monitoring.py).
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=KEEPALIVE),
                headers={"User-Agent": "steward-monitor"},
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self._threads.shutdown(wait=False, cancel_futures=True)

    async def run(self, specs: Iterable[CheckSpec]) -> list[Sample]:
        """Run every check once, at most `concurrency` at a time; samples in the given order."""
        bound = asyncio.Semaphore(self.concurrency)

        async def one(spec: CheckSpec) -> Sample:
            async with bound:
                return await self.run_one(spec)

        return list(await asyncio.gather(*(one(spec) for spec in specs)))

    async def run_one(self, spec: CheckSpec, band: str | None = None) -> Sample:
        """One run of one check, judged against its band (`band`: the one its alert holds)."""
        return judge(await self._run_one(spec), spec.rules, band)

    async def _run_one(self, spec: CheckSpec) -> Sample:
        at = self.clock()
        kind = {
            "http": self._http,
            "tcp": self._tcp,
            "evm_lag": self._evm,
            "python": self._python,
            "tls": probes.tls,
            "dns": probes.dns,
        }
        try:
            return await asyncio.wait_for(kind[spec.kind](spec, at), spec.timeout + GRACE)
        except TimeoutError:
            status = UNSURE if spec.kind == "python" else BAD
            return Sample(at, spec.name, status, None, {"error": _timed_out(spec)})
        except Exception as exc:
            # A target no library can even try (a 64-character DNS label raises UnicodeError, a
            # soft hyphen httpx.InvalidURL): this check cannot be evaluated; the others in its
            # tick go on.
            log.warning("check %s could not run: %s", spec.name, _error(exc, spec.url))
            return Sample(at, spec.name, UNSURE, None, {"error": _error(exc, spec.url)})

    # -- http ----------------------------------------------------------------------------

    async def _http(self, spec: CheckSpec, at: dt.datetime) -> Sample:
        began = time.perf_counter()
        try:
            try:
                response, body = await self._get(spec)
            except STALE:
                # A pooled connection closed meanwhile: asked again only when asking twice is
                # harmless (a POST may have arrived).
                if spec.method not in ("GET", "HEAD", "OPTIONS"):
                    raise
                response, body = await self._get(spec)
        except httpx.TimeoutException:
            return Sample(at, spec.name, BAD, None, {"error": _timed_out(spec)})
        except httpx.HTTPError as exc:
            return Sample(at, spec.name, BAD, None, {"error": _error(exc, spec.url)})
        ms = round((time.perf_counter() - began) * 1000, 1)
        code = response.status_code
        details: dict[str, Any] = {"status_code": code}
        good = code == spec.expect_status if spec.expect_status else 200 <= code < 400
        if not good:
            details["error"] = f"HTTP {code} {response.reason_phrase}".strip()
        elif spec.contains is not None and spec.contains not in body.decode("utf-8", "replace"):
            good, details["error"] = False, f"the body does not contain {spec.contains!r}"
        elif spec.condition is not None:
            try:
                document = json.loads(body)
            except ValueError:
                good, details["error"] = False, "the body is not JSON"
            else:
                good, why = spec.condition.check(document)
                if not good:
                    details["error"] = f"{spec.condition.source} failed: {why}"
        return Sample(at, spec.name, GOOD if good else BAD, ms, details)

    async def _get(self, spec: CheckSpec) -> tuple[httpx.Response, bytes]:
        body = spec.body.encode() if spec.body is not None else None
        headers = header_values(spec)
        if body is not None and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json" if _is_json(spec.body) else "text/plain"
        request = self.client.stream(
            spec.method, str(spec.url), headers=headers, content=body, timeout=spec.timeout
        )
        async with request as response:
            return response, await _read(
                response, MAX_BODY if spec.contains or spec.condition else 0
            )

    # -- tcp -----------------------------------------------------------------------------

    async def _tcp(self, spec: CheckSpec, at: dt.datetime) -> Sample:
        began = time.perf_counter()
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(spec.host, spec.port), spec.timeout
            )
        except TimeoutError:
            return Sample(at, spec.name, BAD, None, {"error": _timed_out(spec)})
        except OSError as exc:
            return Sample(at, spec.name, BAD, None, {"error": _error(exc)})
        ms = round((time.perf_counter() - began) * 1000, 1)
        writer.close()
        # The connection was made; how it closes says nothing about the target.
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 1)
        return Sample(at, spec.name, GOOD, ms, {})

    # -- evm_lag -------------------------------------------------------------------------

    async def _evm(self, spec: CheckSpec, at: dt.datetime) -> Sample:
        # Ask the node and every reference at the same moment, so blocks made in between
        # do not count as lag.
        # Each answer is timed on its own: httpx's timeout is per phase (a node dripping its
        # answer never trips it), and a late reference must count toward the quorum rather
        # than run the whole check past its time and make the node look down.
        answers = await asyncio.gather(
            *(self._height_within(url, spec.timeout) for url in (spec.url, *spec.references)),
            return_exceptions=True,
        )
        mine, refs = answers[0], answers[1:]
        shown = [
            {"url": display_url(url), "height": h}
            if isinstance(h, int)
            else {"url": display_url(url), "error": _error(h, url)}
            for url, h in zip(spec.references, refs, strict=True)
        ]
        details: dict[str, Any] = {"references": shown}
        if not isinstance(mine, int):
            details["error"] = "the node: " + _error(mine, spec.url)
            return Sample(at, spec.name, BAD, None, details)
        heights = [h for h in refs if isinstance(h, int)]
        details["height"] = mine
        since = self._height_since(spec.name, mine, at)
        details["height_since"] = since.isoformat()
        if len(heights) * 2 <= len(spec.references):
            details["error"] = (
                f"only {len(heights)} of {len(spec.references)} references answered; "
                "a majority is needed to judge the lag"
            )
            return Sample(at, spec.name, UNSURE, None, details)
        median = statistics.median(heights)
        details["median"] = median
        lag = float(median - mine)
        if spec.stall_after is not None and at - since >= spec.stall_after:
            details["error"] = f"height {mine} unchanged for {human(at - since)}"
            return Sample(at, spec.name, BAD, lag, details)
        return Sample(at, spec.name, GOOD, lag, details)

    def _height_since(self, name: str, height: int, at: dt.datetime) -> dt.datetime:
        known = self.heights.get(name)
        if known is None or known[0] != height:
            self.heights[name] = (height, at)
            return at
        return known[1]

    async def _height_within(self, url: str, timeout: float) -> int:
        try:
            return await asyncio.wait_for(self._block_number(url, timeout), timeout)
        except TimeoutError:
            raise TimeoutError(f"no answer within {timeout:g}s") from None

    async def _block_number(self, url: str, timeout: float) -> int:
        payload = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}
        try:
            try:
                response = await self.client.post(url, json=payload, timeout=timeout)
            except STALE:
                # A pooled connection the node had closed meanwhile (seen with anvil): the
                # question is idempotent, so it is asked once more on a fresh connection.
                response = await self.client.post(url, json=payload, timeout=timeout)
        except httpx.TimeoutException:
            raise TimeoutError(f"no answer within {timeout:g}s") from None
        if response.status_code != 200:
            raise RpcError(f"HTTP {response.status_code}")
        try:
            answer = response.json()
            if "error" in answer:
                raise RpcError(f"RPC error {str(answer['error'].get('message', ''))[:80]}")
            return int(answer["result"], 16)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise RpcError("not a JSON-RPC eth_blockNumber answer") from None

    # -- python --------------------------------------------------------------------------

    async def _python(self, spec: CheckSpec, at: dt.datetime) -> Sample:
        def unknown(why: str) -> Sample:
            return Sample(at, spec.name, UNSURE, None, {"error": why})

        try:
            function = self._function(spec.function)
        except (ImportError, AttributeError) as exc:
            return unknown(f"cannot load {spec.function}: {_error(exc)}")
        if spec.name in self._busy:
            return unknown("its previous run has not returned yet")
        try:
            if inspect.iscoroutinefunction(function):
                result = await asyncio.wait_for(function(), spec.timeout)
            else:
                result = await asyncio.wait_for(self._in_thread(spec.name, function), spec.timeout)
        except TimeoutError:
            return unknown(_timed_out(spec))
        except Exception as exc:  # the check's own code failed: it could not evaluate
            return unknown(_error(exc))
        if isinstance(result, bool):
            return Sample(at, spec.name, GOOD if result else BAD, float(result), {})
        if isinstance(result, int | float) and math.isfinite(result):
            return Sample(at, spec.name, GOOD, float(result), {})
        return unknown(f"returned {_short(repr(result))}, not a number or a bool")

    def _function(self, target: str) -> Callable[[], Any]:
        if target not in self._functions:
            self._functions[target] = load_function(target)
        return self._functions[target]

    def _in_thread(self, name: str, function: Callable[[], Any]) -> asyncio.Future:
        self._busy.add(name)

        def call() -> Any:
            try:
                return function()
            finally:
                # set.discard is atomic under the GIL; the loop only reads the set.
                self._busy.discard(name)

        # Shielded: on timeout the thread keeps running and its future is left to finish; its
        # outcome is read then, so a late exception is not reported as never retrieved.
        future = asyncio.get_running_loop().run_in_executor(self._threads, call)
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        return asyncio.shield(future)


def check_functions(specs: Iterable[CheckSpec]) -> None:
    """Refuse, like any bad config, a python check whose function cannot be loaded: a typo in
    CHECKS must stop the deploy, not become an "unknown" nobody looks at."""
    for spec in specs:
        if spec.kind != "python":
            continue
        try:
            load_function(str(spec.function))
        except Exception as exc:  # an import runs the module's code: anything can go wrong
            raise ChecksError(
                f"check {spec.name!r} has the function {spec.function!r}, which cannot be "
                f"loaded ({_error(exc)}); expected python:package.module:function on the path"
            ) from None


def load_function(target: str) -> Callable[[], Any]:
    module, _, name = target.partition(":")
    function = getattr(importlib.import_module(module), name)
    if not callable(function):
        raise AttributeError(f"{name} is not a function")
    return function


class RpcError(Exception):
    """A JSON-RPC node answered, but not with a block number."""


async def _read(response: httpx.Response, limit: int) -> bytes:
    if limit == 0:
        return b""  # the connection closes unread; one per origin and tick, so little is lost
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]


def _is_json(text: str | None) -> bool:
    try:
        json.loads(text or "")
    except ValueError:
        return False
    return True


def _timed_out(spec: CheckSpec) -> str:
    return f"no answer within {spec.timeout:g}s"


def _error(exc: BaseException, url: str | None = None) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.HTTPError | OSError) and not isinstance(exc, TimeoutError):
        text = f"{type(exc).__name__}: {text}" if str(exc) else text
    if url:
        text = text.replace(url, display_url(url))
    return _short(text)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 1] + "…"
