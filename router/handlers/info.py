"""Endpoints that describe the router itself: ``/``, ``/health``, ``/v1/models``."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from aiohttp import web

from .. import __version__
from ..backends import Backend
from ..config import DEFAULT_BACKEND, VISION_BACKEND
from ..errors import RouterError
from ..keys import BACKENDS, INFO, SETTINGS
from ..metrics import public_url
from ..middleware import json_response
from ..routing import choose_backend

STARTED = time.time()
_GLOB_CHARS = frozenset("*?[")


async def root(request: web.Request) -> web.Response:
    """``HEAD /`` is Claude Code's connectivity check; ``GET /`` says what this is."""
    request[INFO].route = "root"
    return json_response({"name": "anthropic-router", "version": __version__})


def _backend_status(b: Backend) -> dict:
    return {
        "status": "up" if b.healthy else ("starting" if not b.ready else "down"),
        "model": b.model,
        "max_model_len": b.max_model_len,
        "replicas": [
            {
                "url": public_url(r.url),  # /health is open: never show credentials in the URL
                "healthy": r.healthy,
                "latency_ms": None if r.latency_ms is None else round(r.latency_ms, 1),
                "outstanding": r.outstanding,
                "last_error": r.last_error,
            }
            for r in b.replicas
        ],
    }


async def health(request: web.Request) -> web.Response:
    """200 while the default backend is up; 503 while starting or down, so orchestrators can tell."""
    request[INFO].route = "health"
    pool = request.app[BACKENDS]
    default = pool.default
    if not default.ready:
        status = "starting"
    else:
        status = "ok" if default.healthy else "degraded"
    body = {"status": status, "version": __version__, "backends": {b.name: _backend_status(b) for b in pool}}
    return json_response(body, 200 if status == "ok" else 503)


def _model_ids(request: web.Request) -> list[tuple[str, Backend]]:
    """The ids clients may ask for, each with the backend that serves it, default backend first.

    Every backend's model, then route aliases: backend names (``model: "small"``) and the literal
    ``MODEL_MAP`` entries (``claude-opus-4=big``; globs name no single id). Claude Code's gateway model
    discovery only shows ids starting with ``claude``, so literal aliases are how its picker sees them.
    """
    pool = request.app[BACKENDS]
    seen: dict[str, Backend] = {}
    for b in pool:
        seen.setdefault(b.model, b)
    for b in pool:
        if b.name not in (DEFAULT_BACKEND, VISION_BACKEND):
            seen.setdefault(b.name, b)
    for rule in request.app[SETTINGS].model_map:
        if not _GLOB_CHARS.intersection(rule.pattern):
            seen.setdefault(rule.pattern, pool[rule.backend])
    return list(seen.items())


def _model_entry(model_id: str, backend: Backend) -> dict:
    """One entry both SDKs parse: Anthropic's ModelInfo fields and OpenAI's Model fields side by side."""
    entry: dict = {
        "type": "model",
        "id": model_id,
        "display_name": model_id if model_id == backend.model else f"{model_id} ({backend.model})",
        "created_at": datetime.fromtimestamp(int(STARTED), UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "lifecycle": "active",  # a required field of the anthropic SDK's ModelInfo (2.x)
        "object": "model",
        "created": int(STARTED),
        "owned_by": f"anthropic-router:{backend.name}",
    }
    if backend.max_model_len:
        entry["max_input_tokens"] = backend.max_model_len
        entry["max_model_len"] = backend.max_model_len  # vLLM's field, read by OpenAI-side tools
    return entry


def _int_param(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise RouterError.invalid(f"{name}: must be a whole number") from None
    if not 1 <= value <= 1000:
        raise RouterError.invalid(f"{name}: must be between 1 and 1000")
    return value


async def list_models(request: web.Request) -> web.Response:
    """One page in both shapes (``object: "list"`` for OpenAI; ``has_more``/``first_id``/``last_id`` for
    Anthropic, whose SDK pages with ``after_id``/``before_id``/``limit``, honoured here)."""
    request[INFO].route = "models"
    entries = _model_ids(request)
    ids = [mid for mid, _ in entries]
    limit = _int_param(request, "limit", 1000)
    after, before = request.query.get("after_id"), request.query.get("before_id")
    start, stop = 0, len(entries)
    if after is not None:
        start = ids.index(after) + 1 if after in ids else len(entries)
    if before is not None:
        stop = ids.index(before) if before in ids else 0
        start = max(start, stop - limit)
    page = entries[start:stop][:limit]
    has_more = (start > 0) if before is not None else (start + len(page) < stop)
    data = [_model_entry(mid, b) for mid, b in page]
    return json_response(
        {
            "object": "list",
            "data": data,
            "has_more": has_more,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
    )


async def get_model(request: web.Request) -> web.Response:
    """A listed id, or any name a ``MODEL_MAP`` glob or the background route would send somewhere;
    404 for names only the catch-all default route would take."""
    request[INFO].route = "models"
    wanted = request.match_info["model_id"]
    for mid, b in _model_ids(request):
        if mid == wanted:
            return json_response(_model_entry(mid, b))
    pool = request.app[BACKENDS]
    name, rule = choose_backend(
        request.app[SETTINGS],
        {"model": wanted},
        has_image=False,
        body_size=0,
        served={b.name: b.model for b in pool},
    )
    if rule in ("model", "model_map", "background"):
        return json_response(_model_entry(wanted, pool[name]))
    raise RouterError(404, "not_found_error", f"model {wanted!r} not found")
