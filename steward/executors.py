"""Threads for blocking work, kept apart so that one kind cannot starve the other.

asyncio sends both kinds of blocking work to the loop's default executor: every
`asyncio.to_thread` (the store: claims, the outbox lease, dialogs, features' reads and writes)
and every name lookup (`loop.getaddrinfo`, used by `open_connection` and by httpx through
anyio). A resolver that hangs (a DNS server that drops queries) then holds the few default
threads, and a no-op store call waits behind six lookups long enough to lose the outbox lease.

`install(loop)` gives the store the default executor, bounded to the size of the engine's
connection pool, and moves name lookups to an executor of their own.
"""

from __future__ import annotations

import asyncio
import functools
import socket
from concurrent.futures import ThreadPoolExecutor

STORE_THREADS = 10  # the Postgres pool: 5 connections and 5 overflow
RESOLVER_THREADS = 4


def install(loop: asyncio.AbstractEventLoop) -> None:
    """Give `loop` a store executor (its default) and a resolver executor of its own."""
    if getattr(loop, "_steward_resolver", None) is not None:
        return
    loop.set_default_executor(ThreadPoolExecutor(STORE_THREADS, thread_name_prefix="store"))
    resolver = ThreadPoolExecutor(RESOLVER_THREADS, thread_name_prefix="resolve")
    loop._steward_resolver = resolver

    async def getaddrinfo(host, port, *, family=0, type=0, proto=0, flags=0):
        lookup = functools.partial(socket.getaddrinfo, host, port, family, type, proto, flags)
        return await loop.run_in_executor(resolver, lookup)

    async def getnameinfo(sockaddr, flags=0):
        return await loop.run_in_executor(resolver, socket.getnameinfo, sockaddr, flags)

    # The loop looks these up on itself (create_connection, anyio), so instance attributes
    # take every lookup of this loop off the default executor.
    loop.getaddrinfo = getaddrinfo
    loop.getnameinfo = getnameinfo
