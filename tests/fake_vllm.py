"""A scriptable fake of a vLLM 0.32 OpenAI server, for the router's end-to-end tests.

The router depends on byte-level details of vLLM's output (which chunk carries ``finish_reason``,
where usage and ``system_fingerprint`` go, error envelopes, the mid-stream error frame), so the shapes
are those recorded from a real vLLM 0.32 (see fake_vllm_wire.py; tests/test_fake_vllm.py replays the
recordings against this server). The *content* is scripted per request with :class:`Turn`, which can
also stall, fail mid-stream or drop the connection. The server records what it received and whether
each request completed or the client went away, with ``time.monotonic()`` stamps, so a test can
assert that the router closed its upstream request promptly after its own client left.

    fake = FakeVLLM()
    fake.script(Turn(text="Hello there", delay_per_token=0.01))
    server = await aiohttp_server(fake.app)      # pytest-aiohttp
    ... drive the router at server.make_url("/") ...
    event = await fake.wait_event(0)             # outcome, chunks, started/ended
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections import deque
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import orjson
from aiohttp import web
from fake_vllm_wire import (
    EMPTY_CONVERSATION,
    Config,
    Reply,
    Turn,
    VLLMError,
    check_fields,
    check_model,
    count_prompt_tokens,
    error_envelope,
    error_type,
    max_tokens_overflow_message,
    parse_json_body,
    plan,
    prompt_overflow_message,
    render_prompt,
    token_id,
    tokenize,
    validate_chat,
)
from multidict import CIMultiDict

__all__ = [
    "Config",
    "FakeVLLM",
    "RequestEvent",
    "Turn",
    "count_prompt_tokens",
    "max_tokens_overflow_message",
    "prompt_overflow_message",
    "render_prompt",
    "tokenize",
]


@dataclass
class RequestEvent:
    """What became of one chat request. ``outcome``: completed, rejected (an HTTP error was answered),
    disconnected (the client went away first) or dropped (the script cut the connection)."""

    index: int
    stream: bool
    started: float
    ended: float | None = None
    outcome: str | None = None
    chunks: int = 0  # SSE frames written
    done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def finish(self, outcome: str) -> None:
        if self.outcome is None:
            self.outcome, self.ended = outcome, time.monotonic()
            self.done.set()


class _ClientGone(Exception):
    pass


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    headers = {"Content-Type": "application/json", **(headers or {})}
    return web.Response(body=orjson.dumps(obj), status=status, headers=headers)


class FakeVLLM:
    """Routes: POST /v1/chat/completions, POST /tokenize, GET /health, GET /v1/models, GET /version.

    ``requests``/``request_headers``/``events`` get one entry per chat request whose body parsed as a
    JSON object; ``tokenize_requests`` holds the /tokenize bodies. A scripted Turn is consumed by the
    next chat request that passes validation; with an empty queue ``default`` answers.
    """

    def __init__(
        self, model: str = "tiny", max_model_len: int = 8192, api_key: str | None = None, **flags: Any
    ):
        self.config = Config(model=model, max_model_len=max_model_len, **flags)
        self.api_key = api_key
        self.healthy = True  # False: /health and chat answer 503, as a dead engine
        self.default = Turn(text="Hello! This is a deterministic reply from the fake vLLM server.")
        self.requests: list[dict] = []
        self.request_headers: list[CIMultiDict[str]] = []
        self.events: list[RequestEvent] = []
        self.tokenize_requests: list[dict] = []
        self.created = int(time.time())
        self._turns: deque[Turn] = deque()
        self._shutting_down = False
        self.app = web.Application(middlewares=[self._middleware])
        self.app.router.add_post("/v1/chat/completions", self._chat)
        self.app.router.add_post("/tokenize", self._tokenize)
        self.app.router.add_get("/health", self._health)
        self.app.router.add_get("/v1/models", self._models)
        self.app.router.add_get("/version", self._version)
        self.app.on_response_prepare.append(self._common_headers)
        self.app.on_shutdown.append(self._on_shutdown)

    def script(self, *turns: Turn) -> None:
        """Queue the replies of the next chat requests, in order."""
        self._turns.extend(turns)

    @property
    def pending(self) -> int:
        """Scripted turns not consumed yet."""
        return len(self._turns)

    async def wait_event(self, index: int = 0, timeout: float = 5.0) -> RequestEvent:
        """The event of chat request ``index`` (list indexing) once that request has ended."""
        deadline = time.monotonic() + timeout
        while not -len(self.events) <= index < len(self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"chat request {index} never arrived")
            await asyncio.sleep(0.005)
        event = self.events[index]
        await asyncio.wait_for(event.done.wait(), max(deadline - time.monotonic(), 0.001))
        return event

    # --- plumbing ---------------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        # vLLM's --api-key guards the /v1 routes only (not /tokenize, /health, /version).
        bearer = request.headers.get("Authorization")
        if self.api_key and request.path.startswith("/v1") and bearer != f"Bearer {self.api_key}":
            return _json({"error": "Unauthorized"}, 401)
        try:
            return await handler(request)
        except VLLMError as exc:
            return _json(exc.body, exc.status)
        except web.HTTPMethodNotAllowed as exc:  # FastAPI's shapes, not vLLM's envelope
            return _json(
                {"detail": "Method Not Allowed"}, 405, {"Allow": ", ".join(sorted(exc.allowed_methods))}
            )
        except web.HTTPNotFound:
            return _json({"detail": "Not Found"}, 404)

    async def _common_headers(self, _request: web.Request, response: web.StreamResponse) -> None:
        response.headers["Server"] = "uvicorn"
        response.headers["Vary"] = "Origin"

    async def _on_shutdown(self, _app: web.Application) -> None:
        self._shutting_down = True  # releases hanging handlers, so teardown never waits on them

    def _gone(self, request: web.Request) -> bool:
        transport = request.transport
        return transport is None or transport.is_closing() or self._shutting_down

    async def _wait(self, request: web.Request, seconds: float) -> None:
        """Sleep, but notice a vanished client within 5 ms (aiohttp tells only on the next write)."""
        deadline = time.monotonic() + seconds
        while not self._gone(request):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            await asyncio.sleep(min(remaining, 0.005))
        raise _ClientGone

    async def _body(self, request: web.Request) -> dict:
        return parse_json_body(request.headers.get("Content-Type", ""), await request.read())

    # --- simple endpoints -------------------------------------------------------------------------

    async def _health(self, _request: web.Request) -> web.Response:
        return web.Response(status=200 if self.healthy else 503)  # empty body, no content type

    async def _version(self, _request: web.Request) -> web.Response:
        return _json({"version": "0.32.0"})

    async def _models(self, _request: web.Request) -> web.Response:
        model, created = self.config.model, self.created
        permission = {"id": "modelperm-" + hashlib.sha256(model.encode()).hexdigest()[:16]}
        permission |= {"object": "model_permission", "created": created, "allow_create_engine": False}
        permission |= {"allow_sampling": True, "allow_logprobs": True, "allow_search_indices": False}
        permission |= {"allow_view": True, "allow_fine_tuning": False, "organization": "*", "group": None}
        card = {
            "id": model,
            "object": "model",
            "created": created,
            "owned_by": "vllm",
            "root": f"/models/{model}",
        }
        card |= {"parent": None, "max_model_len": self.config.max_model_len}
        return _json(
            {"object": "list", "data": [card | {"permission": [permission | {"is_blocking": False}]}]}
        )

    async def _tokenize(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        self.tokenize_requests.append(body)
        check_model(body, self.config)
        if "messages" in body:
            if not body["messages"]:
                raise VLLMError(EMPTY_CONVERSATION)
            gen = body.get("add_generation_prompt", True)
            tokens = tokenize(render_prompt(body["messages"], body.get("tools"), gen))
        else:
            check_fields(body, "prompt")
            tokens = tokenize(str(body["prompt"]))
        ids = [token_id(t) for t in tokens]
        strs = tokens if body.get("return_token_strs") else None
        return _json(
            {"count": len(ids), "max_model_len": self.config.max_model_len, "tokens": ids, "token_strs": strs}
        )

    # --- chat completions -------------------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        event = RequestEvent(len(self.events), bool(body.get("stream")), time.monotonic())
        self.requests.append(body)
        self.request_headers.append(CIMultiDict(request.headers))
        self.events.append(event)
        try:
            response = await self._answer(request, body, event)
        except VLLMError:
            event.finish("rejected")
            raise
        except _ClientGone:
            event.finish("disconnected")  # unless the script already recorded "dropped"
            raise web.HTTPServiceUnavailable() from None  # nobody will read it
        except (asyncio.CancelledError, ConnectionResetError):  # with handler_cancellation, or on write
            event.finish("disconnected")
            raise
        event.finish("rejected" if response.status >= 400 else "completed")
        return response

    async def _answer(self, request: web.Request, body: dict, event: RequestEvent) -> web.StreamResponse:
        if not self.healthy:
            raise VLLMError("The engine is dead or not ready.", 503)
        turn = self._turns[0] if self._turns else self.default
        prompt, max_tokens = validate_chat(body, turn, self.config)
        if self._turns:
            self._turns.popleft()
        await self._wait(request, turn.delay_headers)
        if turn.status >= 400 and turn.error_after is None:
            return self._scripted_error(turn, turn.status)
        steps, finish, stop_reason = plan(turn, body.get("stop"), max_tokens)
        # Ids derive from the request number: reruns of a test see the same bytes.
        digest = hashlib.sha256(str(event.index).encode()).hexdigest()
        reply = Reply(
            self.config,
            turn,
            body,
            prompt,
            steps,
            finish,
            stop_reason,
            f"chatcmpl-{digest[:16]}",
            int(time.time()),
            f"chatcmpl-tool-{digest[16:28]}",
        )
        if event.stream:
            return await self._stream(request, event, reply)
        return await self._complete(request, event, reply)

    def _scripted_error(self, turn: Turn, status: int) -> web.Response:
        if isinstance(turn.error, bytes):
            return web.Response(body=turn.error, status=status, headers=turn.headers)
        if isinstance(turn.error, dict):
            return _json(turn.error, status, turn.headers)
        envelope = error_envelope(
            turn.error or HTTPStatus(status).phrase, turn.error_type or error_type(status), status
        )
        return _json(envelope, status, turn.headers)

    async def _stream(self, request: web.Request, event: RequestEvent, reply: Reply) -> web.StreamResponse:
        turn = reply.turn
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream; charset=utf-8", **turn.headers}
        )
        await response.prepare(request)

        async def send(payload: dict | bytes) -> None:
            if self._gone(request):
                raise _ClientGone
            await response.write(
                payload if isinstance(payload, bytes) else b"data: " + orjson.dumps(payload) + b"\n\n"
            )
            event.chunks += 1

        await self._wait(request, math.inf if turn.hang else turn.delay_first)
        for i in range(len(reply.steps) + 1):
            if i == turn.drop_after:
                event.finish("dropped")
                request.transport.close()
                return response
            if i == turn.error_after:
                await send(reply.error_frame())
                await send(b"data: [DONE]\n\n")
                return response
            if i == len(reply.steps):
                break
            if i == 0:
                await send(reply.role_chunk())  # sent with the first token, after prefill
            else:
                await self._wait(request, turn.delay_per_token)
            if (chunk := reply.step_chunk(i)) is not None:
                await send(chunk)
        if reply.usage_modes[0]:
            await send(reply.usage_chunk())
        await send(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _complete(self, request: web.Request, event: RequestEvent, reply: Reply) -> web.StreamResponse:
        turn = reply.turn
        await self._wait(
            request, math.inf if turn.hang else turn.delay_first + turn.delay_per_token * len(reply.steps)
        )
        if turn.drop_after is not None:
            event.finish("dropped")
            request.transport.close()
            raise _ClientGone
        if turn.error_after is not None:
            return self._scripted_error(turn, turn.status if turn.status >= 400 else 500)
        return _json(reply.completion(), 200, turn.headers)
