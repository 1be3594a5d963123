"""`python bot.py --demo`: every feature at a fast cadence against targets inside the process.

Within a minute a newcomer sees, with no account at all: dry-run posts composed every 15 s; a
simulated training run reporting progress, then its final report with a chart; an HTTP check that
goes down for a while (alert with a chart) and comes back (recovery reply); and an EVM node that
falls behind its reference nodes and catches up. With TELEGRAM_TOKEN set it all arrives in the
chat; without, in the log.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from steward import db
from steward.config import Settings

log = logging.getLogger("steward.demo")
DEMO_DATABASE = "sqlite:///steward-demo.sqlite"
DOWN = (20.0, 45.0)  # seconds after start when the demo API answers 503
BEHIND = (25.0, 50.0)  # seconds after start when the demo node lags its references
CADENCE = {"posting": dt.timedelta(seconds=15)}
FAST = dt.timedelta(seconds=5)


class DemoTargets:
    """A local HTTP service that fails for a while, and JSON-RPC nodes whose heights move."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        targets = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                down = DOWN[0] <= targets.elapsed() < DOWN[1]
                body = b'{"status": "down"}' if down else b'{"status": "ok"}'
                self._answer(503 if down else 200, body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                request = json.loads(self.rfile.read(length) or b"{}")
                height = targets.height(self.path)
                reply = {"jsonrpc": "2.0", "id": request.get("id"), "result": hex(height)}
                self._answer(200, json.dumps(reply).encode())

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass  # the worker's log is the demo's screen; keep it for the worker

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def height(self, path: str) -> int:
        chain = 1_000_000 + int(self.elapsed() * 2)  # a block every half second
        if path.startswith("/node") and BEHIND[0] <= self.elapsed() < BEHIND[1]:
            return chain - min(20, int((self.elapsed() - BEHIND[0]) * 2))
        return chain

    def start(self) -> DemoTargets:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def checks(self) -> str:
        return json.dumps(
            [
                {"name": "demo-api", "kind": "http", "url": f"{self.url}/health", "interval": 5},
                {
                    "name": "demo-node",
                    "kind": "evm_lag",
                    "url": f"{self.url}/node",
                    "references": [f"{self.url}/ref{i}" for i in (1, 2, 3)],
                    "interval": 5,
                    "alert_above": 10,
                    "clear_below": 3,
                },
            ]
        )


def demo_settings(settings: Settings, targets: DemoTargets) -> Settings:
    """The configuration with the demo's own store and targets filled in where unset."""
    update: dict = {
        "training_update_every": min(settings.training_update_every, 5),
        "training_stall_after": min(settings.training_stall_after, 30),
    }
    if settings.database == db.DEFAULT_DATABASE_URL:
        from pydantic import SecretStr

        update["database_url"] = SecretStr(DEMO_DATABASE)
    if not settings.checks and not settings.checks_file:
        update["checks"] = targets.checks()
    return settings.model_copy(update=update)


def cadence(job_name: str, every: dt.timedelta) -> dt.timedelta:
    """A job's interval in the demo: fast enough to see everything within a minute."""
    feature = job_name.split(".", 1)[0]
    return min(every, CADENCE.get(feature, FAST))


def simulate_training(database_url: str, stop: threading.Event) -> None:
    """A made-up training run: loss falls, accuracy rises, /stop and /setlr work on it."""
    from steward.training import Run

    rng = random.Random(7)
    lr = 0.1
    with Run(
        "demo: tiny-convnet",
        config={"lr": lr, "batch_size": 64, "epochs": 40},
        database_url=database_url,
        tags=["demo"],
        alerts={"accuracy": "above 0.95 after step 20"},
    ) as run:
        for step in range(1, 41):
            if stop.wait(1.0):
                break
            run.progress(step, 40, "epoch 1", unit="batches")
            loss = 2.3 * math.exp(-step / 12) + 0.05 + rng.random() * 0.05
            run.log(step=step, loss=loss, accuracy=1 - loss / 2.5, lr=lr)
            if step == 10:
                run.alert("checkpoint 10 written (run.alert from the script)")
            for command in run.commands():
                if command.kind == "stop":
                    run.ack(command, True, "stopping after this step")
                    return
                if command.kind == "set_lr":
                    lr = command.new_lr(lr)
                    run.ack(command, True, f"learning rate is now {lr:g}")
                else:
                    run.ack(command, False, "the demo run cannot do that")
