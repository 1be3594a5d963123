"""The farm on 1, 2 and 4 worker processes sharing one local Postgres: does `ps:scale worker=N`
add capacity?

Work: 200 farm bots posting every minute to a fake X (real tweepy, OAuth-signed, on loopback),
plus 2,000 HTTP checks from CHECKS_FILE (due every 10 s, so there is always a backlog and the
figure is capacity, not demand), of which 10% answer in 3 s. Each worker runs what `bot.py`
runs on Postgres: steward's Farm (steward/farm/job.py) for the bots and monitoring's
SharedChecks (steward/monitoring/shared.py) for the checks, so a check's sample is stored, its
alert state stepped and its unit finished by the production code. Each finished unit also
writes a row of `bench_done`, so duplicates would show as repeated (kind, key, due_at).
Reported per run: units done per minute, each worker's share, duplicates, bot ticks missed (a
bot not ticked within its minute), and RSS per worker. Goal: 2 workers >= 1.7x one worker.

Run: `TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python -m bench.farm`
(`--seconds 30 --bots 50 --checks 500` for a shorter run). `--kill` adds a run of 3 workers in
which the first is SIGKILLed mid-run: how long its units took to be done by the others, and
whether anything was done or posted twice.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script

from bench.common import base_env, http_target, rss_mb, table

SLOW_SECONDS = 3.0
CHECK_EVERY = dt.timedelta(seconds=10)
KILL_AFTER = 20.0  # seconds into the --kill run, after which the first worker is SIGKILLed as
# soon as it holds a bot's tick (checks it always holds)
# Threads per worker (the work waits on I/O); 4 workers x 16 connections stay under the local
# server's max_connections=100.
CONCURRENCY = 12


# -- one worker process ------------------------------------------------------------------------


def worker(name: str, seconds: float) -> None:
    import sqlalchemy as sa

    from steward import db
    from steward.config import load_settings
    from steward.farm.job import Farm
    from steward.features import Services
    from steward.monitoring.monitor import Monitor
    from steward.monitoring.shared import SharedChecks
    from steward.monitoring.spec import load_checks
    from steward.telegram.outbox import Outbox

    settings = load_settings(env_file=None)
    # A connection per thread: the production pool (10) is sized for the default concurrency.
    url = db.normalize_url(settings.database)
    engine = sa.create_engine(url, pool_pre_ping=True, pool_size=CONCURRENCY + 8, max_overflow=0)
    services = Services(settings, engine, Outbox(engine, "log"), db.utcnow)
    farm = Farm(services, concurrency=CONCURRENCY)
    specs = load_checks(settings.checks, settings.checks_file)
    done = sa.table(
        "bench_done", *(sa.column(c) for c in ("kind", "key", "due_at", "worker", "at"))
    )

    def log_done(units) -> None:
        rows = [
            {"kind": u.kind, "key": u.key, "due_at": u.due_at, "worker": name, "at": db.utcnow()}
            for u in units
        ]
        with engine.begin() as conn:
            conn.execute(sa.insert(done), rows)

    class Checks(SharedChecks):
        """The production SharedChecks; each finished unit is also written to bench_done."""

        def _finish(self, units) -> None:
            super()._finish(units)
            log_done(units)

    checks = Checks(Monitor(services, specs), specs)
    bot_tick = farm.handlers["bot"]

    def bot(unit) -> None:
        bot_tick(unit)
        log_done([unit])

    farm.handlers["bot"] = bot

    async def run() -> None:
        await farm.start()
        await checks.start()
        print("ready", flush=True)
        await asyncio.sleep(seconds)
        await checks.stop()
        await checks.monitor.stop()
        await farm.stop()

    asyncio.run(run())
    print(json.dumps({"rss_mb": rss_mb(os.getpid())}), flush=True)


# -- the bench ---------------------------------------------------------------------------------


def fresh_schema(admin_url: str) -> tuple[str, str]:
    import sqlalchemy as sa

    from steward import db

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = db.make_engine(admin_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    url = db.normalize_url(admin_url).update_query_dict({"options": f"-csearch_path={schema}"})
    return schema, url.render_as_string(hide_password=False)


def drop_schema(admin_url: str, schema: str) -> None:
    import sqlalchemy as sa

    from steward import db

    admin = db.make_engine(admin_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def setup(url: str, key: str, bots: int) -> None:
    import sqlalchemy as sa

    from steward import db
    from steward.farm import bots as farm_bots
    from steward.farm import secrets
    from steward.farm.bots import Bot
    from steward.features import import_stores

    import_stores()
    engine = db.make_engine(url)
    db.upgrade(engine)
    vault, now = secrets.Vault(key), db.utcnow()
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE bench_done (kind text, key text, due_at timestamptz, worker text,"
                " at timestamptz)"
            )
        )
        for i in range(bots):
            bot = Bot(f"bot{i:03d}", "{Word} and {word2} " + f"{i}.", interval_min=1, targets=["x"])
            farm_bots.add(conn, bot, now)
            tokens = {"x_access_token": f"{i}-token", "x_access_secret": f"{i}-secret"}
            secrets.put(conn, vault, bot.name, tokens, now)
    engine.dispose()


def checks_file(tmp: Path, checks: int, port: int) -> Path:
    """CHECKS_FILE with `checks` HTTP checks, every tenth answering in SLOW_SECONDS."""
    entries = [
        {
            "name": f"c{i:04d}",
            "kind": "http",
            "url": f"http://127.0.0.1:{port}/{'slow' if i % 10 == 0 else 'fast'}?n={i}",
        }
        for i in range(checks)
    ]
    path = tmp / "checks.json"
    path.write_text(json.dumps({"checks": entries}))
    return path


def measure(
    url: str, env: dict[str, str], workers: int, seconds: float, tmp: Path,
    kill_after: float | None = None,
) -> dict:  # fmt: skip
    """One run. With `kill_after`, the first worker is SIGKILLed that many seconds in, and the
    result says how long the units it held took to be done by the others."""
    import time

    import sqlalchemy as sa

    from steward import db

    procs = []
    for n in range(workers):
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.farm", f"--worker=w{n + 1}", f"--seconds={seconds}"],
            env=env, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        procs.append(proc)
    for proc in procs:
        while (line := proc.stdout.readline()) and "ready" not in line:
            pass
    began = db.utcnow()
    engine = db.make_engine(url)
    held, killed_at = [], None
    if kill_after is not None:
        time.sleep(kill_after)
        victim = procs[0]
        owner = {"owner": f"%:{victim.pid}:%"}
        deadline = time.monotonic() + 70  # a bots' minute: kill it while it holds a tick
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                if conn.scalar(
                    sa.text(
                        "SELECT count(*) FROM work_units WHERE kind = 'bot'"
                        " AND lease_owner LIKE :owner"
                    ),
                    owner,
                ):
                    break
            time.sleep(0.01)
        victim.kill()
        killed_at = db.utcnow()
        with engine.connect() as conn:
            held = conn.execute(
                sa.text("SELECT kind, key FROM work_units WHERE lease_owner LIKE :owner"),
                owner,
            ).all()
    rss = []
    for proc in procs:
        out = proc.communicate(timeout=seconds + 120)[0]
        lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
        rss.append(lines[-1]["rss_mb"] if lines else float("nan"))
    ended = db.utcnow()
    moved = []
    with engine.connect() as conn:
        for kind, key in held:  # when another worker did each unit the dead one held
            at = conn.scalar(
                sa.text(
                    "SELECT min(at) FROM bench_done WHERE kind = :kind AND key = :key"
                    " AND at > :killed"
                ),
                {"kind": kind, "key": key, "killed": killed_at},
            )
            moved.append((kind, None if at is None else (at - killed_at).total_seconds()))
        rows = conn.execute(
            sa.text("SELECT kind, key, due_at, worker FROM bench_done WHERE at >= :t"), {"t": began}
        ).all()
        dups = conn.scalar(
            sa.text("SELECT count(*) - count(DISTINCT (kind, key, due_at)) FROM bench_done")
        )
        # The farm's bots' rows of posting's table (main's, bot = 'main', are not the farm's).
        farm = "FROM posts WHERE bot <> 'main'"
        posted = conn.scalar(sa.text(f"SELECT count(*) {farm} AND state = 'sent'"))
        posts = conn.scalar(sa.text(f"SELECT count(*) {farm}"))
        late = conn.scalar(
            sa.text("SELECT count(*) FROM work_units WHERE kind = 'bot' AND due_at < :t"),
            {"t": ended - dt.timedelta(minutes=1)},
        )
    engine.dispose()
    minutes = (ended - began).total_seconds() / 60
    share = {}
    for r in rows:
        share[r.worker] = share.get(r.worker, 0) + 1
    return {
        "workers": workers,
        "per_min": len(rows) / minutes,
        "checks": sum(r.kind == "check" for r in rows),
        "bot_ticks": sum(r.kind == "bot" for r in rows),
        "share": [
            round(100 * share.get(f"w{n + 1}", 0) / max(1, len(rows))) for n in range(workers)
        ],
        "dups": dups,
        "posts": f"{posted}/{posts}",
        "late_bots": late,
        "rss": rss,
        "held_at_kill": {k: sum(kind == k for kind, _ in moved) for k in {k for k, _ in moved}},
        # Per kind: the longest a held unit waited for another worker (its lease, then a poll).
        "moved_within_s": {
            k: round(max((s for kind, s in moved if kind == k and s is not None), default=-1))
            for k in {k for k, _ in moved}
        },
        "never_moved": sum(s is None for _, s in moved),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--worker")
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--bots", type=int, default=200)
    p.add_argument("--checks", type=int, default=2000)
    p.add_argument("--workers", default="1,2,4")
    p.add_argument(
        "--kill", action="store_true", help="one more run: 3 workers, the first SIGKILLed"
    )
    args = p.parse_args()
    if args.worker:
        worker(args.worker, args.seconds)
        return
    from cryptography.fernet import Fernet

    from tests.fakes.x_api import FakeX

    admin_url = os.environ.get("TEST_DATABASE_URL")
    if not admin_url:
        sys.exit("set TEST_DATABASE_URL to a local Postgres (postgresql://postgres@127.0.0.1/test)")
    target = subprocess.Popen(
        [sys.executable, "-c", http_target(slow_seconds=SLOW_SECONDS)],
        stdout=subprocess.PIPE,
        text=True,
    )
    port = int(target.stdout.readline())
    key = Fernet.generate_key().decode()
    results, killed = [], None

    def run(workers: int, seconds: float, tmp: Path, kill_after: float | None = None) -> dict:
        with FakeX(consumer_key="ck", consumer_secret="cs") as x:
            for i in range(args.bots):
                x.add_user(str(1000 + i), f"bot{i}", f"{i}-token", f"{i}-secret")
            schema, url = fresh_schema(admin_url)
            setup(url, key, args.bots)
            env = base_env(
                DATABASE_URL=url, STEWARD_SECRET_KEY=key, X_CONSUMER_KEY="ck",
                X_CONSUMER_SECRET="cs", X_API_URL=x.url, LOG_LEVEL="WARNING",
                CHECKS_FILE=str(checks_file(tmp, args.checks, port)),
                CHECK_INTERVAL=str(int(CHECK_EVERY.total_seconds())),
            )  # fmt: skip
            result = measure(url, env, workers, seconds, tmp, kill_after)
            result["x_posts"] = len(x.posts)
            drop_schema(admin_url, schema)
        print(f"{workers} worker(s): {result}", flush=True)
        return result

    try:
        with tempfile.TemporaryDirectory() as tmp:
            for workers in (int(n) for n in args.workers.split(",")):
                results.append(run(workers, args.seconds, Path(tmp)))
            if args.kill:
                # Past both leases (bots 60 s, checks 2 min) after the kill, with room to spare.
                killed = run(3, KILL_AFTER + 220, Path(tmp), kill_after=KILL_AFTER)
    finally:
        target.kill()
        target.wait()
    base = results[0]["per_min"]
    rows = [
        (
            r["workers"],
            f"{r['per_min']:.0f}",
            f"{r['per_min'] / base:.2f}x",
            "/".join(f"{s}%" for s in r["share"]),
            r["checks"],
            r["bot_ticks"],
            r["dups"],
            r["late_bots"],
            "/".join(f"{m:.0f}" for m in r["rss"]),
        )
        for r in results
    ]
    header = (
        "workers",
        "units/min",
        "vs 1",
        "share",
        "checks",
        "bot ticks",
        "dups",
        "late bots",
        "RSS MB",
    )
    print(table(rows, header))
    if killed is not None:
        print(
            f"\n3 workers, w1 SIGKILLed mid-tick: it held {killed['held_at_kill']} "
            f"unit(s); the others did them within {killed['moved_within_s']} s "
            f"({killed['never_moved']} never done); units done twice: {killed['dups']}; "
            f"farm posts sent/recorded: {killed['posts']}; posts at the fake X: "
            f"{killed['x_posts']}; late bots: {killed['late_bots']}"
        )


if __name__ == "__main__":
    main()
