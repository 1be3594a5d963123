"""One monitoring tick over 1,000 HTTP targets, and the /week chart.

1. Tick: 1,000 targets on loopback (each its own origin, 127.0.x.y, served by an asyncio
   server in a subprocess so it does not share our GIL). steward's Runner (asyncio, httpx, at
   most 100 in flight) next to the seed's way: a multiprocessing Pool of nine workers doing the
   same requests with `requests`, one at a time per worker.
   Goal: the tick under 2 s on 2 cores.
2. Chart: the /week view of three checks from 2,016 samples each (5-minute samples, rolled up
   hourly) through steward.plots. Goals: under 300 ms and a PNG under 150 KB.
3. Soak: `python bot.py` with 200 HTTP checks every 10 s against the fake Telegram for
   --soak-minutes (10 by default): the worker's RSS before and after its first charts (/week and
   /day asked through the bot), the store's rows and bytes per hour, and the sample retention
   that keeps the store under 1 GB at 200 checks.

Run: `.venv/bin/python -m bench.monitoring [--soak-minutes N] [--only tick|chart|soak]`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script

from bench.common import ROOT, http_target, pss_mb, table

TARGETS = 1000
SEED_WORKERS = 9
CHART_RUNS = 7


def urls(port: int) -> list[str]:
    return [f"http://127.0.{1 + i // 250}.{1 + i % 250}:{port}/health" for i in range(TARGETS)]


def steward_tick(targets: list[str]) -> tuple[float, float, int]:
    from steward.monitoring.checks import Runner
    from steward.monitoring.spec import build

    specs = [build({"name": f"t{i}", "kind": "http", "url": u}) for i, u in enumerate(targets)]

    async def go() -> tuple[float, int]:
        runner = Runner()
        try:
            began = time.perf_counter()
            samples = await runner.run(specs)
            took = time.perf_counter() - began
        finally:
            await runner.aclose()
        return took, sum(s.status == "ok" for s in samples)

    peak, done = [pss_mb(os.getpid())], threading.Event()

    def watch() -> None:  # the process's memory, read while the tick runs
        while not done.wait(0.05):
            peak[0] = max(peak[0], pss_mb(os.getpid()))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        took, good = asyncio.run(go())
    finally:
        done.set()
        watcher.join()
    return took, max(peak[0], pss_mb(os.getpid())), good


def _seed_get(url: str) -> bool:
    import requests

    try:
        return requests.get(url, timeout=10).status_code == 200
    except requests.RequestException:
        return False


def seed_tick(targets: list[str]) -> tuple[float, float, int]:
    began = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(SEED_WORKERS) as pool:
        # The parent and its nine workers, read while they live: what the tick holds in all.
        pids = [os.getpid()] + [p.pid for p in pool._pool]
        results = pool.map_async(_seed_get, targets, chunksize=1)
        peak = 0.0
        while not results.ready():
            peak = max(peak, sum(pss_mb(pid) for pid in pids))
            results.wait(0.05)
        good = sum(results.get())
    return time.perf_counter() - began, peak, good


def week_chart() -> tuple[float, int] | None:
    try:
        from steward import plots  # noqa: F401
    except ImportError:
        return None
    from steward import db
    from steward.monitoring import charts, store
    from steward.monitoring.alerts import Sample
    from steward.monitoring.spec import parse_checks

    now = dt.datetime(2026, 3, 8, tzinfo=dt.UTC)
    specs = parse_checks(
        "api=https://a.example alert_above=800 clear_below=500; db=tcp://db:5432; "
        "node=evm:https://n.example|https://r1.example,https://r2.example alert_above=10"
    )
    with tempfile.TemporaryDirectory() as tmp:
        engine = db.make_engine(f"sqlite:///{tmp}/bench.sqlite")
        db.metadata.create_all(engine, tables=[store.samples, store.rollups, db.state])
        batch = []
        for n, spec in enumerate(specs):
            for i in range(2016):  # a week of 5-minute samples
                at = now - dt.timedelta(minutes=5 * (2016 - i))
                bad = 900 < i < 930
                value = 100 + 50 * ((i * 7919 + n) % 13) + (900 if bad else 0)
                batch.append(Sample(at, spec.name, "bad" if bad else "ok", float(value)))
        store.write_samples(engine, batch)
        while store.roll_up(engine, now):
            pass
        charts.render(engine, specs, charts.WINDOWS["week"], now, dt.UTC, "warm-up")
        times = []
        for _ in range(CHART_RUNS):  # single renders vary by a third on this machine
            began = time.perf_counter()
            png = charts.render(engine, specs, charts.WINDOWS["week"], now, dt.UTC, "last week")
            times.append(time.perf_counter() - began)
        engine.dispose()
    return statistics.median(times), len(png)


SOAK_CHECKS = 200
SOAK_INTERVAL = 10
TOKEN = "123456:BENCH-token-for-monitoring"
OWNER = 42
GB = 1024**3


def soak(port: int, minutes: float) -> dict:
    """The worker under 200 checks every 10 s for `minutes`; memory and store growth."""
    from bench.common import base_env, rss_mb, start, stop
    from tests.fakes.telegram_api import FakeTelegram

    checks = "; ".join(f"t{i}={u}" for i, u in enumerate(urls(port)[:SOAK_CHECKS]))
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp, FakeTelegram(token=TOKEN) as fake:
        path = Path(tmp) / "soak.sqlite"
        env = base_env(
            TELEGRAM_TOKEN=TOKEN,
            TELEGRAM_API_URL=fake.url,
            TELEGRAM_CHAT_ID=str(OWNER),
            ALLOWED_USERS=str(OWNER),
            DATABASE_URL=f"sqlite:///{path}",
            CHECKS=checks,
            CHECK_INTERVAL=str(SOAK_INTERVAL),
            LOG_LEVEL="INFO",
        )
        proc, _ = start(["bot.py"], env, "ready", ROOT, timeout=120)
        drain = threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True)
        drain.start()
        try:
            began = time.monotonic()
            end = began + minutes * 60
            half = began + minutes * 30
            rss: list[tuple[float, float]] = []
            charted = False
            while time.monotonic() < end:
                rss.append((time.monotonic() - began, rss_mb(proc.pid)))
                if not charted and time.monotonic() >= half:
                    out["rss_before_charts"] = rss_mb(proc.pid)
                    for command in ("/week t0 t1 t2", "/day t3 t4 t5"):
                        before = len(fake.messages(OWNER))
                        fake.push_message(OWNER, OWNER, command)
                        fake.wait_for(
                            lambda f, n=before: any(
                                m["method"] == "sendPhoto" for m in f.messages(OWNER)[n:]
                            ),
                            timeout=60,
                        )
                    time.sleep(2)
                    out["rss_after_charts"] = rss_mb(proc.pid)
                    charted = True
                time.sleep(5)
            out["rss_end"] = rss_mb(proc.pid)
            out["rss_start"] = rss[0][1] if rss else float("nan")
            out["seconds"] = time.monotonic() - began
        finally:
            stop(proc)
        import sqlite3

        with sqlite3.connect(path) as conn:
            out["rows"] = conn.execute("SELECT count(*) FROM monitoring_samples").fetchone()[0]
            conn.execute("VACUUM")
        out["bytes"] = path.stat().st_size
    return out


def print_soak(result: dict, minutes: float) -> None:
    hours = result["seconds"] / 3600
    rows_per_hour = result["rows"] / hours
    bytes_per_row = result["bytes"] / max(1, result["rows"])
    bytes_per_hour = rows_per_hour * bytes_per_row
    days = GB / (bytes_per_hour * 24)
    print(
        f"\nSoak: {SOAK_CHECKS} checks every {SOAK_INTERVAL}s for {minutes:g} min "
        f"(SQLite store; the machine is shared)"
    )
    rows = [
        ("worker RSS at start", f"{result['rss_start']:.0f} MB"),
        ("before the first charts", f"{result.get('rss_before_charts', float('nan')):.0f} MB"),
        ("after /week and /day", f"{result.get('rss_after_charts', float('nan')):.0f} MB"),
        ("at the end", f"{result['rss_end']:.0f} MB"),
        ("sample rows per hour", f"{rows_per_hour:,.0f}"),
        ("store bytes per row (after VACUUM)", f"{bytes_per_row:.0f}"),
        ("store growth per hour", f"{bytes_per_hour / 1024**2:.1f} MB"),
        ("retention under 1 GB", f"{days:.1f} days (SAMPLES_RETENTION_DAYS={int(days)})"),
    ]
    print(table(rows, ("measure", "value")))


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--soak-minutes", type=float, default=10.0)
    parser.add_argument("--only", choices=("tick", "chart", "soak"))
    args = parser.parse_args()
    server = subprocess.Popen(
        [sys.executable, "-c", http_target(host="0.0.0.0")],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        port = int(server.stdout.readline())
        if args.only in (None, "soak"):
            print_soak(soak(port, args.soak_minutes), args.soak_minutes)
        if args.only == "soak":
            return
        if args.only == "chart":
            ours = seed = None
        else:
            targets = urls(port)
            ours = steward_tick(targets)
            seed = seed_tick(targets)
    finally:
        server.terminate()
        server.wait()
    if ours is None:
        report_chart()
        return
    report_tick(ours, seed)
    if args.only is None:
        report_chart()


def report_tick(ours, seed) -> None:
    rows = [
        ("steward Runner (asyncio, 100 in flight)", f"{ours[0]:.2f}", f"{ours[1]:.0f}", ours[2]),
        (f"seed: Pool({SEED_WORKERS}) + requests", f"{seed[0]:.2f}", f"{seed[1]:.0f}", seed[2]),
    ]
    print(f"One tick over {TARGETS} HTTP targets on {os.cpu_count()} cores (goal < 2 s)")
    print(table(rows, ("approach", "seconds", "MB", "ok")))
    print(f"ratio: seed / steward = {seed[0] / ours[0]:.1f}x")
    print(
        "MB: peak proportional set size (PSS) of every process the tick used: steward's one "
        "process; the seed's parent and its nine forked workers (shared pages counted once)"
    )


def report_chart() -> None:
    chart = week_chart()
    if chart is None:
        print("/week chart: steward.plots is not available")
    else:
        print(
            f"/week chart, 3 checks x 2016 samples: median of {CHART_RUNS} renders "
            f"{chart[0] * 1000:.0f} ms (goal < 300), "
            f"{chart[1] / 1024:.0f} KB (goal < 150)"
        )


if __name__ == "__main__":
    main()
