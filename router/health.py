"""Backend probing: the start-up check and the periodic health monitor.

vLLM takes minutes to load a model and restarts on its own, so the router never assumes a backend is
up: it listens at once, answers 529 (clients retry) until every backend has answered, and keeps
probing so a backend that dies or comes back is noticed without a restart by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import AsyncIterator

import aiohttp
import orjson
from aiohttp import web

from .backends import Backend, Replica
from .keys import BACKENDS, SETTINGS, UPSTREAM

log = logging.getLogger("router.health")


async def probe(session: aiohttp.ClientSession, backend: Backend, replica: Replica, timeout: float) -> bool:
    """One probe of one replica: ``GET /health`` then ``GET /v1/models`` (model name, context length)."""
    headers = {"Authorization": f"Bearer {backend.config.api_key}"} if backend.config.api_key else {}
    t0 = time.monotonic()
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    try:
        async with session.get(replica.url + "/health", headers=headers, timeout=client_timeout) as resp:
            if resp.status != 200:
                replica.mark_down(f"/health answered {resp.status}")
                return False
        latency_ms = (time.monotonic() - t0) * 1000
        async with session.get(replica.url + "/v1/models", headers=headers, timeout=client_timeout) as resp:
            if resp.status != 200:
                replica.mark_down(f"/v1/models answered {resp.status}")
                return False
            models = orjson.loads(await resp.read()).get("data") or []
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        replica.mark_down(str(exc) or type(exc).__name__)
        return False
    except (orjson.JSONDecodeError, AttributeError, TypeError):
        replica.mark_down("/v1/models answered something that is not a model list")
        return False
    learn_models(backend, models)
    if backend.config.discover_model and not backend.served_model:
        replica.mark_down("/v1/models lists no model")
        return False
    replica.mark_up(latency_ms)
    backend.ready = True
    return True


def learn_models(backend: Backend, models: list) -> None:
    entries = [m for m in models if isinstance(m, dict) and isinstance(m.get("id"), str)]
    if not entries:
        return
    wanted = backend.config.model
    chosen = next((m for m in entries if m["id"] == wanted), None)
    if chosen is None and backend.config.discover_model:
        chosen = entries[0]
    if chosen is None:
        return
    if backend.config.discover_model:
        backend.served_model = chosen["id"]
    if isinstance(chosen.get("max_model_len"), int):
        backend.max_model_len = chosen["max_model_len"]


async def probe_all(app: web.Application) -> None:
    session = app[UPSTREAM].session
    assert session is not None
    timeout = app[SETTINGS].connect_timeout
    jobs = [probe(session, b, r, timeout) for b in app[BACKENDS] for r in b.replicas]
    await asyncio.gather(*jobs)


async def startup_check(app: web.Application) -> None:
    """Probe until every backend answered once, then keep monitoring."""
    settings = app[SETTINGS]
    pool = app[BACKENDS]
    t0 = time.monotonic()
    attempt, delay = 0, 0.5
    while not pool.ready:
        attempt += 1
        await probe_all(app)
        if pool.ready:
            break
        waited = time.monotonic() - t0
        for b in pool:
            if not b.ready:
                log.warning(
                    "waiting for %s at %s: attempt %d, %.0f s (%s)",
                    b.name,
                    ", ".join(b.config.urls),
                    attempt,
                    waited,
                    b.replicas[0].last_error,
                )
        if settings.startup_timeout and waited >= settings.startup_timeout:
            log.error("backends not ready after %.0f s (STARTUP_TIMEOUT); exiting", waited)
            pool.startup_failed = True
            os.kill(os.getpid(), signal.SIGTERM)
            return
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)
    for b in pool:
        log.info("backend %s ready: model %s, max_model_len %s", b.name, b.model, b.max_model_len)
    app[READY_EVENT].set()
    while True:
        await asyncio.sleep(settings.health_interval)
        before = {id(r): r.healthy for b in pool for r in b.replicas}
        await probe_all(app)
        for b in pool:
            for r in b.replicas:
                if before[id(r)] != r.healthy:
                    log.warning(
                        "backend %s replica %s is now %s", b.name, r.url, "up" if r.healthy else "down"
                    )


READY_EVENT = web.AppKey("ready_event", asyncio.Event)


async def health_ctx(app: web.Application) -> AsyncIterator[None]:
    app[READY_EVENT] = asyncio.Event()
    task = asyncio.create_task(startup_check(app), name="router-health")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
