"""The one middleware every request passes: request id, API key, error shape, log line, telemetry.

Kept as a single middleware so the order of these concerns is explicit and every exit path (success,
error, client gone) is logged and recorded exactly once.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import random
import time
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from .errors import RouterError, error_body
from .keys import INFO, SETTINGS, TELEMETRY
from .metrics import METRICS
from .request_info import RequestInfo

log = logging.getLogger("router.access")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Reachable without a key: liveness probes (Docker HEALTHCHECK, systemd, load balancers), the
# ``HEAD /`` Claude Code sends at start-up, and Prometheus scrapes (``/metrics`` labels come from the
# configuration only and never show a key; see handlers/stats.py).
OPEN_PATHS = frozenset({"/", "/health", "/metrics"})
# The route name is known before the handler runs, so a request refused at the key check (401) is
# still recorded under its route; handlers set the same names themselves.
ROUTES = {
    "/v1/messages": "messages",
    "/v1/messages/count_tokens": "count_tokens",
    "/v1/chat/completions": "chat_completions",
    "/v1/models": "models",
    "/stats": "stats",
}
OPENAI_PATHS = frozenset({"/v1/chat/completions"})


def json_response(data: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, content_type="application/json", headers=headers
    )


def openai_error_body(type: str, message: str, status: int) -> dict:
    return {"error": {"message": message, "type": type, "param": None, "code": status}}


def error_response(err: RouterError, info: RequestInfo) -> web.Response:
    if info.path in OPENAI_PATHS:
        body = openai_error_body(err.type, err.message, err.status)
    else:
        body = error_body(err.type, err.message, info.request_id)
    headers = {}
    if err.retry is not None:
        headers["x-should-retry"] = "true" if err.retry else "false"
    return json_response(body, err.status, headers)


def check_key(request: web.Request, keys: tuple[str, ...]) -> str | None:
    """Return the matching key's label, comparing against every key in constant time."""
    presented = request.headers.get("x-api-key")
    if presented is None:
        auth = request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        presented = token.strip() if scheme.lower() == "bearer" else None
    if not presented:
        return None
    # aiohttp decodes header bytes that are not UTF-8 with surrogateescape; this gets the bytes back
    # (a plain encode() would raise and turn a garbled key into a 500).
    given = presented.encode("utf-8", "surrogateescape")
    label = None
    for i, key in enumerate(keys):
        # No early exit: the time taken does not depend on which key (if any) matched.
        if hmac.compare_digest(given, key.encode()):
            label = f"key{i}"
    return label


_HTTP_ERRORS: dict[int, str] = {
    400: "invalid_request_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
}


def _from_http_exception(exc: web.HTTPException, request: web.Request) -> RouterError:
    if exc.status == 404:
        return RouterError(404, "not_found_error", f"no route for {request.method} {request.path}")
    if exc.status == 405:
        return RouterError(
            405, "invalid_request_error", f"method {request.method} is not allowed on {request.path}"
        )
    if exc.status == 413:
        return RouterError(413, "request_too_large", "request body is larger than MAX_BODY_MB allows")
    err_type = _HTTP_ERRORS.get(exc.status, "api_error" if exc.status >= 500 else "invalid_request_error")
    return RouterError(exc.status, err_type, exc.reason or "request failed")


@web.middleware
async def router_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    app = request.app
    settings = app[SETTINGS]
    # Unique, not secret: no getrandom() syscall per request as uuid4 would make.
    info = RequestInfo(
        request_id=f"req_{random.getrandbits(96):024x}", method=request.method, path=request.path
    )
    info.route = ROUTES.get(request.path, "")
    request[INFO] = info
    response: web.StreamResponse | None = None
    # Probes and scrapes are not work in flight (a scrape would otherwise always see itself).
    metrics = app.get(METRICS) if request.path not in OPEN_PATHS else None
    if metrics is not None:
        metrics.in_flight += 1
    try:
        try:
            if request.path not in OPEN_PATHS:
                info.key_label = check_key(request, settings.api_keys)
                if info.key_label is None:
                    raise RouterError(401, "authentication_error", "invalid or missing API key")
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = error_response(_from_http_exception(exc, request), info)
        except RouterError as exc:
            if info.error_type is None:
                info.error_type = exc.type
            response = error_response(exc, info)
        except (asyncio.CancelledError, ConnectionResetError):
            info.client_aborted = True
            info.status = 499
            raise
        except Exception:
            log.exception(
                "unhandled error in %s %s (request %s)", request.method, request.path, info.request_id
            )
            response = error_response(RouterError(500, "api_error", "internal router error"), info)
        if not response.prepared:
            response.headers["request-id"] = info.request_id
            if info.backend:
                response.headers.setdefault("x-router-backend", info.backend)
            if info.backend_model:
                response.headers.setdefault("x-router-model", info.backend_model)
        info.status = response.status if not info.client_aborted else 499
        return response
    finally:
        if metrics is not None:
            metrics.in_flight -= 1
        info.finished = time.monotonic()
        _log_request(info)
        telemetry = app.get(TELEMETRY)
        if telemetry is not None and info.route:
            telemetry.record(info)


def _log_request(info: RequestInfo) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    if info.route in ("health", "metrics", "root") and info.status < 400:
        log.debug(
            "%s %s %s %.1fms %s", info.method, info.path, info.status, info.duration * 1000, info.request_id
        )
        return
    log.info(
        "%s %s %s backend=%s model=%s in=%d out=%d %.1fms%s %s",
        info.method,
        info.path,
        info.status,
        info.backend or "-",
        info.backend_model or "-",
        info.input_tokens,
        info.output_tokens,
        info.duration * 1000,
        f" error={info.error_type}" if info.error_type else "",
        info.request_id,
        extra={"request": info},
    )
