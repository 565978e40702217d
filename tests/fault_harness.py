"""What the fault tests share: a tests/raw_backend.py backend per test, the request they send, and the
check every fault ends with (one log line, no task, no upstream connection, the backend's connection
ended).

A test module takes the ``backend`` fixture by importing ``backend_fixture`` (pytest registers a fixture
found in a test module's namespace).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable

import orjson
import pytest
from aiohttp.test_utils import TestClient
from raw_backend import RawBackend

from router.keys import UPSTREAM

HELLO = [{"role": "user", "content": "hello"}]
# Short timeouts so a stall costs a fraction of a second; PING_INTERVAL long so that an error before the
# backend's headers keeps its status (the ping path has its own test).
FAST = {"IDLE_TIMEOUT": "0.15", "REQUEST_TIMEOUT": "5", "PING_INTERVAL": "5", "HEALTH_INTERVAL": "60"}


@pytest.fixture(name="backend")
async def backend_fixture() -> AsyncIterator[RawBackend]:
    raw = RawBackend()
    await raw.start()
    yield raw
    await raw.close()


def request_body(route: str, stream: bool) -> bytes:
    body: dict = {"model": "m", "messages": HELLO, "stream": stream}
    if route == "messages":
        body["max_tokens"] = 50
    return orjson.dumps(body)


async def settle(check: Callable[[], object], timeout: float = 2.0) -> None:
    """Wait until ``check()`` passes: a client can finish reading a moment before the router has
    finished its own bookkeeping (log line, closing the upstream response)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            check()
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.005)


def pool_counts(client: TestClient) -> tuple[int, int]:
    """(connections in use, idle connections kept) in the router's upstream pool."""
    session = client.server.app[UPSTREAM].session
    assert session is not None
    connector = session.connector
    assert connector is not None
    idle = sum(len(conns) for conns in connector._conns.values())
    return len(connector._acquired), idle


class Leftovers:
    """The tasks alive before a request; after it, any other task still alive was left behind."""

    def __init__(self) -> None:
        self.before = set(asyncio.all_tasks())

    def new_tasks(self) -> list[asyncio.Task]:
        current = asyncio.current_task()
        return [t for t in asyncio.all_tasks() if t not in self.before and t is not current and not t.done()]


async def assert_nothing_left(
    client: TestClient, backend: RawBackend, leftovers: Leftovers, caplog: pytest.LogCaptureFixture, path: str
) -> logging.LogRecord:
    """The shared end of every fault: one log line, no task, no upstream connection, backend closed."""

    def check() -> None:
        lines = [r for r in caplog.records if r.name == "router.access" and r.request.path == path]
        assert len(lines) == 1, [r.getMessage() for r in lines]
        assert pool_counts(client) == (0, 0)
        assert all(ex.closed_at is not None for ex in backend.exchanges), backend.exchanges
        assert backend.open_connections == 0
        assert leftovers.new_tasks() == []

    await settle(check)
    assert backend.errors == []
    return next(r for r in caplog.records if r.name == "router.access" and r.request.path == path)
