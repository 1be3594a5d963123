"""A worker that queues notifications, claims one for sending, and waits to be killed.

Run by test_sender.py as `python -m tests.telegram.outbox_child DATABASE_URL COUNT`: it writes
COUNT keyed notifications, takes the sender lease for one second, claims the first row (as a
sender does just before it calls Telegram), prints "ready" and sleeps until SIGKILL.
"""

from __future__ import annotations

import sys
import time

from steward import db
from steward.telegram import store
from steward.telegram.outbox import Outbox


def main() -> None:
    url, count = sys.argv[1], int(sys.argv[2])
    engine = db.make_engine(url)
    outbox = Outbox(engine, "42")
    ids = [outbox.notify(f"child {n}", key=f"child-{n}") for n in range(count)]
    assert store.take_lease(engine, "child", ttl=1.0)
    assert store.claim(engine, ids[:1], "child", db.utcnow())
    print("ready", flush=True)
    time.sleep(600)


if __name__ == "__main__":
    main()
