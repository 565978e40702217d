"""The fake backend: vLLM's OpenAI wire format, and the same tokens natively as Anthropic ("direct").

It runs in its own process (pinned to its own core where the OS allows) so its CPU can be read
from /proc and compared with the router's. Every frame is precomputed (``bench.frames``); a
request only picks frames and writes them, one write per frame, as vLLM's uvicorn does.

Knobs: ``max_tokens`` (or ``max_completion_tokens``) of a request is the number of tokens
produced; a request with ``tools`` (and a ``tool_choice`` other than ``none``) gets one tool call
whose arguments are streamed one fragment per token; ``POST /_bench/config {"pace_ms": 5}``
sets the pacing (milliseconds between tokens, 0 = full speed) for the following requests, so a
router in between needs no way to forward it.

Run: ``python -m bench.backend [--port N] [--cpu C]``; prints ``PORT <n>`` once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Sequence
from typing import Any

import orjson
from aiohttp import web

from bench.frames import DONE, AnthropicFrames, OpenAIFrames, anthropic_message, openai_completion
from bench.procs import pin_self
from bench.tokens import MODEL, clamp_tokens

SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
JSON_HEADERS = {"Content-Type": "application/json"}


class FakeBackend:
    """Request handlers over precomputed frames; ``pace`` is seconds between tokens."""

    def __init__(self, pace_ms: float = 0.0) -> None:
        self.pace = pace_ms / 1000.0
        self.openai = OpenAIFrames()
        self.anthropic = AnthropicFrames()
        self.requests = 0

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_get("/health", self.health)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/version", self.version)
        app.router.add_post("/_bench/config", self.config)
        app.router.add_get("/_bench/stats", self.stats)
        return app

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def version(self, request: web.Request) -> web.Response:
        return web.Response(body=b'{"version":"0.32.0-bench"}', headers=JSON_HEADERS)

    async def models(self, request: web.Request) -> web.Response:
        body = {
            "object": "list",
            "data": [
                {
                    "id": MODEL,
                    "object": "model",
                    "created": 1795535584,
                    "owned_by": "vllm",
                    "root": MODEL,
                    "parent": None,
                    "max_model_len": 32768,
                    "permission": [],
                }
            ],
        }
        return web.Response(body=orjson.dumps(body), headers=JSON_HEADERS)

    async def config(self, request: web.Request) -> web.Response:
        cfg = orjson.loads(await request.read())
        self.pace = float(cfg.get("pace_ms", 0.0)) / 1000.0
        return web.Response(body=orjson.dumps({"pace_ms": self.pace * 1000.0}), headers=JSON_HEADERS)

    async def stats(self, request: web.Request) -> web.Response:
        return web.Response(
            body=orjson.dumps({"requests": self.requests, "pid": os.getpid()}), headers=JSON_HEADERS
        )

    async def _parse(self, request: web.Request) -> tuple[dict[str, Any], int, bool]:
        self.requests += 1
        req = orjson.loads(await request.read())
        n = clamp_tokens(req.get("max_completion_tokens") or req.get("max_tokens"))
        tool = bool(req.get("tools")) and req.get("tool_choice") not in ("none", {"type": "none"})
        return req, n, tool

    async def chat(self, request: web.Request) -> web.StreamResponse:
        req, n, tool = await self._parse(request)
        if not req.get("stream"):
            await self._sleep_tokens(n)
            return web.Response(body=openai_completion(n, tool), headers=JSON_HEADERS)
        opts = req.get("stream_options") or {}
        u = 1 if opts.get("continuous_usage_stats") else 0
        f = self.openai
        if tool:
            frames: list[bytes] = [f.tool_name[u], *f.tool_args(n, bool(u))]
        else:
            frames = f.text[u][: n - 1]
            frames.append(f.text_last[u][n - 1])
        tail = [f.usage(n), DONE] if opts.get("include_usage") else [DONE]
        return await self._stream(request, f.role[u], frames, tail)

    async def messages(self, request: web.Request) -> web.StreamResponse:
        req, n, tool = await self._parse(request)
        if not req.get("stream"):
            await self._sleep_tokens(n)
            return web.Response(body=anthropic_message(n, tool), headers=JSON_HEADERS)
        a = self.anthropic
        frames = list(a.tool_args(n)) if tool else a.text[:n]
        # The block opens with its first token: a server must not emit an empty block ahead of content.
        start = a.tool_start if tool else a.text_start
        if tool:
            frames.insert(0, start)  # the tool name is the first token, its arguments follow
        else:
            frames[0] = start + frames[0]
        return await self._stream(
            request, a.message_start, frames, [a.end(n, "tool_use" if tool else "max_tokens")]
        )

    async def _sleep_tokens(self, n: int) -> None:
        if self.pace:
            await asyncio.sleep(self.pace * n)

    async def _stream(
        self, request: web.Request, head: bytes, frames: Sequence[bytes], tail: Sequence[bytes]
    ) -> web.StreamResponse:
        """Write ``head`` at once, then one frame per token (paced on an absolute schedule), then ``tail``.

        At full speed the handler still yields to the loop after every token, as an engine step
        does, so concurrent streams interleave token by token instead of finishing one by one.
        """
        resp = web.StreamResponse(headers=SSE_HEADERS)
        await resp.prepare(request)
        try:
            await resp.write(head)
            loop = asyncio.get_running_loop()
            pace = self.pace
            t0 = loop.time()
            for i, frame in enumerate(frames):
                if pace:
                    delay = t0 + (i + 1) * pace - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                else:
                    await asyncio.sleep(0)
                await resp.write(frame)
            for frame in tail:
                await resp.write(frame)
            await resp.write_eof()
        except ConnectionResetError:
            pass  # the client went away: nothing left to do for this stream
        return resp


def install_uvloop() -> bool:
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


async def serve(host: str, port: int, pace_ms: float) -> None:
    runner = web.AppRunner(FakeBackend(pace_ms).app(), access_log=None, handle_signals=True)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    bound = runner.addresses[0][1]
    sys.stdout.write(f"PORT {bound}\n")
    sys.stdout.flush()
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.backend", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "0")))
    parser.add_argument("--cpu", type=int, default=None, help="pin to this CPU")
    parser.add_argument("--pace-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    pin_self(args.cpu)
    install_uvloop()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, args.pace_ms))


if __name__ == "__main__":
    main()
