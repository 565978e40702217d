"""``GET /stats`` (JSON usage totals, API key required) and ``GET /metrics`` (Prometheus text, open).

``/metrics`` is reachable without a key, like ``/health``: Prometheus scrapers rarely carry per-target
secrets, and every label on it comes from configuration (routes, backend names, served models,
statuses, replica URLs without credentials), never from a client's key or input. ``/stats`` does show
per-key usage (by label, never the key) and recent requests, so it needs a key.
"""

from __future__ import annotations

from aiohttp import web

from ..errors import RouterError
from ..keys import BACKENDS, INFO, TELEMETRY
from ..metrics import CONTENT_TYPE, METRICS
from ..middleware import json_response


async def stats(request: web.Request) -> web.Response:
    """Totals since start (or since the usage log began); ``?recent=N`` limits the recent list."""
    request[INFO].route = "stats"
    raw = request.query.get("recent")
    recent: int | None = None
    if raw is not None:
        if not raw.isdigit():
            raise RouterError.invalid("recent: must be a whole number >= 0")
        recent = int(raw)
    return json_response(request.app[TELEMETRY].to_json(recent))


async def metrics(request: web.Request) -> web.Response:
    request[INFO].route = "metrics"
    registry = request.app[METRICS]
    registry.update_backends(request.app[BACKENDS])
    return web.Response(body=registry.render(), headers={"Content-Type": CONTENT_TYPE})
