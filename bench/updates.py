"""Updates handled per second, end to end, against the fake Bot API with 50 ms per reply.

100 chats each send /help several times; every bot replies to each. Compared in one run:
steward's worker (`python bot.py`), a plain python-telegram-bot bot at default settings, and an
aiogram 3 bot at default settings, each started as a process the same way.
This first run does not enforce Telegram's limits, but steward keeps them anyway (every reply
goes through the outbox's flood control since issue 11): its ceiling is Telegram's 30 messages
a second, so it no longer aims to beat peers that send faster than Telegram would accept.

Then the same kind of load with Telegram's limits enforced by the fake (1 message/s per chat,
30/s in all, 429 with retry_after beyond): LIMITED_CHATS chats each type /help LIMITED_PER_CHAT
times at once. Reported: replies delivered / replies asked (goal 100%) and the p50/p99 latency
from a message to its reply, for steward and for python-telegram-bot with its AIORateLimiter
(defaults, and with max_retries=5), both handling updates concurrently; and steward again with
600 notifications to 600 chats queued in its outbox (replies must keep their priority).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script

from bench.common import ROOT, base_env, start, stop, table
from tests.fakes.telegram_api import FakeTelegram

TOKEN = "123456:BENCH-token"
CHATS = 100
PER_CHAT = 6
REPLY_DELAY = 0.05
LIMITED_CHATS = 50
LIMITED_PER_CHAT = 4
LIMITED_WAIT = 60.0  # seconds after the last message that a reply may still come


def run(name: str, args: list[str], ready: str, extra_env: dict[str, str]) -> tuple:
    total = CHATS * PER_CHAT
    with FakeTelegram(token=TOKEN, reply_delay=REPLY_DELAY, enforce_limits=False) as fake:
        users = list(range(1000, 1000 + CHATS))
        env = base_env(TELEGRAM_TOKEN=TOKEN, TELEGRAM_API_URL=fake.url, **extra_env)
        env["ALLOWED_USERS"] = ",".join(map(str, users))
        with tempfile.TemporaryDirectory() as tmp:
            env["DATABASE_URL"] = f"sqlite:///{tmp}/bench.sqlite"
            proc, _ = start(args, env, ready, cwd=Path(tmp))
            try:
                time.sleep(1.0)  # let start-up ticks settle
                before = len(fake.sent)
                began = time.perf_counter()
                for _round in range(PER_CHAT):
                    for user in users:
                        fake.push_message(user, user, "/help")
                ok = fake.wait_for(lambda f: len(f.sent) - before >= total, timeout=600)
                elapsed = time.perf_counter() - began
            finally:
                stop(proc)
    rate = total / elapsed if ok else float("nan")
    return name, total, f"{elapsed:.2f}", f"{rate:.0f}"


def queue_notifications(database_url: str, count: int) -> None:
    """Fill steward's outbox with `count` notifications to as many chats (the whole global
    budget for seconds): replies must still go first (the fast lane, steward/telegram/flood.py)."""
    from steward import db
    from steward.telegram.outbox import Outbox

    engine = db.make_engine(database_url)
    outbox = Outbox(engine, None)
    for n in range(count):
        outbox.notify(f"notification {n}", chat_id=str(900_000 + n))
    engine.dispose()


def run_limited(
    name: str, args: list[str], extra_env: dict[str, str], notifications: int = 0
) -> tuple:
    """Replies delivered / asked and latency percentiles under the fake's enforced limits."""
    asked = LIMITED_CHATS * LIMITED_PER_CHAT
    pushed: dict[int, list[float]] = {}
    arrived: dict[int, list[float]] = {}

    def on_sent(entry: dict) -> None:
        if entry["chat_id"] < 900_000:  # replies only, not the queued notifications
            arrived.setdefault(entry["chat_id"], []).append(time.perf_counter())

    with FakeTelegram(token=TOKEN, reply_delay=REPLY_DELAY, enforce_limits=True) as fake:
        users = list(range(3000, 3000 + LIMITED_CHATS))
        env = base_env(TELEGRAM_TOKEN=TOKEN, TELEGRAM_API_URL=fake.url, **extra_env)
        env["ALLOWED_USERS"] = ",".join(map(str, users))
        with tempfile.TemporaryDirectory() as tmp:
            env["DATABASE_URL"] = f"sqlite:///{tmp}/bench.sqlite"
            proc, _ = start(args, env, "ready", cwd=Path(tmp))
            try:
                time.sleep(2.0)  # let start-up notifications go out first
                if notifications:
                    queue_notifications(env["DATABASE_URL"], notifications)
                    time.sleep(1.0)  # the sender is busy with them
                fake.on_sent = on_sent
                for _round in range(LIMITED_PER_CHAT):
                    for user in users:
                        pushed.setdefault(user, []).append(time.perf_counter())
                        fake.push_message(user, user, "/help")
                fake.wait_for(
                    lambda f: sum(len(arrived.get(u, [])) for u in users) >= asked,
                    timeout=LIMITED_WAIT,
                )
            finally:
                stop(proc)
    latencies = sorted(
        got - sent
        for user in users
        for sent, got in zip(pushed[user], arrived.get(user, []), strict=False)
    )
    delivered = sum(min(len(arrived.get(u, [])), LIMITED_PER_CHAT) for u in users)
    share = f"{delivered}/{asked} ({100 * delivered / asked:.0f}%)"
    return name, share, _percentile(latencies, 0.50), _percentile(latencies, 0.99)


def _percentile(values: list[float], q: float) -> str:
    if not values:
        return "-"
    return f"{values[min(len(values) - 1, int(q * len(values)))]:.2f}s"


def main() -> None:
    if "--limited" in sys.argv:  # only the run under Telegram's limits
        print_limited()
        return
    rows = [
        run("steward", [str(ROOT / "bot.py")], "ready", {"LOG_LEVEL": "INFO"}),
        run("python-telegram-bot (default)", [str(ROOT / "bench/peers/ptb_echo.py")], "ready", {}),
        run("aiogram 3 (default)", [str(ROOT / "bench/peers/aiogram_echo.py")], "ready", {}),
    ]
    print(table(rows, ("bot", "updates", "seconds", "updates/s")))
    ours, ptb, aio = (float(r[3]) for r in rows)
    print(f"\nsteward / plain PTB: {ours / ptb:.1f}x")
    print(f"steward / aiogram:   {ours / aio:.2f}x (aiogram ignores Telegram's 30/s; steward not)")
    print_limited()


def print_limited() -> None:
    load = f"{LIMITED_CHATS} chats x {LIMITED_PER_CHAT} messages at once"
    print(f"\nWith Telegram's limits enforced ({load}):")
    ptb = [str(ROOT / "bench/peers/ptb_echo.py")]
    limited = [
        run_limited("steward", [str(ROOT / "bot.py")], {"LOG_LEVEL": "INFO"}),
        run_limited(
            "steward, 600 notifications queued",
            [str(ROOT / "bot.py")],
            {"LOG_LEVEL": "INFO"},
            notifications=600,
        ),
        run_limited("PTB + AIORateLimiter()", ptb, {"PTB_RATE_LIMITER": "aio"}),
        run_limited("PTB + AIORateLimiter(max_retries=5)", ptb, {"PTB_RATE_LIMITER": "aio-retry"}),
    ]
    print(table(limited, ("bot", "replies delivered", "p50 latency", "p99 latency")))


if __name__ == "__main__":
    main()
