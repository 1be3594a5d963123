"""Cold start to "ready" and idle resident memory: steward's worker with every feature on,
next to a bare python-telegram-bot bot started the same way (both against the fake Bot API).

A cold start is a new process on a store that exists: what a restart, a deploy or Heroku's
daily cycling does (the release phase migrates Postgres before the dyno starts). The very first
start on an empty SQLite file also runs the migrations; it is measured too, and printed apart.

Goals: ready in under 1.5 s and under 1.3x the bare bot; idle RSS under 70 MB.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script

from bench.common import ROOT, base_env, rss_mb, start, stop, table
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.x_api import FakeX

TOKEN = "123456:BENCH-token"
RUNS = 5
IDLE_AFTER = 5.0  # seconds after ready when memory is read


def measure(
    args: list[str], env: dict[str, str], migrated: bool = True
) -> tuple[list[float], list[float]]:
    readies, rsses = [], []
    for _ in range(RUNS):
        with tempfile.TemporaryDirectory() as tmp:
            run_env = dict(env, DATABASE_URL=f"sqlite:///{tmp}/bench.sqlite")
            if migrated and args[0].endswith("bot.py"):
                subprocess.run(
                    [sys.executable, args[0], "migrate"],
                    env=run_env,
                    check=True,
                    cwd=tmp,
                    capture_output=True,
                )
            proc, ready = start(args, run_env, "ready", cwd=Path(tmp))
            time.sleep(IDLE_AFTER)
            rsses.append(rss_mb(proc.pid))
            stop(proc)
        readies.append(ready)
    return readies, rsses


def main() -> None:
    with FakeTelegram(token=TOKEN, enforce_limits=False) as fake, FakeX("ck", "cs") as x:
        x.add_user(7, "steward_bot", "at", "as")
        base = base_env(TELEGRAM_TOKEN=TOKEN, TELEGRAM_API_URL=fake.url)
        everything = dict(
            base,
            TELEGRAM_CHAT_ID="42",
            ALLOWED_USERS="42",
            X_API_URL=x.url,
            X_CONSUMER_KEY="ck",
            X_CONSUMER_SECRET="cs",
            X_ACCESS_TOKEN="at",
            X_ACCESS_SECRET="as",
            POST_TEMPLATE="%s is on my mind",
            POST_INTERVAL="60",
            CHECKS=f"fake-telegram={fake.url}/bot{TOKEN}/getMe",
        )
        ours = measure([str(ROOT / "bot.py")], everything)
        first = measure([str(ROOT / "bot.py")], everything, migrated=False)
        bare = measure([str(ROOT / "bench/peers/ptb_echo.py")], base)
    rows = []
    measured = (
        ("steward, all features", ours),
        ("bare PTB echo bot", bare),
        ("steward, first start (migrates)", first),
    )
    for name, (ready, rss) in measured:
        rows.append((name, f"{statistics.median(ready):.2f}", f"{statistics.median(rss):.1f}"))
    print(f"median of {RUNS} cold starts; RSS read {IDLE_AFTER:.0f} s after ready")
    print(table(rows, ("process", "ready (s)", "idle RSS (MB)")))
    r = statistics.median(ours[0]) / statistics.median(bare[0])
    m = statistics.median(ours[1]) / statistics.median(bare[1])
    print(
        f"\nstart-up ratio {r:.2f}x (goal < 1.3x, and < 1.5 s); memory ratio {m:.2f}x "
        f"(goal: under 70 MB)"
    )


if __name__ == "__main__":
    main()
