"""Updates handled per second, end to end, against the fake Bot API with 50 ms per reply.

100 chats each send /help several times; every bot replies to each. Compared in one run:
steward's worker (`python bot.py`), a plain python-telegram-bot bot at default settings, and an
aiogram 3 bot at default settings, each started as a process the same way.
Goal: steward at least 5x the plain PTB bot and at least 1.2x aiogram.
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


def main() -> None:
    rows = [
        run("steward", [str(ROOT / "bot.py")], "ready", {"LOG_LEVEL": "INFO"}),
        run("python-telegram-bot (default)", [str(ROOT / "bench/peers/ptb_echo.py")], "ready", {}),
        run("aiogram 3 (default)", [str(ROOT / "bench/peers/aiogram_echo.py")], "ready", {}),
    ]
    print(table(rows, ("bot", "updates", "seconds", "updates/s")))
    ours, ptb, aio = (float(r[3]) for r in rows)
    print(f"\nsteward / plain PTB: {ours / ptb:.1f}x (goal >= 5x)")
    print(f"steward / aiogram:   {ours / aio:.2f}x (goal >= 1.2x)")


if __name__ == "__main__":
    main()
