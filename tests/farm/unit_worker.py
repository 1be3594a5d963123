"""A worker process for the work-unit tests: claims units, "works" on each (an I/O wait), and
records it done in the same transaction that finishes the unit. Prints one line per claim.

    python -m tests.farm.unit_worker URL NAME LEASE_SECONDS WORK_SECONDS
"""

from __future__ import annotations

import datetime as dt
import sys
import time

import sqlalchemy as sa

from steward import db
from steward.farm import leases

done = sa.table(
    "unit_done",
    sa.column("key", sa.String),
    sa.column("worker", sa.String),
    sa.column("at", db.UTCDateTime()),
)


def main(url: str, name: str, lease_s: str, work_s: str) -> None:
    engine = db.make_engine(url)
    lease, work = dt.timedelta(seconds=float(lease_s)), float(work_s)
    while True:
        units = leases.claim(engine, name, now=db.utcnow(), lease=lease, limit=4, kinds=["test"])
        if not units:
            time.sleep(0.05)
            continue
        print(f"claimed {' '.join(u.key for u in units)}", flush=True)
        for unit in units:
            time.sleep(work)  # the I/O a real unit waits on
            with engine.begin() as conn:
                now = db.utcnow()
                conn.execute(sa.insert(done).values(key=unit.key, worker=name, at=now))
                if not leases.finish(conn, unit, next_due=now + dt.timedelta(days=1), now=now):
                    raise LookupError("lease lost")  # rolls the done row back with it


if __name__ == "__main__":
    main(*sys.argv[1:])
