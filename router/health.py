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
from dataclasses import dataclass, field

import aiohttp
import orjson
from aiohttp import web

from . import sdnotify
from .backends import Backend, BackendPool, Replica
from .config import DEFAULT_BACKEND, BackendConfig
from .keys import BACKENDS, SETTINGS, UPSTREAM
from .metrics import public_url

log = logging.getLogger("router.health")

# Start-up retry delays: quick at first (vLLM may be seconds from ready), then every few seconds.
FIRST_DELAY = 0.5
MAX_DELAY = 5.0

READY_EVENT = web.AppKey("ready_event", asyncio.Event)


@dataclass
class ProbeResult:
    """What one replica answered to ``GET /health`` and ``GET /v1/models``."""

    ok: bool
    error: str | None = None
    latency_ms: float | None = None  # of GET /health
    models: list[dict] = field(default_factory=list)  # /v1/models entries with a string id


async def probe_replica(
    session: aiohttp.ClientSession, url: str, api_key: str | None, timeout: float
) -> ProbeResult:
    """``GET /health`` (is the engine alive), then ``GET /v1/models`` (what it serves, its context)."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    t0 = time.monotonic()
    try:
        async with session.get(url + "/health", headers=headers, timeout=client_timeout) as resp:
            if resp.status != 200:
                return ProbeResult(False, f"/health answered {resp.status}")
        latency_ms = (time.monotonic() - t0) * 1000
        async with session.get(url + "/v1/models", headers=headers, timeout=client_timeout) as resp:
            if resp.status in (401, 403):
                return ProbeResult(False, f"/v1/models answered {resp.status}: wrong or missing API key")
            if resp.status != 200:
                return ProbeResult(False, f"/v1/models answered {resp.status}")
            data = orjson.loads(await resp.read()).get("data")
    except TimeoutError:
        return ProbeResult(False, f"no answer within {timeout:g} s (CONNECT_TIMEOUT)")
    except (aiohttp.ClientError, OSError) as exc:
        return ProbeResult(False, str(exc) or type(exc).__name__)
    except (orjson.JSONDecodeError, AttributeError):
        return ProbeResult(False, "/v1/models answered something that is not a model list")
    except Exception as exc:  # anything else (a malformed URL, a library surprise) is a failed probe,
        # named in /health and the start-up log, never a silently dead start-up task.
        log.warning("probe of %s failed unexpectedly", public_url(url), exc_info=True)
        return ProbeResult(False, f"probe failed: {type(exc).__name__}")
    models = [m for m in data or () if isinstance(m, dict) and isinstance(m.get("id"), str)]
    if not models:
        return ProbeResult(False, "/v1/models lists no model")
    return ProbeResult(True, None, latency_ms, models)


def served_entry(config: BackendConfig, models: list[dict]) -> dict | None:
    """The ``/v1/models`` entry this backend's requests will use: the configured model, or with
    ``VLLM_MODEL=default`` the first one listed. ``None``: the configured model is not served there."""
    if config.discover_model:
        return models[0] if models else None
    return next((m for m in models if m["id"] == config.model), None)


def learn_models(backend: Backend, models: list[dict]) -> None:
    backend.listed_models = tuple(m["id"] for m in models)
    entry = served_entry(backend.config, models)
    if entry is None:
        return
    if backend.config.discover_model and backend.served_model != entry["id"]:
        if backend.served_model is not None:
            log.warning("backend %s now serves %s (was %s)", backend.name, entry["id"], backend.served_model)
        backend.served_model = entry["id"]
    if isinstance(entry.get("max_model_len"), int):
        backend.max_model_len = entry["max_model_len"]


async def probe(session: aiohttp.ClientSession, backend: Backend, replica: Replica, timeout: float) -> bool:
    """Probe one replica and record the outcome on it (and on its backend)."""
    result = await probe_replica(session, replica.url, backend.config.api_key, timeout)
    if not result.ok:
        replica.mark_down(result.error or "probe failed")
        return False
    learn_models(backend, result.models)
    replica.mark_up(result.latency_ms or 0.0)
    backend.ready = True
    return True


async def probe_all(app: web.Application) -> None:
    session = app[UPSTREAM].session
    assert session is not None
    timeout = app[SETTINGS].connect_timeout
    await asyncio.gather(*(probe(session, b, r, timeout) for b in app[BACKENDS] for r in b.replicas))


def describe(backend: Backend) -> str:
    """How logs name a backend: the seed's wording for the main one."""
    return "vLLM" if backend.name == DEFAULT_BACKEND else f"backend {backend.name}"


