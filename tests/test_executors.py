"""Hung name lookups cannot starve the store's threads."""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest

from steward import executors

HUNG = "hung.resolver.invalid"


@pytest.fixture
def hung_resolver(monkeypatch):
    """A resolver that never answers for one name (a DNS server dropping queries)."""
    release = threading.Event()
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host == HUNG:
            release.wait(30)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield
    release.set()


async def test_store_calls_go_on_while_name_lookups_hang(hung_resolver):
    loop = asyncio.get_running_loop()
    executors.install(loop)
    lookups = [
        asyncio.ensure_future(asyncio.open_connection(HUNG, 443)) for _ in range(12)
    ]  # more than every thread asyncio would have by default
    await asyncio.sleep(0.2)
    threads: list[str] = []
    for _ in range(20):  # more store calls than resolver threads
        threads.append(
            await asyncio.wait_for(asyncio.to_thread(lambda: threading.current_thread().name), 2.0)
        )
    assert all(name.startswith("store") for name in threads)
    for lookup in lookups:
        lookup.cancel()
    await asyncio.gather(*lookups, return_exceptions=True)
