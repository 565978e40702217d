"""``POST /v1/messages``: parse, choose a backend, translate, call it, stream the answer back."""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiohttp
import orjson
from aiohttp import web

from ..backends import Backend
from ..config import Settings
from ..errors import RouterError, from_backend
from ..keys import INFO, SETTINGS, TRANSLATE_OPTIONS, UPSTREAM
from ..request_info import RequestInfo
from ..transcoder import StreamTranscoder
from ..translate_request import TranslateOptions, has_image, to_openai
from ..translate_response import to_anthropic
from ..upstream import read_body
from .common import SSE_HEADERS, affinity_key, pick_backend, read_json, router_headers
from .keepalive import PING, KeepAliveWriter

CHAT_PATH = "/v1/chat/completions"


def options_from(s: Settings) -> TranslateOptions:
    return TranslateOptions(
        system_messages=s.system_messages,
        thinking_kwarg=s.thinking_kwarg,
        allow_image_urls=s.allow_image_urls,
    )


def translate_options(request: web.Request) -> TranslateOptions:
    """The translation settings, built once in create_app, not per request."""
    return request.app[TRANSLATE_OPTIONS]


async def messages(request: web.Request) -> web.StreamResponse:
    info: RequestInfo = request[INFO]
    info.route = "messages"
    body = await read_json(request)
    backend = pick_backend(request, body, has_image=has_image(body))
    payload = to_openai(body, backend.model, translate_options(request))
    clamp_max_tokens(payload, backend)
    client_model = body["model"]
    # Affinity only matters when there is a choice of replica; for one it would be wasted work.
    affinity = affinity_key(request, body) if len(backend.replicas) > 1 else None
    if payload.get("stream"):
        return await _stream(request, backend, orjson.dumps(payload), client_model, affinity)
    async with request.app[UPSTREAM].post(backend, CHAT_PATH, orjson.dumps(payload), affinity=affinity) as (
        resp,
        replica,
    ):
        info.replica = replica.url
        raw = await read_body(resp, backend)
        info.first_token_at = time.monotonic()  # a non-streamed answer arrives all at once
        if resp.status != 200:
            raise from_backend(resp.status, raw)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise RouterError(502, "api_error", f"backend {backend.name} returned invalid JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list) or not data["choices"]:
        if isinstance(data, dict) and "error" in data:
            raise from_backend(500, raw)
        raise RouterError(502, "api_error", f"backend {backend.name} returned no choices")
    message = to_anthropic(data, client_model)
    info.set_usage(message["usage"])
    info.stop_reason = message.get("stop_reason")
    return web.Response(
        body=orjson.dumps(message), content_type="application/json", headers=router_headers(info)
    )


def clamp_max_tokens(payload: dict, backend: Backend) -> None:
    """Cap ``max_tokens`` at the backend's context length.

    Claude Code asks for 32000 by default; vLLM rejects a value above ``max_model_len`` outright (and
    itself trims one that merely exceeds the room left), while nothing above the context could ever be
    generated anyway, so the cap loses nothing.
    """
    limit = backend.max_model_len
    if limit and payload.get("max_tokens", 0) > limit:
        payload["max_tokens"] = limit


async def _stream(
    request: web.Request, backend: Backend, payload: bytes, client_model: str, affinity: str | None
) -> web.StreamResponse:
    info: RequestInfo = request[INFO]
    settings = request.app[SETTINGS]
    tc = StreamTranscoder(client_model)
    response = web.StreamResponse(headers={**SSE_HEADERS, **router_headers(info)})
    out = KeepAliveWriter(request, response, settings.ping_interval, PING)
    cm = request.app[UPSTREAM].post(backend, CHAT_PATH, payload, stream=True, affinity=affinity)
    entering = asyncio.ensure_future(cm.__aenter__())
    entered = False
    try:
        try:
            # Hold our own headers back until the backend answered, so a failure keeps its real HTTP
            # status; but not past one ping interval: a long prefill must not look like a dead peer.
            done, _ = await asyncio.wait({entering}, timeout=settings.ping_interval)
            if not done:
                await out.open(tc.begin())
                await asyncio.wait({entering})
            resp, replica = entering.result()
            entered = True
            info.replica = replica.url
            if resp.status != 200:
                raise from_backend(resp.status, await read_body(resp, backend))
        except RouterError as err:
            if not response.prepared:
                raise
            info.error_type = err.type
            await out.write(tc.fail(err.type, err.message))
            return response
        if not response.prepared:
            await out.open(b"")
        await _pump(resp, tc, out, info)
        await response.write_eof()
        if tc.stop_reason is not None:
            await drain_to_eof(resp.content)
        return response
    except ConnectionResetError:
        # The client went away: leaving this block closes the backend response, so vLLM aborts.
        info.client_aborted = True
        return response
    finally:
        if not entering.done():
            entering.cancel()
            with contextlib.suppress(BaseException):
                await entering
        await out.close()
        if entered:
            await cm.__aexit__(None, None, None)
        info.set_usage(tc.usage)
        info.stop_reason = tc.stop_reason
        info.first_token_at = tc.first_token_at
        info.error_type = info.error_type or tc.error_type


async def drain_to_eof(reader: aiohttp.StreamReader, limit: int = 65536, seconds: float = 1.0) -> None:
    """Read what follows ``[DONE]`` (the chunked terminator) so the connection returns to the pool.

    Without this every stream closed its backend connection and the next one paid a new TCP
    handshake. Bounded in bytes and time, so a backend that keeps talking after ``[DONE]`` only
    loses its connection.
    """
    try:
        async with asyncio.timeout(seconds):
            read = 0
            while read < limit and (chunk := await reader.readany()):
                read += len(chunk)
    except (TimeoutError, aiohttp.ClientError):
        pass


async def _pump(
    resp: aiohttp.ClientResponse, tc: StreamTranscoder, out: KeepAliveWriter, info: RequestInfo
) -> None:
    """Backend bytes → transcoder → client, one write per network read."""
    reader = resp.content
    while not tc.done:
        try:
            chunk = await reader.readany()
        except TimeoutError:
            info.error_type = "timeout_error"
            await out.write(tc.fail("overloaded_error", "backend went silent (IDLE_TIMEOUT) mid-stream"))
            return
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
            info.error_type = "overloaded_error"
            await out.write(
                tc.fail("overloaded_error", f"backend connection lost mid-stream ({type(exc).__name__})")
            )
            return
        # Writes stay outside the try: a client that went away must not be mistaken for a backend failure.
        await out.write(tc.close() if not chunk else tc.feed(chunk))
        if not chunk:
            return
