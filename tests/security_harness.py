"""What the security tests (tests/test_security_*.py) share: the keys, a valid request, and a router
with three client keys in front of a backend that wants its own key.

A test module takes the ``keyed`` fixture by importing ``keyed_fixture`` (pytest registers a fixture
found in a test module's namespace).
"""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer
from conftest import RouterFactory
from fake_vllm import FakeVLLM

from router import middleware

KEYS = ("alpha-key-0123456789", "bravo-key-abcdefghij", "charlie-key-ZYXWVUTSRQ")
BACKEND_KEY = "backend-secret-key-42"
WRONG = "wrong-key-but-still-a-secret"
HELLO = [{"role": "user", "content": "hello"}]


def message(**fields: object) -> dict:
    return {"model": "m", "max_tokens": 20, "messages": HELLO, **fields}


@pytest.fixture(name="keyed")
async def keyed_fixture(router_factory: RouterFactory, aiohttp_server) -> tuple[TestClient, FakeVLLM]:  # type: ignore[no-untyped-def]
    """A router with three client keys in front of a backend that wants its own key."""
    fake = FakeVLLM(api_key=BACKEND_KEY)
    server: TestServer = await aiohttp_server(fake.app)
    client = await router_factory(
        server, API_KEY=",".join(KEYS), VLLM_API_KEY=BACKEND_KEY, TELEMETRY_ENABLED="true"
    )
    return client, fake


def client_key(client: TestClient) -> str:
    return client.server.app[middleware.SETTINGS].api_keys[0]
