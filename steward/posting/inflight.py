"""The in-flight claim a post carries while one worker publishes it.

A post is claimed (`claimed_by`, `lease_until`) in the transaction that records it, or when a
recovery takes it over. Another worker leaves it alone while the lease holds: during a deploy
overlap the old worker may be sending it right now, and X answering its request slowly. The
lease outlasts a publish (X's requests time out after 30 s). A claimant on this host whose
process has ended (`bot.py post` from cron killed mid-post) is known gone at once.
"""

from __future__ import annotations

import datetime as dt
import os
import socket

LEASE = dt.timedelta(minutes=2)


def worker_name(owner: object) -> str:
    """`host:pid:poster`: unique per process and per poster within it (one per bot)."""
    return f"{socket.gethostname()}:{os.getpid()}:{id(owner):x}"


def claimant_gone(worker: str | None) -> bool:
    """Whether the worker named `host:pid:...` is known to be dead: a process of this host
    (`bot.py post` from cron, a restarted worker) that no longer runs. Elsewhere its lease says."""
    host, _, rest = (worker or "").partition(":")
    pid = rest.split(":", 1)[0]
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # alive, someone else's
    return False
