"""Shared fixtures: a fake vLLM on a real socket, and the router in front of it.

    async def test_x(router, vllm, sdk):        # router: aiohttp TestClient; sdk: anthropic.AsyncAnthropic
        vllm.script(Turn(text="hi"))
        msg = await sdk.messages.create(...)

``router_factory(*servers, **env)`` starts another router (more backends, other settings); env values
are the router's environment variables (``VISION_URL`` and friends take ``server_url(server)``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import anthropic
import pytest
from aiohttp.test_utils import TestClient, TestServer
from fake_vllm import FakeVLLM

from router.app import create_app
from router.config import load_settings

# Helpers that several test files share assert too: rewritten like a test module's asserts, a failure in
# them shows the values compared (registered here, before any test module imports them).
pytest.register_assert_rewrite(
    "chat_completions_harness", "fault_harness", "security_harness", "translate_request_helpers"
)

KEY = "test-key-0123456789"
AUTH = {"x-api-key": KEY}

RouterFactory = Callable[..., Awaitable[TestClient]]


def server_url(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


def router_env(backend_url: str, **env: str) -> dict[str, str]:
    return {
        "API_KEY": KEY,
        "VLLM_URL": backend_url,
        "HEALTH_INTERVAL": "0.2",
        "STARTUP_TIMEOUT": "0",
        "CONNECT_TIMEOUT": "2",
        "LOG_LEVEL": "debug",
        **env,
    }


async def wait_ready(client: TestClient, timeout: float = 5.0) -> None:
    """Wait for the background start-up probe; the router listens before its backends are known."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        resp = await client.get("/health")
        await resp.read()
        if resp.status == 200:
            return
        if loop.time() > deadline:
            raise AssertionError(f"router not ready after {timeout}s: {await resp.text()}")
        await asyncio.sleep(0.02)


@pytest.fixture
def vllm() -> FakeVLLM:
    return FakeVLLM()


@pytest.fixture
async def vllm_server(aiohttp_server: Callable[..., Awaitable[TestServer]], vllm: FakeVLLM) -> TestServer:
    return await aiohttp_server(vllm.app)


@pytest.fixture
def router_factory(aiohttp_client: Callable[..., Awaitable[TestClient]]) -> RouterFactory:
    async def make(server: TestServer | str, *, ready: bool = True, **env: str) -> TestClient:
        url = server if isinstance(server, str) else server_url(server)
        settings = load_settings(router_env(url, **env), env_file=None)
        client = await aiohttp_client(create_app(settings))
        if ready:
            await wait_ready(client)
        return client

    return make


@pytest.fixture
async def router(router_factory: RouterFactory, vllm_server: TestServer) -> TestClient:
    return await router_factory(vllm_server)


@pytest.fixture
async def sdk(router: TestClient) -> AsyncIterator[anthropic.AsyncAnthropic]:
    client = anthropic.AsyncAnthropic(base_url=str(router.make_url("")), api_key=KEY, max_retries=0)
    yield client
    await client.close()
