"""Start-up check and health monitor: the router listens before vLLM is up, says so, and follows vLLM
through deaths and restarts without being restarted itself."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from conftest import AUTH, RouterFactory, server_url, wait_ready
from fake_vllm import FakeVLLM

from router.health import probe_replica

ServerFactory = Callable[..., Awaitable[TestServer]]
BODY = {"model": "tiny", "max_tokens": 20, "messages": [{"role": "user", "content": "Hello"}]}


async def _ok(_request: web.Request) -> web.Response:
    return web.Response()


async def health(router: TestClient) -> tuple[int, dict]:
    resp = await router.get("/health")
    return resp.status, await resp.json()


async def until(router: TestClient, status: int, timeout: float = 5.0) -> dict:
    """Poll /health until it answers ``status``."""
    deadline = time.monotonic() + timeout
    while True:
        code, body = await health(router)
        if code == status:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"/health never answered {status}: {body}")
        await asyncio.sleep(0.02)


async def message_status(router: TestClient) -> tuple[int, dict, float]:
    t0 = time.monotonic()
    resp = await router.post("/v1/messages", json=BODY, headers=AUTH)
    return resp.status, await resp.json(), time.monotonic() - t0


async def test_router_started_before_vllm_answers_529_then_serves(
    aiohttp_server: ServerFactory, router_factory: RouterFactory, unused_tcp_port: int
) -> None:
    router = await router_factory(f"http://127.0.0.1:{unused_tcp_port}", ready=False)
    code, body = await health(router)
    assert code == 503 and body["status"] == "starting"
    assert body["backends"]["default"]["status"] == "starting"
    status, error, _ = await message_status(router)
    assert status == 529
    assert error["error"]["type"] == "overloaded_error" and "starting" in error["error"]["message"]

    vllm = FakeVLLM(model="org/served-model", max_model_len=4096)
    await aiohttp_server(vllm.app, port=unused_tcp_port)
    await wait_ready(router)
    body = await until(router, 200)
    default = body["backends"]["default"]
    assert (default["status"], default["model"], default["max_model_len"]) == ("up", "org/served-model", 4096)
    replica = default["replicas"][0]
    assert replica["healthy"] and replica["last_error"] is None and replica["latency_ms"] >= 0
    status, message, _ = await message_status(router)
    assert status == 200 and message["type"] == "message"
    assert vllm.requests[-1]["model"] == "org/served-model"  # the discovered name is what vLLM gets


async def test_503_and_529_name_the_reason_while_starting(
    router_factory: RouterFactory, unused_tcp_port: int
) -> None:
    router = await router_factory(f"http://127.0.0.1:{unused_tcp_port}", ready=False)
    for _ in range(100):
        code, body = await health(router)
        if body["backends"]["default"]["replicas"][0]["last_error"]:
            break
        await asyncio.sleep(0.02)
    assert code == 503
    assert "Connect" in body["backends"]["default"]["replicas"][0]["last_error"]
    resp = await router.post("/v1/messages", json=BODY, headers=AUTH)
    assert resp.status == 529 and resp.headers["x-should-retry"] == "true"


async def test_dead_engine_fails_fast_with_529_and_comes_back(
    router: TestClient, vllm: FakeVLLM, vllm_server: TestServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="router.backends")
    vllm.healthy = False  # vLLM's /health says 503, as after an EngineDeadError
    body = await until(router, 503)
    assert body["status"] == "degraded"
    assert body["backends"]["default"]["replicas"][0]["last_error"] == "/health answered 503"
    sent = len(vllm.requests)
    status, error, elapsed = await message_status(router)
    assert status == 529 and error["error"]["type"] == "overloaded_error"
    assert "unavailable" in error["error"]["message"]
    assert len(vllm.requests) == sent and elapsed < 1.0  # fast: no request reached the dead backend
    vllm.healthy = True
    await until(router, 200)
    status, _, _ = await message_status(router)
    assert status == 200
    url = server_url(vllm_server)
    assert [r.getMessage() for r in caplog.records if r.name == "router.backends"] == [
        f"replica {url} is down: /health answered 503",
        f"replica {url} is up again",
    ]


async def test_vllm_process_restart_is_followed(
    aiohttp_server: ServerFactory, router_factory: RouterFactory, unused_tcp_port: int
) -> None:
    server = await aiohttp_server(FakeVLLM().app, port=unused_tcp_port)
    router = await router_factory(server)
    await server.close()
    body = await until(router, 503)
    assert body["backends"]["default"]["status"] == "down"
    assert (await message_status(router))[0] == 529
    restarted = FakeVLLM(model="after-restart")
    await aiohttp_server(restarted.app, port=unused_tcp_port)
    body = await until(router, 200)
    assert body["backends"]["default"]["model"] == "after-restart"  # re-learned, not assumed
    assert (await message_status(router))[0] == 200
    assert restarted.requests[-1]["model"] == "after-restart"


async def test_start_up_progress_is_logged_with_attempts_and_seconds(
    router_factory: RouterFactory, unused_tcp_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="router.health")
    url = f"http://127.0.0.1:{unused_tcp_port}"
    await router_factory(f"http://user:url-secret@127.0.0.1:{unused_tcp_port}", ready=False)
    pattern = re.compile(rf"^waiting for vLLM at {re.escape(url)}: attempt (\d+), (\d+) s \(.*Connect")
    for _ in range(200):
        attempts = [(m, r.created) for r in caplog.records if (m := pattern.match(r.getMessage()))]
        if len(attempts) >= 3:
            break
        await asyncio.sleep(0.02)
    assert [int(m.group(1)) for m, _ in attempts[:3]] == [1, 2, 3]
    assert not any("url-secret" in r.getMessage() for r in caplog.records)
    assert int(attempts[2][0].group(2)) in (1, 2)  # seconds waited so far
    # Backoff: 0.5 s, then twice that.
    first, second = attempts[1][1] - attempts[0][1], attempts[2][1] - attempts[1][1]
    assert 0.45 < first < 1.2 and 0.95 < second < 2.0, (first, second)


async def test_a_configured_model_vllm_does_not_list_is_warned_about(
    router_factory: RouterFactory, vllm_server: TestServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="router.health")
    await router_factory(vllm_server, VLLM_MODEL="not-served")
    assert any("does not list the configured model not-served" in r.getMessage() for r in caplog.records)


async def test_every_backend_must_answer_before_ready_but_each_serves_once_up(
    router_factory: RouterFactory, vllm_server: TestServer, unused_tcp_port: int
) -> None:
    router = await router_factory(vllm_server, ready=False, VISION_URL=f"http://127.0.0.1:{unused_tcp_port}")
    for _ in range(100):
        _, body = await health(router)
        if body["backends"]["default"]["status"] == "up":
            break
        await asyncio.sleep(0.02)
    assert body["backends"]["vision"]["status"] == "starting"
    assert (await message_status(router))[0] == 200  # the default backend is usable already


# --- one probe ------------------------------------------------------------------------------------------


async def probe_app(aiohttp_server: ServerFactory, handler: Callable) -> str:
    app = web.Application()
    app.router.add_get("/health", _ok)
    app.router.add_get("/v1/models", handler)
    return server_url(await aiohttp_server(app))


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (
            web.json_response({"error": "Unauthorized"}, status=401),
            "/v1/models answered 401: wrong or missing API key",
        ),
        (web.Response(text="<html>"), "/v1/models answered something that is not a model list"),
        (web.json_response({"object": "list", "data": []}), "/v1/models lists no model"),
        (web.json_response({}, status=500), "/v1/models answered 500"),
    ],
)
async def test_probe_explains_what_is_wrong(
    aiohttp_server: ServerFactory, answer: web.Response, error: str
) -> None:
    async def models(_request: web.Request) -> web.Response:
        return answer

    url = await probe_app(aiohttp_server, models)
    async with aiohttp.ClientSession() as session:
        result = await probe_replica(session, url, None, 2.0)
    assert not result.ok and result.error == error


async def test_probe_sends_the_backend_key_and_reads_the_models(aiohttp_server: ServerFactory) -> None:
    vllm = FakeVLLM(model="m", api_key="vllm-secret")
    url = server_url(await aiohttp_server(vllm.app))
    async with aiohttp.ClientSession() as session:
        assert (await probe_replica(session, url, None, 2.0)).error == (
            "/v1/models answered 401: wrong or missing API key"
        )
        result = await probe_replica(session, url, "vllm-secret", 2.0)
    assert (
        result.ok and [m["id"] for m in result.models] == ["m"] and result.models[0]["max_model_len"] == 8192
    )


async def test_probe_timeout_names_connect_timeout(aiohttp_server: ServerFactory) -> None:
    async def slow(_request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.json_response({})

    url = await probe_app(aiohttp_server, slow)
    async with aiohttp.ClientSession() as session:
        result = await probe_replica(session, url, None, 0.2)
    assert result.error == "no answer within 0.2 s (CONNECT_TIMEOUT)"


# --- STARTUP_TIMEOUT: a real process -------------------------------------------------------------------


async def test_startup_timeout_exits_non_zero_for_the_service_manager(unused_tcp_port: int) -> None:
    env = {
        **os.environ,
        "VLLM_URL": f"http://127.0.0.1:{unused_tcp_port}",
        "HOST": "127.0.0.1",
        "PORT": "0",
        "STARTUP_TIMEOUT": "1",
        "API_KEY": "k",
    }
    t0 = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "router", "--env-file", os.devnull, env=env, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(proc.communicate(), 20)
    log = stderr.decode()
    assert proc.returncode == 3, log
    assert time.monotonic() - t0 < 10
    assert re.search(r"waiting for vLLM at http://127\.0\.0\.1:\d+: attempt 2, \d+ s", log)
    assert "STARTUP_TIMEOUT" in log
