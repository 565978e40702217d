"""``POST /v1/chat/completions``: the OpenAI side door (Open WebUI, the ``openai`` SDK, curl).

The body already speaks the backend's language, so it is passed through: only ``model`` is rewritten to
the chosen backend's model, and streams always ask for usage so telemetry sees token counts. The
response bytes are forwarded as the backend wrote them; the router cuts the stream at frame boundaries
(so it never forwards half a frame and can drop the one usage frame the client did not ask for) and
parses only the few frames telemetry needs: those before the first token, and those whose bytes show a
``usage`` object, a ``finish_reason`` string or an ``error`` key. Everything here answers in OpenAI's
error shape, never Anthropic's.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from ..backends import Backend
from ..errors import RouterError, backend_message, from_stream_error
from ..keys import INFO, SETTINGS, UPSTREAM
from ..middleware import error_response, json_response, openai_error_body
from ..request_info import RequestInfo
from ..routing import has_openai_image
from ..upstream import read_body
from .common import SSE_HEADERS, affinity_key, pick_backend, read_json, router_headers
from .keepalive import COMMENT, KeepAliveWriter

CHAT_PATH = "/v1/chat/completions"
# An SSE comment: every SSE parser skips it, but proxies and clients see bytes during a long prefill.
DONE = b"data: [DONE]\n\n"

_BOUNDARY = re.compile(rb"\r\n\r\n|\n\n|\r\r")
# Escaped text can never produce these bytes (a quote inside a JSON string is written \"), so only keys match.
_INTEREST = re.compile(rb'"(?:usage|finish_reason)"\s*:\s*[{"]|"error"\s*:')
_TOKEN_FIELDS = ("content", "reasoning", "reasoning_content", "tool_calls")
# Content parts whose URL vLLM fetches itself.
_MEDIA_URL_PARTS = frozenset({"image_url", "video_url", "audio_url"})

# Error types by status for backend errors that arrive without an OpenAI envelope; the same vocabulary
# the middleware uses for the router's own errors on this route.
_TYPE_FOR_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


async def chat_completions(request: web.Request) -> web.StreamResponse:
    info: RequestInfo = request[INFO]
    info.route = "chat_completions"
    body = await read_json(request)
    client_usage = _validate(body)
    if not request.app[SETTINGS].allow_image_urls:
        _refuse_media_urls(body["messages"])
    backend = pick_backend(request, body, has_image=has_openai_image(body))
    try:
        body["model"] = backend.model
        if info.stream:
            options = dict(body.get("stream_options") or {})
            options["include_usage"] = True
            if not client_usage:
                # Usage on every chunk is only what the client gets if it asked for usage at all.
                options.pop("continuous_usage_stats", None)
            body["stream_options"] = options
        payload = orjson.dumps(body)
        affinity = affinity_key(request, body)
        if info.stream:
            return await _stream(request, backend, payload, affinity, client_usage)
        return await _complete(request, backend, payload, affinity)
    except RouterError as err:
        # After routing: the answer still says where the request went.
        info.error_type = err.type
        response = error_response(err, info)
        response.headers.update(router_headers(info))
        return response


def _validate(body: dict) -> bool:
    """The little the router itself relies on; the backend validates the rest in its own words.

    Returns whether the client asked for usage in its stream.
    """
    if not isinstance(body.get("messages"), list):
        raise RouterError.invalid("messages: required, and must be an array of messages")
    if body.get("stream") is not None and not isinstance(body["stream"], bool):
        # vLLM would coerce "true" and stream, while the router read it as a plain JSON answer.
        raise RouterError.invalid("stream: must be true or false")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise RouterError.invalid("stream_options: must be an object")
    return bool(options and options.get("include_usage") is True)


def _refuse_media_urls(messages: list) -> None:
    """``ALLOW_IMAGE_URLS=false`` on this route too: vLLM downloads URL media itself, so a URL would let a
    client make the GPU host fetch any address it can reach (SSRF). ``data:`` URIs carry their bytes."""
    for i, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        for j, part in enumerate(content if isinstance(content, list) else ()):
            kind = part.get("type") if isinstance(part, dict) else None
            if not isinstance(kind, str) or kind not in _MEDIA_URL_PARTS:
                continue
            media = part.get(kind)
            url = media.get("url") if isinstance(media, dict) else media
            if not (isinstance(url, str) and url.lstrip()[:5].lower() == "data:"):
                raise RouterError.invalid(
                    f"messages.{i}.content.{j}.{kind}: media URLs are disabled on this router "
                    "(ALLOW_IMAGE_URLS=false); send the media inline as a data: URI"
                )


async def _complete(
    request: web.Request, backend: Backend, payload: bytes, affinity: str | None
) -> web.Response:
    info: RequestInfo = request[INFO]
    async with request.app[UPSTREAM].post(backend, CHAT_PATH, payload, affinity=affinity) as (resp, replica):
        info.replica = replica.url
        raw = await read_body(resp, backend)
        if resp.status != 200:
            return backend_error_response(resp.status, raw, info, resp.headers.get("Retry-After"))
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise RouterError(502, "api_error", f"backend {backend.name} returned invalid JSON") from None
    if isinstance(data, dict):
        choices = data.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            info.stop_reason = choices[0].get("finish_reason")
        record_usage(info, data.get("usage"))
    return web.Response(body=raw, content_type="application/json", headers=router_headers(info))


async def _stream(
    request: web.Request, backend: Backend, payload: bytes, affinity: str | None, client_usage: bool
) -> web.StreamResponse:
    info: RequestInfo = request[INFO]
    upstream = request.app[UPSTREAM]
    # The router's headers wait for the backend's: an error before the stream keeps its real status.
    async with upstream.post(backend, CHAT_PATH, payload, stream=True, affinity=affinity) as (resp, replica):
        info.replica = replica.url
        if resp.status != 200:
            raw = await read_body(resp, backend)
            return backend_error_response(resp.status, raw, info, resp.headers.get("Retry-After"))
        response = web.StreamResponse(headers={**SSE_HEADERS, **router_headers(info)})
        scanner = StreamScanner(keep_usage=client_usage)
        sink = KeepAliveWriter(request, response, request.app[SETTINGS].ping_interval, COMMENT)
        try:
            await sink.open()
            await _pump(resp, scanner, sink, info, backend)
            await response.write_eof()
        except ConnectionResetError:
            # The client went away: leaving the ``async with`` closes the backend response, so vLLM aborts.
            info.client_aborted = True
        finally:
            await sink.close()
            info.first_token_at = scanner.first_token_at
            info.stop_reason = scanner.finish_reason
            record_usage(info, scanner.usage)
            if scanner.error is not None and info.error_type is None:
                info.error_type = from_stream_error(scanner.error)[0]
    return response


async def _pump(
    resp: aiohttp.ClientResponse,
    scanner: StreamScanner,
    sink: KeepAliveWriter,
    info: RequestInfo,
    backend: Backend,
) -> None:
    """Backend bytes → client, one write per network read, whole frames only."""
    reader = resp.content
    while True:
        try:
            chunk = await reader.readany()
        except TimeoutError:
            info.error_type = "timeout_error"
            message = f"backend {backend.name} went silent mid-stream (IDLE_TIMEOUT or REQUEST_TIMEOUT)"
            await sink.write(error_frame("timeout_error", message, 504))
            return
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
            info.error_type = "api_error"
            message = f"backend {backend.name} connection lost mid-stream ({type(exc).__name__})"
            await sink.write(error_frame("api_error", message, 502))
            return
        # Writes stay outside the try: a client that went away must not be mistaken for a backend failure.
        if chunk:
            await sink.write(scanner.feed(chunk))
            continue
        await sink.write(scanner.flush())
        if not scanner.done:
            info.error_type = "api_error"
            await sink.write(error_frame("api_error", f"backend {backend.name} ended the stream early", 502))
        return


def error_frame(type: str, message: str, status: int) -> bytes:
    """How vLLM itself ends a stream that failed after its 200: an error data frame, then ``[DONE]``."""
    return b"data: " + orjson.dumps(openai_error_body(type, message, status)) + b"\n\n" + DONE


class StreamScanner:
    """Cuts an OpenAI SSE byte stream into whole frames and reads telemetry from it without re-encoding.

    ``feed`` returns exactly the bytes it was given, up to the last complete frame, minus the final usage
    frame when the client did not ask for usage (the router asked on its behalf).
    """

    __slots__ = ("_buf", "_clock", "done", "error", "finish_reason", "first_token_at", "keep_usage", "usage")

    def __init__(self, keep_usage: bool, clock: Callable[[], float] = time.monotonic) -> None:
        self.keep_usage = keep_usage
        self._clock = clock
        self._buf = b""
        self.usage: dict | None = None
        self.finish_reason: str | None = None
        self.first_token_at: float | None = None
        self.error: dict | None = None
        self.done = False  # saw data: [DONE]

    def feed(self, data: bytes) -> bytes:
        buf = self._buf + data if self._buf else data
        start = 0
        kept: list[bytes] = []
        for m in _BOUNDARY.finditer(buf):
            frame = buf[start : m.end()]
            if self._inspect(frame):
                kept.append(frame)
            start = m.end()
        self._buf = buf[start:]
        return b"".join(kept)

    def flush(self) -> bytes:
        """At backend EOF: a last frame without its blank line still counts when it is whole."""
        rest, self._buf = self._buf, b""
        if not rest.strip():
            return b""
        payload = _payload(rest)
        if payload != b"[DONE]":
            try:
                orjson.loads(payload)
            except orjson.JSONDecodeError:
                return b""  # cut off mid-frame: forwarding it would hand the client broken JSON
        frame = rest + b"\n\n"
        return frame if self._inspect(frame) else b""

    def _inspect(self, frame: bytes) -> bool:
        """Read what telemetry needs from one frame; False drops the frame."""
        if len(frame) < 24 and b"[DONE]" in frame:
            self.done = True
            return True
        if self.first_token_at is not None and not _INTEREST.search(frame):
            return True
        try:
            obj = orjson.loads(_payload(frame))
        except orjson.JSONDecodeError:
            return True
        if not isinstance(obj, dict):
            return True
        if "error" in obj or obj.get("object") == "error":
            self.error = obj
            return True
        choices = obj.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                if not isinstance(choice, dict):
                    continue
                delta = choice.get("delta")
                if (
                    self.first_token_at is None
                    and isinstance(delta, dict)
                    and any(map(delta.get, _TOKEN_FIELDS))
                ):
                    self.first_token_at = self._clock()
                if self.finish_reason is None and isinstance(choice.get("finish_reason"), str):
                    self.finish_reason = choice["finish_reason"]
        usage = obj.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
            if not self.keep_usage and not choices:
                return False
        return True


def _payload(frame: bytes) -> bytes:
    """The ``data`` of one SSE frame (usually a single ``data: {...}`` line)."""
    if frame.startswith(b"data: ") and b"\n" not in frame.rstrip(b"\r\n"):
        return frame[6:].strip()
    lines = frame.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    data = [ln[5:].removeprefix(b" ") for ln in lines if ln.startswith(b"data:")]
    return b"\n".join(data).strip()


def record_usage(info: RequestInfo, usage: Any) -> None:
    """OpenAI usage into the Anthropic-shaped counts telemetry keeps (input excludes cached tokens)."""
    if not isinstance(usage, dict):
        return
    try:
        prompt = int(usage.get("prompt_tokens") or 0)
        details = usage.get("prompt_tokens_details")
        cached = int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
        output = int(usage.get("completion_tokens") or 0)
    except (TypeError, ValueError):
        return
    info.set_usage(
        {"input_tokens": max(prompt - cached, 0), "output_tokens": output, "cache_read_input_tokens": cached}
    )


def backend_error_body(status: int, raw: bytes) -> tuple[int, dict]:
    """``(status, body)`` for a backend's error answer, in OpenAI's envelope.

    vLLM's own envelope is kept (its ``type`` and ``param`` help OpenAI clients), older flat envelopes
    and non-JSON pages are wrapped. A 401/403 means the backend refused the *router's* key: the client's
    key was fine, so that becomes a 502 rather than an authentication error the client cannot fix.
    """
    if status in (401, 403):
        message = f"backend rejected the router's credentials ({status})"
        return 502, openai_error_body("api_error", message, 502)
    if not 400 <= status <= 599:
        status = 502
    error: dict | None = None
    with contextlib.suppress(orjson.JSONDecodeError):
        data = orjson.loads(raw)
        if isinstance(data, dict):
            inner = data.get("error")
            if isinstance(inner, dict) and isinstance(inner.get("message"), str):
                error = inner
            elif data.get("object") == "error" and isinstance(data.get("message"), str):
                error = data
    default_type = _TYPE_FOR_STATUS.get(status, "api_error")
    if error is None:
        return status, openai_error_body(default_type, backend_message(raw), status)
    return status, {
        "error": {
            "message": error["message"],
            "type": error.get("type") or default_type,
            "param": error.get("param"),
            "code": error.get("code", status),
        }
    }


def backend_error_response(
    status: int, raw: bytes, info: RequestInfo, retry_after: str | None
) -> web.Response:
    status, body = backend_error_body(status, raw)
    # Telemetry counts errors in the router's vocabulary on every route; the body keeps the backend's.
    info.error_type = _TYPE_FOR_STATUS.get(status, "api_error")
    headers = router_headers(info)
    if retry_after:
        headers["Retry-After"] = retry_after
    return json_response(body, status, headers)
