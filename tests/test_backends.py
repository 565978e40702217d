"""Replica choice (health, affinity, outstanding requests) and failover through a running router."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient, TestServer
from conftest import AUTH, RouterFactory, server_url
from fake_vllm import FakeVLLM

from router.backends import AFFINITY_SLACK, Backend, BackendPool, affinity_order
from router.config import BackendConfig
from router.errors import RouterError

URLS = ("http://a:8000", "http://b:8000", "http://c:8000")
HELLO = [{"role": "user", "content": "Hello"}]


def backend(*urls: str, healthy: bool = True, ready: bool = True) -> Backend:
    b = Backend.from_config(BackendConfig("default", urls or URLS, "default"))
    b.ready = ready
    for r in b.replicas:
        r.healthy = healthy
    return b


def key_preferring(url: str, urls: tuple[str, ...] = URLS) -> str:
    """An affinity key whose first choice is ``url``."""
    return next(k for k in (f"session-{i}" for i in range(1000)) if affinity_order(k, urls)[0] == url)


# --- choice ---------------------------------------------------------------------------------------------


def test_no_healthy_replica_is_a_retryable_529_saying_why() -> None:
    starting = backend(healthy=False, ready=False)
    with pytest.raises(RouterError) as err:
        starting.pick("k")
    assert (err.value.status, err.value.type, err.value.retry) == (529, "overloaded_error", True)
    assert "starting" in err.value.message
    down = backend(healthy=False, ready=True)
    with pytest.raises(RouterError) as err:
        down.pick("k")
    assert "unavailable" in err.value.message


def test_unhealthy_and_excluded_replicas_are_skipped() -> None:
    b = backend()
    b.replicas[0].healthy = False
    for i in range(30):
        assert b.pick(f"k{i}") is not b.replicas[0]
    only = b.pick(exclude=[b.replicas[1]])
    assert only is b.replicas[2]
    with pytest.raises(RouterError, match="unavailable"):
        b.pick(exclude=[b.replicas[1], b.replicas[2]])


def test_without_affinity_the_least_busy_replica_wins_and_idle_ones_take_turns() -> None:
    b = backend()
    b.replicas[0].outstanding, b.replicas[1].outstanding, b.replicas[2].outstanding = 3, 1, 2
    assert b.pick() is b.replicas[1]
    idle = backend()
    assert Counter(idle.pick().url for _ in range(9)) == dict.fromkeys(URLS, 3)


def test_a_conversation_sticks_to_one_replica() -> None:
    b = backend()
    key = key_preferring(URLS[2])
    b.replicas[2].outstanding = AFFINITY_SLACK  # busier than the others, but not clearly overloaded
    assert {b.pick(key).url for _ in range(20)} == {URLS[2]}


def test_conversations_spread_over_replicas() -> None:
    b = backend()
    counts = Counter(b.pick(f"conversation-{i}").url for i in range(300))
    assert set(counts) == set(URLS)
    assert min(counts.values()) > 60  # about 100 each


def test_a_replica_going_down_moves_only_its_own_conversations() -> None:
    b = backend()
    keys = [f"conversation-{i}" for i in range(200)]
    before = {k: b.pick(k).url for k in keys}
    b.replicas[0].healthy = False
    after = {k: b.pick(k).url for k in keys}
    moved = {k for k in keys if before[k] != after[k]}
    assert moved == {k for k in keys if before[k] == URLS[0]}
    assert moved  # some lived there


def test_a_clearly_overloaded_replica_hands_the_conversation_to_its_second_choice() -> None:
    b = backend()
    key = key_preferring(URLS[0])
    second = affinity_order(key, URLS)[1]
    b.replicas[0].outstanding = AFFINITY_SLACK + 1  # the others are idle
    assert b.pick(key).url == second
    b.replicas[0].outstanding = AFFINITY_SLACK
    assert b.pick(key).url == URLS[0]
    for r in b.replicas[1:]:
        r.outstanding = 40  # busy everywhere: twice the least busy is the bound
    b.replicas[0].outstanding = 80
    assert b.pick(key).url == URLS[0]
    b.replicas[0].outstanding = 81
    assert b.pick(key).url == second


def test_pool_is_ready_only_when_every_backend_is() -> None:
    pool = BackendPool(
        {
            "default": BackendConfig("default", (URLS[0],), "default"),
            "vision": BackendConfig("vision", (URLS[1],), "gpt-4-vision"),
        }
    )
    assert pool.default is pool["default"] and [b.name for b in pool] == ["default", "vision"]
    assert not pool.ready
    pool["default"].ready = True
    assert not pool.ready
    pool["vision"].ready = True
    assert pool.ready


def test_model_is_discovered_or_configured() -> None:
    discovered = backend()
    assert discovered.model == "default"
    discovered.served_model = "Qwen/Qwen3"
    assert discovered.model == "Qwen/Qwen3"
    fixed = Backend.from_config(BackendConfig("default", URLS, "my-model"))
    fixed.served_model = "other"
    assert fixed.model == "my-model"


# --- through the router ----------------------------------------------------------------------------------

ServerFactory = Callable[..., Awaitable[TestServer]]


async def two_replicas(aiohttp_server: ServerFactory) -> tuple[list[FakeVLLM], list[TestServer], str]:
    fakes = [FakeVLLM(), FakeVLLM()]
    servers = [await aiohttp_server(f.app) for f in fakes]
    return fakes, servers, ",".join(server_url(s) for s in servers)


async def post(router: TestClient, session: str, stream: bool = False) -> int:
    body = {"model": "tiny", "max_tokens": 20, "messages": HELLO, "stream": stream}
    resp = await router.post("/v1/messages", json=body, headers={**AUTH, "X-Claude-Code-Session-Id": session})
    await resp.read()
    return resp.status


async def test_requests_of_a_conversation_reach_one_replica(
    aiohttp_server: ServerFactory, router_factory: RouterFactory
) -> None:
    fakes, servers, urls = await two_replicas(aiohttp_server)
    router = await router_factory(urls)
    replica_urls = tuple(server_url(s) for s in servers)
    for target in (0, 1):
        key = key_preferring(replica_urls[target], replica_urls)
        for stream in (False, True, False):
            assert await post(router, key, stream) == 200
    assert [len(f.requests) for f in fakes] == [3, 3]


async def test_connection_failure_is_retried_on_the_other_replica_and_marks_it_down(
    aiohttp_server: ServerFactory, router_factory: RouterFactory
) -> None:
    fakes, servers, urls = await two_replicas(aiohttp_server)
    # Probes far apart: the failed request, not the monitor, is what finds the dead replica.
    router = await router_factory(urls, HEALTH_INTERVAL="30")
    replica_urls = tuple(server_url(s) for s in servers)
    dead_url = replica_urls[0]
    await servers[0].close()
    key = key_preferring(dead_url, replica_urls)
    for stream in (False, True):
        assert await post(router, key, stream) == 200
    assert len(fakes[1].requests) == 2
    health = await (await router.get("/health")).json()
    replicas = {r["url"]: r for r in health["backends"]["default"]["replicas"]}
    assert replicas[dead_url]["healthy"] is False
    assert "Connect" in replicas[dead_url]["last_error"]
    assert health["status"] == "ok"  # the other replica still serves


async def test_replica_marked_down_by_a_request_is_back_at_the_next_probe(
    aiohttp_server: ServerFactory, router_factory: RouterFactory, unused_tcp_port: int
) -> None:
    fake = FakeVLLM()
    server = await aiohttp_server(fake.app, port=unused_tcp_port)
    router = await router_factory(server, HEALTH_INTERVAL="1")
    await server.close()
    # Before the next probe: the request finds the dead replica itself, and answers at once.
    assert await post(router, "s") == 502
    assert await post(router, "s") == 529  # marked down: no connection attempt, a retryable 529
    revived = FakeVLLM()
    await aiohttp_server(revived.app, port=unused_tcp_port)
    for _ in range(100):
        if await post(router, "s") == 200:
            break
        await asyncio.sleep(0.05)
    assert len(revived.requests) == 1
