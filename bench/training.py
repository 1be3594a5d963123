"""What the training client costs the loop: run.log() on the training thread, and a whole loop.

Prints the cost of one log() call (median and p99) and the slowdown of a 10,000-step loop whose
steps each do about 1 ms of numpy work, with the client attached and, for comparison, with a
callback that sends each step to a Bot API synchronously (the fake one, replying in 50 ms).

    .venv/bin/python bench/training.py
"""

from __future__ import annotations

import os
import statistics
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
            run.flush(60)  # the 200,000 points above must not be written during the loop
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
    print(f"{'reporting':<26}{'ms/step':>10}{'slowdown':>12}")
    for name, per_step, why in rows:
        if why:
            print(f"{name:<26}{'-':>10}{'-':>12}  {why}")
            continue
        slowdown = (per_step / bare - 1) * 100
        print(f"{name:<26}{per_step * 1000:>10.3f}{slowdown:>11.2f}%")


if __name__ == "__main__":
    main()
