"""The client side of a stream: one writer for both streaming routes, with keep-alive while silent.

Claude Code aborts a stream after 300 s of silence and proxies drop idle connections; vLLM says
nothing during a long prefill, so the router speaks for it: an Anthropic ``ping`` event on
``/v1/messages``, an SSE comment on the OpenAI route (whose clients skip comments).
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

PING = b'event: ping\ndata: {"type":"ping"}\n\n'
COMMENT = b": keep-alive\n\n"


class KeepAliveWriter:
    """Writes SSE bytes to the client; sends ``keepalive`` when a whole interval passed without a write."""

    def __init__(
        self, request: web.Request, response: web.StreamResponse, interval: float, keepalive: bytes
    ) -> None:
        self.request = request
        self.response = response
        self.interval = interval
        self.keepalive = keepalive
        self.writes = 0
        self._task: asyncio.Task | None = None

    async def open(self, first: bytes = b"") -> None:
        """Send the headers (and ``first``), then start the keep-alive timer."""
        await self.response.prepare(self.request)
        await self.write(first)
        self._task = asyncio.create_task(self._keepalive())

    async def write(self, data: bytes) -> None:
        if data:
            self.writes += 1
            await self.response.write(data)

    async def _keepalive(self) -> None:
        seen = -1
        with contextlib.suppress(ConnectionError):
            while True:
                await asyncio.sleep(self.interval)
                if self.writes == seen:
                    await self.write(self.keepalive)
                seen = self.writes

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await self._task
