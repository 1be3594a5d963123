"""`Run`: what a training script holds to report progress and receive its owner's commands.

Every method called from the training loop only touches memory (deque appends, attribute
stores) and never raises; the one background thread in `_writer` does all I/O. In multi-process
training only rank 0 reports; the other ranks get an inert `Run` (see `process_rank`).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import shlex
import socket
import sys
import threading
import time
import traceback
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from steward import db
from steward.training import _hooks, health
from steward.training._writer import Mailbox, Writer

log = logging.getLogger("steward.training")
T = TypeVar("T")
_now = time.time  # bound once: log() is on the training thread's hot path

MAX_POINTS = 100_000
# run.alert(): a burst of ALERT_BURST messages, then one per ALERT_EVERY seconds; the rest are
# counted and the next message that goes out says how many were held back.
ALERT_BURST = 3
ALERT_EVERY = 60.0
ALERT_LEVELS = ("info", "warning", "error")
TRACEBACK_LINES = 20
_SECRET = re.compile(r"token|secret|passw|api_?key|credential", re.IGNORECASE)
# Terminal colour and cursor codes (Keras and rich colour their error text).
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def plain(text: str) -> str:
    """`text` without ANSI escape sequences."""
    return _ANSI.sub("", text) if "\x1b" in text else text


@dataclass(frozen=True)
class Command:
    """Something the owner asked this run to do; act on it, then `run.ack(cmd, ok, message)`.

    kind is "stop", "set_lr", "save" or "custom". For "set_lr" the argument holds either
    {"value": lr} or {"factor": f}; for "save" an optional {"path": ...}; for "custom"
    {"name": ..., "text": ...}.
    """

    id: int
    kind: str
    argument: dict[str, Any]
    created_at: dt.datetime

    def new_lr(self, current: float) -> float:
        """The learning rate this set_lr command asks for, given the current one."""
        if "factor" in self.argument:
            return float(current) * float(self.argument["factor"])
        return float(self.argument["value"])

    def describe_lr(self) -> str:
        if "factor" in self.argument:
            return f"x{self.argument['factor']:g}"
        return f"{float(self.argument['value']):g}"


def process_rank() -> int:
    """This process's global rank: torch.distributed when initialized, else the launchers' env.

    torch is only consulted when the training script already imported it.
    """
    dist = sys.modules.get("torch.distributed")
    try:
        if dist is not None and dist.is_available() and dist.is_initialized():
            return int(dist.get_rank())
    except Exception:  # a half-initialized process group is not ours to judge
        pass
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        value = os.environ.get(key, "").strip()
        if value.isdigit():
            return int(value)
    return 0


def _jsonable(value: Any, key: str = "") -> Any:
    """Config as JSON: secrets masked, NaN and odd types as text, numpy scalars as numbers."""
    if key and _SECRET.search(key):
        return "***"
    if isinstance(value, dict):
        return {str(k): _jsonable(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    if hasattr(value, "item"):
        try:
            return _jsonable(value.item(), key)
        except Exception:
            pass
    return str(value)


def _command_line() -> str:
    """The command that started this process, with values of secret-looking options masked."""
    argv = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
    out, mask_next = [], False
    for arg in argv:
        if mask_next:
            out.append("***")
            mask_next = False
            continue
        flag, eq, _ = arg.partition("=")
        if flag.startswith("-") and _SECRET.search(flag):
            out.append(f"{flag}=***" if eq else arg)
            mask_next = not eq
        else:
            out.append(arg)
    return shlex.join(out)


def _engine_for(database_url: str | None):
    raw = database_url or os.environ.get("DATABASE_URL") or db.DEFAULT_DATABASE_URL
    url = db.normalize_url(raw)
    if url.get_backend_name() == "postgresql" and "connect_timeout" not in url.query:
        # An unreachable host must fail in seconds, not after the kernel's TCP timeout.
        url = url.update_query_dict({"connect_timeout": "10"})
    return db.make_engine(url)


def traceback_tail(exc: BaseException, lines: int = TRACEBACK_LINES) -> str:
    text = plain("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    return "\n".join(text.rstrip().splitlines()[-lines:])[-4000:]


class Run:
    """A training run reported to the store (DATABASE_URL, or the default SQLite file).

    `tags` group runs for `/runs <tag>` and `/compare`; `alerts` maps a metric to a rule the
    worker checks as values arrive: "below 0.8", "above 2.5 after step 1000" or "no improvement
    for 5 evals" (next to the built-in NaN and spike alerts on losses). `step_unit` says what a
    step counts ("epoch" when you log once per epoch).

    Raises ValueError at construction for a database URL or an alert rule that cannot work;
    after that, nothing it does raises into the training code.
    """

    def __init__(
        self,
        name: str,
        config: dict[str, Any] | None = None,
        *,
        database_url: str | None = None,
        flush_every: float = 1.0,
        max_points: int = MAX_POINTS,
        exit_timeout: float = 5.0,
        register_timeout: float = 3.0,
        tags: Iterable[str] | None = None,
        alerts: dict[str, str] | None = None,
        step_unit: str | None = None,
    ) -> None:
        health.parse_rules(alerts)  # a bad rule is a ValueError now, not silence later
        self.name = name
        self.rank = process_rank()
        self.active = self.rank == 0
        self.exit_timeout = exit_timeout
        self.id: int | None = None
        self._end_lock = threading.Lock()
        self._stop_acked = False
        self._alert_tokens = float(ALERT_BURST)
        self._alert_at = time.monotonic()
        self._alerts_held = 0
        # On other ranks every append is discarded at once (maxlen 0) and nothing is started.
        self._box = Mailbox(max_points if self.active else 0)
        self._entries = self._box.entries
        self._writer: Writer | None = None
        if not self.active:
            return
        engine = _engine_for(database_url)
        registration = {
            "name": name,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "command": _command_line(),
            "config": _jsonable(config or {}),
            "started_at": db.utcnow(),
            "step_unit": step_unit or None,
            "tags": sorted({str(t) for t in tags}) if tags else None,
            "alerts": {str(k): str(v) for k, v in alerts.items()} if alerts else None,
        }
        self._writer = Writer(
            self._box, engine, registration, interval=flush_every, on_registered=self._registered
        )
        self._writer.heartbeat = registration["started_at"].timestamp()
        self._writer.start()
        _hooks.watch(self)
        # Waiting briefly means run.id is known on return when the store is up; when it is not,
        # training starts anyway and registration is retried in the background.
        self._writer.flush(register_timeout)

    def _registered(self, run_id: int) -> None:
        self.id = run_id
        log.info("training run %r registered as run %d", self.name, run_id)

    # --- called from the training loop: memory only ---------------------------------------

    def log(self, step: int | None = None, **metrics: Any) -> None:
        """Record metric values at `step` (None: one after the last). Never blocks or raises."""
        self._entries.append((step, metrics, _now()))

    def event(self, message: str, *, level: str = "info") -> None:
        """A line for the run's history (log records from RunLogHandler arrive this way)."""
        if self.active:
            self._box.events.append((_now(), level, plain(str(message))))

    def alert(self, text: str, *, level: str = "info") -> bool:
        """Send `text` to the owner's chat now (like wandb.alert); "error" gets through /mute.

        Rate-limited per run (ALERT_BURST, then one per ALERT_EVERY seconds): returns False
        when this one was held back; the next one sent says how many were.
        """
        if not self.active:
            return False
        level = level if level in ALERT_LEVELS else "warning"
        now = time.monotonic()
        self._alert_tokens = min(
            ALERT_BURST, self._alert_tokens + (now - self._alert_at) / ALERT_EVERY
        )
        self._alert_at = now
        if self._alert_tokens < 1:
            self._alerts_held += 1
            return False
        self._alert_tokens -= 1
        message = plain(str(text))[:3000]
        if self._alerts_held:
            held, self._alerts_held = self._alerts_held, 0
            message += f" ({held} more alert{'s' if held > 1 else ''} held back: rate limit)"
        self._box.events.append((_now(), f"alert:{level}", message))
        return True

    def expect(self, seconds: float) -> None:
        """Promise to report again within `seconds` (before a long validation or checkpoint)."""
        if self.active:
            now = _now()
            self._box.expect_at = now
            self._box.expect_until = now + float(seconds)

    def track(
        self, iterable: Iterable[T], total: int | None = None, desc: str | None = None, *, bar=True
    ) -> Iterator[T]:
        """Yield the items of `iterable`, reporting how far it got (through tqdm when installed)."""
        if total is None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        items: Iterable[T] = iterable
        if bar and self.active:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                pass
            else:
                items = tqdm(iterable, total=total, desc=desc)
        box, active = self._box, self.active
        started = _now()
        if active:
            box.progress = (desc, 0, total, started, started, None)
        for n, item in enumerate(items, 1):
            yield item
            if active:
                box.progress = (desc, n, total, _now(), started, None)

    def progress(
        self, n: int, total: int | None = None, desc: str | None = None, *, unit: str | None = None
    ) -> None:
        """Report `n` of `total` done in the current phase (`desc`, e.g. "epoch 3"); a heartbeat.

        A new `desc` (or n going back to 0) starts a new phase; the ETA is measured within it.
        """
        if not self.active:
            return
        now = _now()
        last = self._box.progress
        started = last[4] if last is not None and last[0] == desc and n >= last[1] else now
        self._box.progress = (desc, n, total, now, started, unit)

    def commands(self) -> list[Command]:
        """What the owner asked for since the last call, oldest first (empty on other ranks)."""
        inbox, out = self._box.inbox, []
        while inbox:
            out.append(inbox.popleft())
        return out

    def ack(self, cmd: Command, ok: bool, message: str = "") -> None:
        """Tell the owner whether `cmd` was applied, or why not, in a sentence."""
        if self.active:
            if cmd.kind == "stop" and ok:
                self._stop_acked = True
            self._box.acks.append((cmd.id, bool(ok), str(message), _now()))

    # --- lifetime -------------------------------------------------------------------------

    @property
    def dropped(self) -> int:
        """Points dropped since the store was last reached (the bound kept the newest)."""
        return self._writer.dropped if self._writer else 0

    def flush(self, timeout: float = 5.0) -> bool:
        """Deliver now and wait up to `timeout` seconds; True when the store took everything."""
        if self._writer is None:
            return True
        return self._writer.flush(timeout)

    def close(self, state: str | None = None, error: BaseException | None = None) -> None:
        """End the run: finished (stopped if a stop was acknowledged), or crashed with `error`.

        Delivers what is left for at most `exit_timeout` seconds. Only the first ending counts.
        """
        with self._end_lock:
            if self._writer is None or self._box.final is not None:
                return
            if state is None:
                if error is None:
                    state = "stopped" if self._stop_acked else "finished"
                elif isinstance(error, KeyboardInterrupt):
                    state = "stopped"
                else:
                    state = "crashed"
            final: dict[str, Any] = {"state": state}
            if error is not None:
                final["error_type"] = type(error).__qualname__[:200]
                final["error_message"] = plain(str(error))[:4000]
                final["traceback_tail"] = traceback_tail(error)
            self._box.final = final
        _hooks.forget(self)
        writer = self._writer
        if not writer.stop(self.exit_timeout):
            log.warning("training run %r: could not record its end in the store", self.name)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if isinstance(exc, SystemExit) and exc.code in (None, 0):
            exc = None  # sys.exit(0) is how a script says it is done
        self.close(error=exc)
