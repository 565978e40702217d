"""Backend faults once the stream is under way: a backend that stalls after the router has answered
200 and sent pings ends in a timeout event, and a client that stops reading makes the router stop
reading the backend (back-pressure) instead of buffering its answer.
"""

from __future__ import annotations

import asyncio
import logging
import time

import orjson
import pytest
from aiohttp.test_utils import TestClient
from anthropic_stream_check import check_stream
from conftest import AUTH, RouterFactory
from fault_harness import (  # noqa: F401  (backend_fixture: the `backend` fixture)
    FAST,
    Leftovers,
    assert_nothing_left,
    backend_fixture,
    request_body,
)
from raw_backend import RawBackend, firehose, stall


async def test_stall_after_pings_ends_with_a_timeout_event(
    router_factory: RouterFactory, backend: RawBackend, caplog: pytest.LogCaptureFixture
) -> None:
    """Past one ping interval the 200 is out; a backend that then never answers becomes an event."""
    client = await router_factory(backend.url, **{**FAST, "PING_INTERVAL": "0.05", "IDLE_TIMEOUT": "0.3"})
    backend.script(stall())
    caplog.set_level(logging.INFO, logger="router.access")
    caplog.clear()
    leftovers = Leftovers()
    headers = {**AUTH, "Connection": "close"}
    resp = await client.post("/v1/messages", data=request_body("messages", True), headers=headers)
    raw = await resp.read()
    assert resp.status == 200
    events = check_stream(raw)
    assert events[0]["type"] == "message_start" and {"type": "ping"} in events
    assert events[-1]["type"] == "error" and events[-1]["error"]["type"] == "timeout_error"
    await assert_nothing_left(client, backend, leftovers, caplog, "/v1/messages")
    assert backend.exchanges[0].closed_by == "router"


def router_transports(client: TestClient) -> list[asyncio.Transport]:
    """The router's server-side connections (to its clients)."""
    server = client.server.runner.server
    assert server is not None
    return [h.transport for h in server.connections if h.transport is not None]


async def test_slow_client_gets_back_pressure_not_buffering(
    router_factory: RouterFactory, backend: RawBackend, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that stops reading makes the router stop reading the backend: the backend's writes block
    long before its 48 MB answer is out, and the router's own write buffer to the client stays small."""
    frame_bytes, frames = 16384, 3072
    total = frame_bytes * frames
    client = await router_factory(backend.url, **FAST)
    backend.script(firehose(frame_bytes, frames))
    caplog.set_level(logging.INFO, logger="router.access")
    caplog.clear()
    leftovers = Leftovers()
    host, port = client.server.host, client.server.port
    reader, writer = await asyncio.open_connection(host, port, limit=1 << 16)
    body = request_body("messages", True)
    head = (
        f"POST /v1/messages HTTP/1.1\r\nHost: {host}\r\nx-api-key: {AUTH['x-api-key']}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    writer.write(head.encode() + body)
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    # Read nothing more; wait until the backend is blocked (no progress for a while).
    ex = (await settle_exchange(backend)).exchanges[0]
    last, still_since, buffered = -1, time.monotonic(), 0
    while time.monotonic() - still_since < 0.3:
        buffered = max(buffered, *(t.get_write_buffer_size() for t in router_transports(client)))
        if ex.sent != last:
            last, still_since = ex.sent, time.monotonic()
        await asyncio.sleep(0.01)
    assert ex.answered is None and ex.closed_at is None
    assert ex.sent < total / 2, f"backend wrote {ex.sent} of {total} bytes to a client that reads nothing"
    assert buffered < 1 << 20, f"router buffered {buffered} bytes for the slow client"
    blocked_at = ex.sent
    # Now read it all: the stream is complete and intact.
    data = await reader.read()
    writer.close()
    names, text = event_summary(dechunk(data))
    deltas = ["content_block_delta"] * frames
    ends = ["content_block_stop", "message_delta", "message_stop"]
    assert names == ["message_start", "content_block_start", *deltas, *ends]
    assert text == total
    await assert_nothing_left(client, backend, leftovers, caplog, "/v1/messages")
    print(
        f"\nslow client: backend blocked after {blocked_at / 1e6:.1f} of {total / 1e6:.1f} MB; "
        f"router write buffer peak {buffered / 1024:.0f} KiB"
    )


async def settle_exchange(backend: RawBackend, count: int = 1) -> RawBackend:
    for _ in range(1000):
        if len(backend.exchanges) >= count:
            return backend
        await asyncio.sleep(0.005)
    raise AssertionError("the backend never got the request")


def event_summary(body: bytes) -> tuple[list[str], int]:
    """Event names (pings left out) and the total text of an Anthropic stream: a linear check for a
    stream too big for check_stream, whose per-delta text accumulation is quadratic."""
    names, text = [], 0
    for block in body.split(b"\n\n")[:-1]:
        event, _, data = block.partition(b"\n")
        name = event.removeprefix(b"event: ").decode()
        payload = orjson.loads(data.removeprefix(b"data: "))
        assert payload["type"] == name
        if name == "content_block_delta":
            text += len(payload["delta"]["text"])
        if name != "ping":
            names.append(name)
    return names, text


def dechunk(data: bytes) -> bytes:
    """The body of an HTTP/1.1 chunked response."""
    out, pos = [], 0
    while True:
        end = data.index(b"\r\n", pos)
        size = int(data[pos:end].split(b";")[0], 16)
        if size == 0:
            return b"".join(out)
        out.append(data[end + 2 : end + 2 + size])
        pos = end + 2 + size + 2
