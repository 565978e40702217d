"""Prometheus metrics: the per-app registry, what one request adds, and GET /metrics parsed with
prometheus-client's own parser (open without a key, never showing a key)."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from conftest import AUTH, KEY, RouterFactory
from fake_vllm import FakeVLLM, Turn
from prometheus_client.parser import text_string_to_metric_families

from router.metrics import Metrics, public_url
from router.request_info import RequestInfo

HELLO = [{"role": "user", "content": "hello"}]


def info(**kw: object) -> RequestInfo:
    base = RequestInfo(request_id="req_1", method="POST", path="/v1/messages", route="messages")
    base.backend, base.backend_model, base.status = "default", "tiny", 200
    for k, v in kw.items():
        setattr(base, k, v)
    base.finished = base.started + 1.5
    return base


def test_observe_counts_one_request() -> None:
    m = Metrics(process=False)
    i = info(input_tokens=120, output_tokens=30, cached_tokens=64)
    i.first_token_at = i.started + 0.2
    m.observe(i)
    labels = {"route": "messages", "backend": "default", "model": "tiny"}
    get = m.registry.get_sample_value
    assert get("anthropic_router_requests_total", {**labels, "status": "200"}) == 1
    assert get("anthropic_router_tokens_total", {"type": "input", **labels}) == 120
    assert get("anthropic_router_tokens_total", {"type": "output", **labels}) == 30
    assert get("anthropic_router_tokens_total", {"type": "cached", **labels}) == 64
    assert get("anthropic_router_request_duration_seconds_count", labels) == 1
    assert get("anthropic_router_request_duration_seconds_sum", labels) == pytest.approx(1.5)
    assert get("anthropic_router_time_to_first_token_seconds_sum", labels) == pytest.approx(0.2)


def test_non_streaming_ttft_is_its_duration() -> None:
    m = Metrics(process=False)
    m.observe(info(output_tokens=5))  # no first-token mark: the first token came with the whole body
    m.observe(info(output_tokens=0))  # nothing generated: no TTFT
    labels = {"route": "messages", "backend": "default", "model": "tiny"}
    assert m.registry.get_sample_value("anthropic_router_time_to_first_token_seconds_count", labels) == 1
    assert m.registry.get_sample_value("anthropic_router_time_to_first_token_seconds_sum", labels) == 1.5


def test_no_ttft_without_a_token_and_aborts_are_499() -> None:
    m = Metrics(process=False)
    m.observe(info(status=499, client_aborted=True))
    labels = {"route": "messages", "backend": "default", "model": "tiny"}
    assert m.registry.get_sample_value("anthropic_router_requests_total", {**labels, "status": "499"}) == 1
    assert m.registry.get_sample_value("anthropic_router_time_to_first_token_seconds_count", labels) is None


def test_registries_are_per_app() -> None:
    a, b = Metrics(), Metrics()  # a second app in the same process must not raise "Duplicated timeseries"
    a.observe(info())
    assert a.registry.get_sample_value("anthropic_router_requests_total", {"route": "messages",
           "backend": "default", "model": "tiny", "status": "200"}) == 1  # fmt: skip
    assert b.registry.get_sample_value("anthropic_router_requests_total", {"route": "messages",
           "backend": "default", "model": "tiny", "status": "200"}) is None  # fmt: skip


@pytest.mark.parametrize(
    ("url", "public"),
    [
        ("http://user:secret@gpu1:8000", "http://gpu1:8000"),
        ("https://gpu1/base?token=abc", "https://gpu1/base"),
        ("http://[::1]:8000", "http://[::1]:8000"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
    ],
)
def test_public_url_drops_credentials(url: str, public: str) -> None:
    assert public_url(url) == public


async def scrape(client: TestClient) -> dict:
    resp = await client.get("/metrics")  # no key: scrapers rarely carry one
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = await resp.text()
    assert KEY not in text
    return {s.name + repr(sorted(s.labels.items())): s.value for f in text_string_to_metric_families(text)
            for s in f.samples}  # fmt: skip


def sample(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get(name + repr(sorted(labels.items())))


async def test_metrics_endpoint_after_requests(
    router: TestClient, vllm: FakeVLLM, vllm_server: TestServer
) -> None:
    vllm.script(Turn(text="one two three"), Turn(text="four five"))
    r1 = await router.post(
        "/v1/messages", json={"model": "m", "max_tokens": 20, "messages": HELLO}, headers=AUTH
    )
    u1 = (await r1.json())["usage"]
    body = {"model": "m", "max_tokens": 20, "messages": HELLO, "stream": True}
    r2 = await router.post("/v1/messages", json=body, headers=AUTH)
    await r2.read()
    bad = await router.post("/v1/messages", data=b"{", headers=AUTH)
    await bad.read()
    samples = await scrape(router)
    for _ in range(100):  # the stream is recorded a moment after its last byte
        if sample(samples, "anthropic_router_requests_total", route="messages", backend="default", model="tiny",
                  status="200") == 2:  # fmt: skip
            break
        await asyncio.sleep(0.01)
        samples = await scrape(router)
    labels = {"route": "messages", "backend": "default", "model": "tiny"}
    assert sample(samples, "anthropic_router_requests_total", **labels, status="200") == 2
    assert sample(samples, "anthropic_router_requests_total", route="messages", backend="", model="",
                  status="400") == 1  # fmt: skip
    inputs = sample(samples, "anthropic_router_tokens_total", type="input", **labels)
    outputs = sample(samples, "anthropic_router_tokens_total", type="output", **labels)
    assert inputs == 2 * u1["input_tokens"]  # the same prompt twice
    assert outputs is not None and outputs > u1["output_tokens"]
    assert sample(samples, "anthropic_router_request_duration_seconds_count", **labels) == 2
    assert sample(samples, "anthropic_router_time_to_first_token_seconds_count", **labels) == 2
    assert sample(samples, "anthropic_router_in_flight_requests") == 0
    replica = str(vllm_server.make_url("")).rstrip("/")
    assert sample(samples, "anthropic_router_backend_up", backend="default", replica=replica) == 1


async def test_backend_up_follows_health(router: TestClient, vllm: FakeVLLM, vllm_server: TestServer) -> None:
    replica = str(vllm_server.make_url("")).rstrip("/")
    vllm.healthy = False
    for _ in range(200):  # HEALTH_INTERVAL is 0.2 s in the test settings
        if (
            sample(await scrape(router), "anthropic_router_backend_up", backend="default", replica=replica)
            == 0
        ):
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("backend_up never went to 0")


async def test_in_flight_counts_a_running_stream(router: TestClient, vllm: FakeVLLM) -> None:
    vllm.script(Turn(text="slow " * 40, delay_per_token=0.02))
    body = {"model": "m", "max_tokens": 100, "messages": HELLO, "stream": True}
    async with aiohttp.ClientSession() as session:
        url = str(router.make_url("/v1/messages"))
        async with session.post(url, json=body, headers=AUTH) as resp:
            await resp.content.readline()
            assert sample(await scrape(router), "anthropic_router_in_flight_requests") == 1
            await resp.read()
    for _ in range(100):
        if sample(await scrape(router), "anthropic_router_in_flight_requests") == 0:
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("in-flight gauge never returned to 0")


async def test_metrics_without_telemetry_and_with_backend_key(
    router_factory: RouterFactory, aiohttp_server
) -> None:  # type: ignore[no-untyped-def]
    fake = FakeVLLM(api_key="backend-secret-key")
    client = await router_factory(await aiohttp_server(fake.app), TELEMETRY_ENABLED="false",
                                  VLLM_API_KEY="backend-secret-key")  # fmt: skip
    resp = await client.post(
        "/v1/messages", json={"model": "m", "max_tokens": 5, "messages": HELLO}, headers=AUTH
    )
    assert resp.status == 200, await resp.text()
    text = await (await client.get("/metrics")).text()
    assert "backend-secret-key" not in text and KEY not in text
    families = {f.name for f in text_string_to_metric_families(text)}
    assert {
        "anthropic_router_requests",
        "anthropic_router_tokens",
        "anthropic_router_request_duration_seconds",
        "anthropic_router_time_to_first_token_seconds",
        "anthropic_router_in_flight_requests",
        "anthropic_router_backend_up",
    } <= families
