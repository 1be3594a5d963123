"""What the training client costs the loop: run.log() on the training thread, and a whole loop.

Prints the cost of one log() call (median and p99) alone and with the heartbeat on (a
run.progress() per batch, what the framework callbacks do; the budget is a median under 20 µs),
the slowdown of a 10,000-step loop whose steps each do about 1 ms of numpy work, with the client
attached and, for comparison, with a callback that sends each step to a Bot API synchronously
(the fake one, replying in 50 ms), and what `import steward.training` costs in a slim install
(a Python with only the core dependencies: STEWARD_SLIM_PYTHON, e.g. a venv made with
`pip install .`; without it, this Python with the worker's libraries blocked).

    .venv/bin/python bench/training.py
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# One BLAS thread: a "1 ms step" should be 1 ms of one core, and spinning BLAS threads on a
# small machine would measure the scheduler rather than the client.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from steward import db  # noqa: E402
from steward.training import Run, store  # noqa: E402

STEPS = 10_000
SYNC_STEPS = 100  # at 50 ms a reply, 10,000 synchronous sends would take over 8 minutes


def loop(work, steps: int, report=None) -> float:
    start = time.perf_counter()
    for step in range(steps):
        loss = work()
        if report is not None:
            report(step, loss)
    return (time.perf_counter() - start) / steps


def calibrated_work() -> tuple[Callable[[], float], float]:
    """A step of real numpy work lasting about a millisecond on this machine."""
    rng = np.random.default_rng(0)
    size = 64
    while True:
        a = rng.normal(size=(size, size))

        def work(a=a) -> float:
            return float((a @ a).sum())

        loop(work, 50)
        took = loop(work, 300)
        if took >= 0.001 or size >= 1024:
            return work, took
        size = int(size * 1.1) + 1


def log_cost(run: Run) -> tuple[float, float]:
    costs = []
    for step in range(100_000):
        start = time.perf_counter_ns()
        run.log(step=step, loss=0.5, acc=0.9)
        costs.append(time.perf_counter_ns() - start)
    costs.sort()
    return statistics.median(costs) / 1000, costs[int(len(costs) * 0.99)] / 1000


LOG_BUDGET_US = 20.0


def log_with_heartbeat_cost(run: Run) -> tuple[float, float]:
    """run.log() plus run.progress() per step, as a callback reporting every batch does."""
    costs = []
    for step in range(100_000):
        start = time.perf_counter_ns()
        run.log(step=step, loss=0.5, acc=0.9)
        run.progress(step % 5000 + 1, 5000, "epoch 1", unit="batches")
        costs.append(time.perf_counter_ns() - start)
    costs.sort()
    return statistics.median(costs) / 1000, costs[int(len(costs) * 0.99)] / 1000


_IMPORT_PROBE = """
import json, sys, time
blocked = set(sys.argv[1].split(",")) if len(sys.argv) > 1 and sys.argv[1] else set()
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Block())
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
before, start = rss(), time.perf_counter()
import steward.training
took = time.perf_counter() - start
heavy = [m for m in ("torch", "numpy", "telegram", "apscheduler", "tweepy") if m in sys.modules]
print(json.dumps({"ms": took * 1000, "mib": (rss() - before) / 2**20, "loaded": heavy}))
"""
WORKER_ONLY = "telegram,tweepy,apscheduler,pydantic_settings,dotenv,matplotlib,httpx,feedparser"


def slim_import_cost() -> tuple[str, dict]:
    """The cost of `import steward.training` from this checkout in a fresh slim interpreter."""
    python = os.environ.get("STEWARD_SLIM_PYTHON")
    blocked = "" if python else WORKER_ONLY
    where = f"slim venv {python}" if python else "this Python, worker libraries blocked"
    root = str(Path(__file__).resolve().parents[1])
    runs = []
    for _ in range(5):  # fresh processes; the fastest is the least disturbed by other load
        out = subprocess.run(
            [python or sys.executable, "-c", _IMPORT_PROBE, blocked],
            env={**os.environ, "PYTHONPATH": root},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        runs.append(json.loads(out))
    return where, min(runs, key=lambda r: r["ms"])


def sync_sender():
    try:
        import httpx

        from tests.fakes.telegram_api import FakeTelegram
    except ImportError as exc:
        return None, f"not measured ({exc.name} is not available)"
    fake = FakeTelegram(reply_delay=0.05, enforce_limits=False)
    url = fake.start()
    client = httpx.Client()

    def send(step, loss):
        reply = client.post(
            f"{url}/bot{fake.token}/sendMessage",
            json={"chat_id": 1, "text": f"step {step}: {loss}"},
        )
        reply.raise_for_status()

    return (send, lambda: (client.close(), fake.stop())), ""


def main() -> None:
    work, took = calibrated_work()
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'bench.sqlite'}"
        engine = db.make_engine(url)
        db.metadata.create_all(engine, tables=store.TABLES)
        engine.dispose()

        loop(work, 500)  # warm up caches and the CPU clock
        with Run("bench", database_url=url) as run:
            median, p99 = log_cost(run)
            run.flush(60)
            beat_median, beat_p99 = log_with_heartbeat_cost(run)
            run.flush(60)  # the points above must not be written during the loop
            # Interleaved and best of three: other load on the machine hits both alike.
            bare, attached = float("inf"), float("inf")
            for _ in range(3):
                bare = min(bare, loop(work, STEPS))
                attached = min(attached, loop(work, STEPS, lambda s, x: run.log(step=s, loss=x)))
    rows = [
        ("no reporting", bare, ""),
        ("steward Run.log", attached, ""),
    ]
    sender, note = sync_sender()
    if sender is not None:
        send, close = sender
        try:
            rows.append(("synchronous sendMessage", loop(work, SYNC_STEPS, send), ""))
        finally:
            close()
    else:
        rows.append(("synchronous sendMessage", float("nan"), note))

    print(
        f"one step of work: {took * 1000:.2f} ms; run.log(): median {median:.2f} µs, "
        f"p99 {p99:.2f} µs"
    )
    verdict = "within" if beat_median < LOG_BUDGET_US else "OVER"
    print(
        f"run.log() + run.progress() (heartbeat on): median {beat_median:.2f} µs, "
        f"p99 {beat_p99:.2f} µs ({verdict} the {LOG_BUDGET_US:.0f} µs budget)"
    )
    where, cost = slim_import_cost()
    print(
        f"import steward.training ({where}): {cost['ms']:.0f} ms, +{cost['mib']:.1f} MiB RSS, "
        f"heavy modules loaded: {', '.join(cost['loaded']) or 'none'}"
    )
    print(f"{'reporting':<26}{'ms/step':>10}{'slowdown':>12}")
    for name, per_step, why in rows:
        if why:
            print(f"{name:<26}{'-':>10}{'-':>12}  {why}")
            continue
        slowdown = (per_step / bare - 1) * 100
        print(f"{name:<26}{per_step * 1000:>10.3f}{slowdown:>11.2f}%")


if __name__ == "__main__":
    main()
