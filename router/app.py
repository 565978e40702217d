"""The one aiohttp ``Application``: routes, middleware, and the app-wide objects' lifetimes."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from . import telemetry
from .backends import BackendPool
from .config import Settings
from .handlers import chat_completions, count_tokens, info, messages, stats
from .health import health_ctx
from .keys import BACKENDS, SETTINGS, TRANSLATE_OPTIONS, UPSTREAM
from .middleware import router_middleware
from .upstream import Upstream


async def upstream_ctx(app: web.Application) -> AsyncIterator[None]:
    upstream = app[UPSTREAM]
    await upstream.start()
    yield
    await upstream.close()


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[router_middleware], client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[UPSTREAM] = Upstream(settings)
    app[BACKENDS] = BackendPool(settings.backends)
    app[TRANSLATE_OPTIONS] = messages.options_from(settings)
    app.cleanup_ctx.extend([upstream_ctx, health_ctx])
    telemetry.install(app, settings)  # app[METRICS], app[TELEMETRY] and the usage log's lifetime
    app[count_tokens.ESTIMATED] = set()
    app.router.add_get("/", info.root)  # add_get also answers HEAD (Claude Code's start-up check)
    app.router.add_get("/health", info.health)
    app.router.add_get("/v1/models", info.list_models)
    app.router.add_get("/v1/models/{model_id:.+}", info.get_model)  # ids may hold "/" (org/name)
    app.router.add_post("/v1/messages", messages.messages)
    app.router.add_post("/v1/messages/count_tokens", count_tokens.count_tokens)
    app.router.add_post("/v1/chat/completions", chat_completions.chat_completions)
    app.router.add_get("/stats", stats.stats)
    app.router.add_get("/metrics", stats.metrics)
    return app
