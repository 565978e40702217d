"""500 concurrent streams through a real router process, with zero errors.

The router runs as ``python -m router`` (uvloop, its own core); the backend (tests/raw_backend.py, far
lighter than FakeVLLM) and the 500 clients share this process. Every stream is held open at once: the
backend sends its headers and first chunk, then waits until all 500 clients have seen their
``message_start`` (so 500 client streams and 500 backend requests are open through the router together),
then finishes every stream. Each client's bytes must be one complete, well-formed Anthropic stream.
The router's RSS before and after is printed; ``make soak`` watches it over minutes.
"""

from __future__ import annotations

import asyncio
import resource
import time
from pathlib import Path

import aiohttp
import orjson
from anthropic_stream_check import check_stream
from raw_backend import LAST_CHUNK, Exchange, RawBackend, chunk, http_chunk, openai_frames
from router_process import KEY, RouterProcess

STREAMS = 500
TOKENS = 20
BODY = orjson.dumps(
    {"model": "m", "max_tokens": 100, "stream": True, "messages": [{"role": "user", "content": "hello"}]}
)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def raise_fd_limit(needed: int) -> None:
    """This process holds both ends' sockets of 500 streams (and the router inherits the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


async def test_500_concurrent_streams_without_an_error(tmp_path: Path) -> None:
    raise_fd_limit(4 * STREAMS + 256)
    release = asyncio.Event()
    frames = [http_chunk(f) for f in openai_frames([f" t{i}" for i in range(TOKENS)])[1:]]
    tail = b"".join(frames) + http_chunk(b"data: [DONE]\n\n") + LAST_CHUNK

    async def held(ex: Exchange) -> None:
        head = ex.head(200, [("Content-Type", "text/event-stream"), ("Transfer-Encoding", "chunked")])
        await ex.write(head + http_chunk(chunk({"role": "assistant", "content": ""})))
        await release.wait()
        await ex.write(tail)

    backend = RawBackend(keep_alive=True)
    backend.default = held
    await backend.start()
    router = await RouterProcess.start(tmp_path, backend.url, LOG_LEVEL="warning", HEALTH_INTERVAL="5")
    opened = 0

    async def one(session: aiohttp.ClientSession) -> bytes:
        nonlocal opened
        headers = {"x-api-key": KEY, "Content-Type": "application/json"}
        async with session.post(router.url + "/v1/messages", data=BODY, headers=headers) as resp:
            assert resp.status == 200, await resp.text()
            first = await resp.content.readuntil(b"\n\n")
            assert first.startswith(b"event: message_start")
            opened += 1
            return first + await resp.read()

    async def until_open(count: int, tasks: list[asyncio.Task], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while opened < count:
            for task in tasks:
                if task.done() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{opened} of {count} streams open after {timeout}s; backend saw "
                    f"{len(backend.exchanges)} requests:\n{router.log()[-2000:]}"
                )
            await asyncio.sleep(0.005)

    try:
        await router.wait_healthy()
        rss_before = rss_kb(router.proc.pid)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=60)
        ) as session:
            t0 = time.monotonic()
            tasks = []
            for batch in range(0, STREAMS, 50):
                # Batches of 50 keep each connect burst within the router's listen backlog (128).
                tasks += [asyncio.create_task(one(session)) for _ in range(50)]
                await until_open(batch + 50, tasks)
            held_after = time.monotonic() - t0
            in_flight = backend.in_flight
            async with session.get(router.url + "/metrics") as resp:
                metrics = await resp.text()
            release.set()
            bodies = await asyncio.gather(*tasks)
            elapsed = time.monotonic() - t0
        rss_after = rss_kb(router.proc.pid)
    finally:
        release.set()
        await router.kill()
        await backend.close()
    assert in_flight == STREAMS  # every backend request open at the same moment
    gauge = next(
        line for line in metrics.splitlines() if line.startswith("anthropic_router_in_flight_requests")
    )
    assert float(gauge.split()[-1]) >= STREAMS
    for raw in bodies:
        events = check_stream(raw)
        assert events[-1]["type"] == "message_stop"
        assert sum(e["type"] == "content_block_delta" for e in events) == TOKENS
    assert backend.errors == [] and len(backend.exchanges) == STREAMS
    print(
        f"\nload: {STREAMS} concurrent streams held after {held_after:.2f}s, all done in {elapsed:.2f}s; "
        f"router RSS {rss_before / 1024:.1f} MiB before, {rss_after / 1024:.1f} MiB after"
    )