def _waiting(backend: Backend, attempt: int, waited: float) -> str:
    down = [r for r in backend.replicas if not r.healthy] or backend.replicas
    urls = ", ".join(public_url(r.url) for r in down)
    errors = "; ".join(dict.fromkeys(r.last_error or "no answer yet" for r in down))
    return f"waiting for {describe(backend)} at {urls}: attempt {attempt}, {waited:.0f} s ({errors})"


async def wait_for_backends(app: web.Application) -> bool:
    """Probe with backoff until every backend answered once; ``False`` after ``STARTUP_TIMEOUT``."""
    settings, pool = app[SETTINGS], app[BACKENDS]
    t0 = time.monotonic()
    attempt, delay = 0, FIRST_DELAY
    while True:
        attempt += 1
        was_ready = {b.name for b in pool if b.ready}
        await probe_all(app)
        waited = time.monotonic() - t0
        for b in pool:
            if b.ready and b.name not in was_ready:
                log.info(
                    "%s ready after %.0f s: model %s, max_model_len %s",
                    describe(b),
                    waited,
                    b.model,
                    b.max_model_len,
                )
                if b.listed_models and b.model not in b.listed_models:
                    # Still "up": some OpenAI-compatible servers serve more than they list.
                    log.warning(
                        "%s does not list the configured model %s (it lists %s): requests may fail with 404",
                        describe(b),
                        b.model,
                        ", ".join(b.listed_models),
                    )
        if pool.ready:
            return True
        for b in pool:
            if not b.ready:
                message = _waiting(b, attempt, waited)
                log.warning("%s", message)
                sdnotify.status(message)
        limit = settings.startup_timeout
        if limit and waited >= limit:
            return False
        await asyncio.sleep(min(delay, limit - waited) if limit else delay)
        delay = min(delay * 2, MAX_DELAY)


async def monitor(app: web.Application) -> None:
    """Re-probe every ``HEALTH_INTERVAL``: a replica that fails is taken out of rotation (requests
    fail fast with 529 when none is left), and put back as soon as it answers again."""
    settings, pool = app[SETTINGS], app[BACKENDS]
    while True:
        await asyncio.sleep(settings.health_interval)
        before = {id(r): r.healthy for b in pool for r in b.replicas}
        try:
            await probe_all(app)
        except Exception:  # a bug here must not stop the monitoring for good
            log.exception("health probe failed")
            continue
        if any(before[id(r)] != r.healthy for b in pool for r in b.replicas):
            sdnotify.status(summary(pool))


def summary(pool: BackendPool) -> str:
    down = [
        f"{describe(b)} {public_url(r.url)} down ({r.last_error})"
        for b in pool
        for r in b.replicas
        if not r.healthy
    ]
    return "; ".join(down) if down else "ready: " + ", ".join(f"{b.name}={b.model}" for b in pool)


async def startup_check(app: web.Application) -> None:
    """Wait for the backends, tell systemd, then monitor them for the life of the process."""
    pool = app[BACKENDS]
    if not await wait_for_backends(app):
        log.error(
            "backends not ready after %g s (STARTUP_TIMEOUT); exiting so the service manager restarts "
            "the router",
            app[SETTINGS].startup_timeout,
        )
        pool.startup_failed = True
        # The same path as a `systemctl stop`: aiohttp's signal handler starts the graceful shutdown,
        # and the CLI turns startup_failed into a non-zero exit status.
        os.kill(os.getpid(), signal.SIGTERM)
        return
    sdnotify.notify("READY=1\nSTATUS=" + summary(pool))
    app[READY_EVENT].set()
    await monitor(app)


async def health_ctx(app: web.Application) -> AsyncIterator[None]:
    app[READY_EVENT] = asyncio.Event()
    task = asyncio.create_task(startup_check(app), name="router-health")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
