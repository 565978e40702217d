"""Small pieces every handler needs: body parsing, backend choice, response headers."""

from __future__ import annotations

import logging

import orjson
from aiohttp import web

from ..backends import Backend
from ..errors import RouterError
from ..keys import BACKENDS, INFO, SETTINGS
from ..request_info import RequestInfo
from ..routing import choose_backend

log = logging.getLogger("router.routing")
BODY_SIZE = web.RequestKey("body_size", int)
# orjson reads 1024 levels of nesting but writes at most 254, and ``repr`` (conversation affinity) recurses
# too: a body nested deeper than the router can send on would otherwise fail after routing, as a 500.
# The headroom covers the levels translation adds (tools -> function -> parameters).
_NESTING_HEADROOM = 4
MAX_NESTING = 254 - _NESTING_HEADROOM
SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx and friends: do not buffer the stream
}


async def read_json(request: web.Request) -> dict:
    """The request body as a JSON object, or a 4xx that says what is wrong with it."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[SETTINGS].max_body_mb
        raise RouterError(
            413, "request_too_large", f"request body exceeds MAX_BODY_MB ({limit:g} MB)"
        ) from None
    if not raw:
        raise RouterError.invalid("request body is empty; expected a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RouterError.invalid(
            f"request body is not valid JSON: {exc.msg} at position {exc.pos}"
        ) from None
    except RecursionError:
        raise RouterError.invalid("request body is nested too deeply") from None
    if not isinstance(body, dict):
        raise RouterError.invalid(f"request body must be a JSON object, not {type(body).__name__}")
    if _too_deep(body):
        raise RouterError.invalid(f"request body is nested too deeply (limit: {MAX_NESTING} levels)")
    request[INFO].stream = body.get("stream") is True
    request[BODY_SIZE] = len(raw)
    return body


def _too_deep(body: dict) -> bool:
    wrapped: object = body
    for _ in range(_NESTING_HEADROOM):
        wrapped = [wrapped]
    try:
        orjson.dumps(wrapped)
    except orjson.JSONEncodeError:
        return True
    return False


def pick_backend(request: web.Request, body: dict, *, has_image: bool) -> Backend:
    """Choose the backend for this request, failing fast with 529 while it is not usable."""
    settings = request.app[SETTINGS]
    info: RequestInfo = request[INFO]
    pool = request.app[BACKENDS]
    name, rule = choose_backend(
        settings,
        body,
        has_image=has_image,
        body_size=request.get(BODY_SIZE, 0),
        served={b.name: b.model for b in pool},
    )
    backend = pool[name]
    info.backend, info.route_rule, info.backend_model = name, rule, backend.model
    model = body.get("model")
    info.client_model = model if isinstance(model, str) else None
    log.debug("%s: model %r -> backend %s (%s) by rule %s", info.request_id, model, name, backend.model, rule)
    if not backend.ready:
        raise RouterError(529, "overloaded_error", f"backend {name!r} is starting", retry=True)
    if not backend.healthy:
        raise RouterError(529, "overloaded_error", f"backend {name!r} is unavailable", retry=True)
    return backend


def affinity_key(request: web.Request, body: dict) -> str | None:
    """The conversation a request belongs to, so its replica keeps vLLM's prefix cache warm."""
    session = request.headers.get("X-Claude-Code-Session-Id")
    if session:
        return session
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        return metadata["user_id"]
    messages = body.get("messages")
    first = messages[0] if isinstance(messages, list) and messages else None
    return repr((body.get("system"), first))[:4096] if first is not None else None


def router_headers(info: RequestInfo) -> dict[str, str]:
    headers = {"request-id": info.request_id}
    if info.backend:
        headers["x-router-backend"] = info.backend
    if info.backend_model:
        headers["x-router-model"] = info.backend_model
    return headers
