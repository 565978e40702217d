"""The load generator: an aiohttp client that sends Messages requests and checks every answer.

Each streamed answer goes through ``grammar.StreamValidator`` as it arrives and, at the end,
is compared with the exact text or tool input the fake backend produced (``bench.tokens``), so
a fast-but-wrong router fails the run. Timing: ``latency`` is request start to the last byte,
``ttft`` request start to the network read that completed the first content delta.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from bench.frames import tool_input_for
from bench.grammar import GrammarError, StreamValidator, validate_message
from bench.tokens import TOOL_NAME, expected_text

CLIENT_MODEL = "claude-sonnet-4-5"  # what Claude Code would send; the router maps it to its default backend
PROMPT = "Write the numbers from one to a thousand, separated by spaces."
TOOLS = [
    {
        "name": TOOL_NAME,
        "description": "Write a file",
        "input_schema": {
            "type": "object",
            "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
            "required": ["path", "content"],
        },
    }
]


@dataclass
class Sample:
    """One request's outcome; ``error`` is set when the answer was invalid or the request failed."""

    latency: float = 0.0
    ttft: float | None = None
    tokens: int = 0
    error: str | None = None


def request_body(n: int, stream: bool, tool: bool = False) -> bytes:
    body: dict[str, Any] = {
        "model": CLIENT_MODEL,
        "max_tokens": n,
        "messages": [{"role": "user", "content": PROMPT}],
    }
    if stream:
        body["stream"] = True
    if tool:
        body["tools"] = TOOLS
        body["tool_choice"] = {"type": "any"}
    return orjson.dumps(body)


def check_stream(v: StreamValidator, n: int, tool: bool) -> None:
    """The accumulated stream must carry exactly what the backend produced."""
    if tool:
        if v.blocks != ["tool_use"]:
            raise GrammarError(f"expected one tool_use block, got {v.blocks}")
        try:
            got = orjson.loads(v.tool_json)
        except orjson.JSONDecodeError as exc:
            raise GrammarError(f"tool input is not JSON: {exc}") from None
        if got != tool_input_for(n):
            raise GrammarError("tool input differs from what the backend sent")
        if v.stop_reason != "tool_use":
            raise GrammarError(f"tool turn ended with stop_reason {v.stop_reason!r}")
    else:
        if v.blocks != ["text"]:
            raise GrammarError(f"expected one text block, got {v.blocks}")
        if v.text != expected_text(n):
            raise GrammarError(
                f"text differs from what the backend sent ({len(v.text)} vs {len(expected_text(n))})"
            )
    if v.output_tokens != n:
        raise GrammarError(f"output_tokens {v.output_tokens}, backend produced {n}")


def check_message(msg: dict[str, Any], n: int, tool: bool) -> None:
    content = msg["content"]
    if tool:
        if (
            len(content) != 1
            or content[0]["type"] != "tool_use"
            or content[0].get("input") != tool_input_for(n)
        ):
            raise GrammarError("tool_use content differs from what the backend sent")
    elif len(content) != 1 or content[0]["type"] != "text" or content[0].get("text") != expected_text(n):
        raise GrammarError("text content differs from what the backend sent")
    if msg["usage"]["output_tokens"] != n:
        raise GrammarError(f"output_tokens {msg['usage']['output_tokens']}, backend produced {n}")


class Client:
    """One keep-alive connection pool to one target (the router or the fake backend's native endpoint)."""

    def __init__(self, base_url: str, api_key: str, timeout: float = 30.0) -> None:
        self.url = base_url.rstrip("/") + "/v1/messages"
        self.headers = {
            "x-api-key": api_key,
            "anthropic-version": "2023-06-01",
            "content-type": "application/json",
        }
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Client:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None, enable_cleanup_closed=False)
        self.session = aiohttp.ClientSession(connector=connector, timeout=self.timeout, auto_decompress=False)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()

    async def message(self, n: int, tool: bool = False) -> Sample:
        assert self.session is not None
        sample = Sample()
        t0 = time.perf_counter()
        try:
            async with self.session.post(
                self.url, data=request_body(n, False, tool), headers=self.headers
            ) as resp:
                body = await resp.read()
            sample.latency = time.perf_counter() - t0
            if resp.status != 200:
                raise GrammarError(f"HTTP {resp.status}: {body[:300]!r}")
            msg = validate_message(body)
            check_message(msg, n, tool)
            sample.tokens = n
        except (TimeoutError, GrammarError, aiohttp.ClientError) as exc:
            sample.error = f"{type(exc).__name__}: {exc}"
        return sample

    async def stream(self, n: int, tool: bool = False) -> Sample:
        assert self.session is not None
        sample = Sample()
        v = StreamValidator()
        t0 = time.perf_counter()
        try:
            async with self.session.post(
                self.url, data=request_body(n, True, tool), headers=self.headers
            ) as resp:
                if resp.status != 200:
                    raise GrammarError(f"HTTP {resp.status}: {(await resp.read())[:300]!r}")
                async for chunk in resp.content.iter_any():
                    if v.feed(chunk) and sample.ttft is None:
                        sample.ttft = time.perf_counter() - t0
            sample.latency = time.perf_counter() - t0
            v.finish()
            check_stream(v, n, tool)
            sample.tokens = n
        except (TimeoutError, GrammarError, aiohttp.ClientError) as exc:
            sample.error = f"{type(exc).__name__}: {exc}"
        return sample


async def sequential(call: Callable[[], Awaitable[Sample]], count: int) -> tuple[list[Sample], float]:
    """``count`` requests one after another; returns the samples and the wall time."""
    t0 = time.perf_counter()
    out = [await call() for _ in range(count)]
    return out, time.perf_counter() - t0


async def concurrent(call: Callable[[], Awaitable[Sample]], count: int) -> tuple[list[Sample], float]:
    """``count`` requests at once; the wall time runs from the first send to the last byte."""
    t0 = time.perf_counter()
    out = await asyncio.gather(*(call() for _ in range(count)))
    return list(out), time.perf_counter() - t0


async def post_json(url: str, obj: dict[str, Any]) -> dict[str, Any]:
    async with aiohttp.ClientSession() as s, s.post(url, data=orjson.dumps(obj)) as resp:
        return orjson.loads(await resp.read())


async def wait_healthy(url: str, alive: Callable[[], bool], timeout: float) -> None:
    """Poll ``GET url`` until 200; give up early when the process died."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as s:
        while time.monotonic() < deadline:
            if not alive():
                raise RuntimeError("process exited before it became healthy")
            try:
                async with s.get(url) as resp:
                    if resp.status == 200:
                        return
            except (TimeoutError, aiohttp.ClientError, OSError):
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} not healthy after {timeout:.0f}s")
