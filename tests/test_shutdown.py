"""Graceful shutdown of a real ``python -m router`` process: SIGTERM/SIGINT stop the listener, in-flight
streams finish within SHUTDOWN_GRACE, the rest end with an ``overloaded_error`` clients retry, exit 0."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestServer
from anthropic_stream_check import check_stream
from conftest import server_url
from fake_vllm import FakeVLLM, Turn
from router_process import KEY, RouterProcess, Spawner

ServerFactory = Callable[..., Awaitable[TestServer]]
AUTH = {"x-api-key": KEY}
HELLO = [{"role": "user", "content": "Hello"}]
STREAM = {"model": "tiny", "max_tokens": 200, "stream": True, "messages": HELLO}


@pytest.fixture
async def spawn(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[RouterProcess]]]:
    async with Spawner(tmp_path) as spawner:
        yield spawner.start


async def read_stream(resp: aiohttp.ClientResponse, first: bytes) -> bytes:
    return first + await resp.content.read()


async def refuses_connections(url: str) -> bool:
    async with aiohttp.ClientSession() as session:
        try:
            async with session.get(url + "/health", timeout=aiohttp.ClientTimeout(total=2)):
                return False
        except aiohttp.ClientConnectionError:
            return True


async def test_sigterm_lets_a_stream_finish_then_exits_0(
    aiohttp_server: ServerFactory, spawn: Callable[..., Awaitable[RouterProcess]]
) -> None:
    vllm = FakeVLLM()
    vllm.script(Turn(text="tick " * 25, delay_per_token=0.04))  # about 1 s
    router = await spawn(server_url(await aiohttp_server(vllm.app)), SHUTDOWN_GRACE="20")
    await router.wait_healthy()
    async with (
        aiohttp.ClientSession() as session,
        session.post(router.url + "/v1/messages", json=STREAM, headers=AUTH) as resp,
    ):
        assert resp.status == 200
        first = await resp.content.readuntil(b"\n\n")
        router.send(signal.SIGTERM)
        t0 = time.monotonic()
        await asyncio.sleep(0.2)
        assert await refuses_connections(router.url)  # stopped accepting at once
        raw = await read_stream(resp, first)
    events = check_stream(raw)
    assert events[-1]["type"] == "message_stop"
    text = "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")
    assert text == "tick " * 25
    assert await router.wait(10) == 0
    assert time.monotonic() - t0 < 5  # done when the stream was, not after the 20 s grace
    assert (await vllm.wait_event(0)).outcome == "completed"
    log = router.log()
    assert "shutting down: 1 request(s) in flight" in log and "all requests finished" in log


async def test_sigint_past_the_grace_ends_requests_with_overloaded_error(
    aiohttp_server: ServerFactory, spawn: Callable[..., Awaitable[RouterProcess]]
) -> None:
    vllm = FakeVLLM()
    long = Turn(text="tock " * 400, delay_per_token=0.05)  # 20 s, far past the grace
    vllm.script(long, Turn(text="x", hang=True), Turn(text="tock " * 400, delay_per_token=0.05))
    router = await spawn(server_url(await aiohttp_server(vllm.app)), SHUTDOWN_GRACE="1")
    await router.wait_healthy()
    openai = {"model": "tiny", "max_tokens": 200, "stream": True, "messages": HELLO}
    async with aiohttp.ClientSession() as session:
        anthropic_resp = await session.post(router.url + "/v1/messages", json=STREAM, headers=AUTH)
        first = await anthropic_resp.content.readuntil(b"\n\n")
        plain = asyncio.ensure_future(
            session.post(router.url + "/v1/messages", json={**STREAM, "stream": False}, headers=AUTH)
        )
        while len(vllm.requests) < 2:
            await asyncio.sleep(0.01)
        openai_resp = await session.post(router.url + "/v1/chat/completions", json=openai, headers=AUTH)
        openai_first = await openai_resp.content.readuntil(b"\n\n")
        router.send(signal.SIGINT)
        t0 = time.monotonic()
        raw = await read_stream(anthropic_resp, first)
        cut_after = time.monotonic() - t0
        openai_raw = await read_stream(openai_resp, openai_first)
        plain_resp = await plain
        plain_status, plain_body = plain_resp.status, await plain_resp.json()
        plain_retry = plain_resp.headers.get("x-should-retry")
    assert 0.8 < cut_after < 4, cut_after  # at the grace (1 s), not at the end of the 20 s stream
    events = check_stream(raw)
    assert events[-1] == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "the router is shutting down; retry the request"},
    }
    assert not any(e["type"] == "message_stop" for e in events)
    assert (plain_status, plain_body["error"]["type"], plain_retry) == (529, "overloaded_error", "true")
    frames = [f for f in openai_raw.split(b"\n\n") if f]
    assert frames[-1] == b"data: [DONE]"
    assert orjson.loads(frames[-2].removeprefix(b"data: "))["error"]["type"] == "overloaded_error"
    assert await router.wait(10) == 0
    # The backend requests were closed, so vLLM stopped generating for nobody.
    assert {(await vllm.wait_event(i)).outcome for i in range(3)} == {"disconnected"}
    assert "SHUTDOWN_GRACE (1 s) is over: ending 3 request(s)" in router.log()


async def test_idle_router_stops_at_once(
    aiohttp_server: ServerFactory, spawn: Callable[..., Awaitable[RouterProcess]]
) -> None:
    router = await spawn(server_url(await aiohttp_server(FakeVLLM().app)))
    await router.wait_healthy()
    t0 = time.monotonic()
    router.send(signal.SIGTERM)
    assert await router.wait(10) == 0
    assert time.monotonic() - t0 < 3
    assert "no request in flight" in router.log()
