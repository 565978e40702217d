"""GET /stats through real HTTP: a mixed workload (streaming, non-streaming, OpenAI passthrough, an aborted
stream, count_tokens, a bad request) adds up to the token, per model, backend and key, in /stats and
in /metrics alike."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import anthropic
import orjson
from aiohttp.test_utils import TestClient, TestServer
from conftest import AUTH, KEY, RouterFactory
from fake_vllm import FakeVLLM, Turn
from prometheus_client.parser import text_string_to_metric_families

OTHER_KEY = "second-key-abcdef0123"
AUTH1 = {"x-api-key": OTHER_KEY}
HELLO = [{"role": "user", "content": "hello there"}]
TOKEN_FIELDS = ("input_tokens", "output_tokens", "cached_tokens")


async def get_stats(client: TestClient, query: str = "") -> dict:
    resp = await client.get("/stats" + query, headers=AUTH)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def wait_stats(client: TestClient, requests: int) -> dict:
    """/stats once it holds ``requests``: a stream is recorded a moment after the client's last byte."""
    for _ in range(300):
        stats = await get_stats(client)
        if stats["totals"]["requests"] >= requests:
            return stats
        await asyncio.sleep(0.01)
    raise AssertionError(f"/stats never reached {requests} requests: {stats['totals']}")


def openai_usage(usage: dict) -> dict[str, int]:
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    return {"input_tokens": usage["prompt_tokens"] - cached, "output_tokens": usage["completion_tokens"],
            "cached_tokens": cached}  # fmt: skip


def anthropic_usage(usage: Any) -> dict[str, int]:
    return {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
            "cached_tokens": usage.cache_read_input_tokens or 0}  # fmt: skip


def sse_data(raw: bytes) -> list[dict]:
    return [orjson.loads(line[6:]) for line in raw.splitlines() if line.startswith(b"data: {")]


async def run_workload(client: TestClient, vllm: FakeVLLM) -> dict[str, dict]:
    """Every kind of request once; returns, per request id, the key, route and usage its client saw."""
    vllm.config.prompt_tokens_details = True
    seen: dict[str, dict] = {}
    base = str(client.make_url("")).rstrip("/")
    sdk0 = anthropic.AsyncAnthropic(base_url=base, api_key=KEY, max_retries=0)
    sdk1 = anthropic.AsyncAnthropic(base_url=base, api_key=OTHER_KEY, max_retries=0)

    vllm.script(Turn(text="Non streaming answer.", cached_tokens=4))
    raw = await sdk0.messages.with_raw_response.create(model="claude-x", max_tokens=50, messages=HELLO)
    msg = await raw.parse()
    seen[raw.headers["request-id"]] = {"key": "key0", "route": "messages", **anthropic_usage(msg.usage)}

    vllm.script(Turn(text="A streamed answer in several tokens.", cached_tokens=2))
    async with sdk1.messages.stream(model="claude-x", max_tokens=50, messages=HELLO) as stream:
        final = await stream.get_final_message()
        rid = stream.response.headers["request-id"]
    seen[rid] = {"key": "key1", "route": "messages", **anthropic_usage(final.usage)}

    vllm.script(Turn(text="Passthrough, not streamed.", cached_tokens=1))
    body = {"model": "x", "messages": HELLO, "max_tokens": 30}
    resp = await client.post("/v1/chat/completions", json=body, headers=AUTH)
    data = await resp.json()
    seen[resp.headers["request-id"]] = {
        "key": "key0",
        "route": "chat_completions",
        **openai_usage(data["usage"]),
    }

    vllm.script(Turn(text="Passthrough streamed with usage."))
    body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    resp = await client.post("/v1/chat/completions", json=body, headers=AUTH1)
    usage = [c["usage"] for c in sse_data(await resp.read()) if c.get("usage")][-1]
    seen[resp.headers["request-id"]] = {"key": "key1", "route": "chat_completions", **openai_usage(usage)}

    seen.update(await aborted_stream(client, vllm))

    resp = await client.post(
        "/v1/messages/count_tokens", json={"model": "claude-x", "messages": HELLO}, headers=AUTH
    )
    assert (await resp.json())["input_tokens"] > 0
    seen[resp.headers["request-id"]] = {
        "key": "key0",
        "route": "count_tokens",
        **dict.fromkeys(TOKEN_FIELDS, 0),
    }

    resp = await client.post("/v1/messages", json={"model": "claude-x", "messages": HELLO}, headers=AUTH1)
    assert resp.status == 400
    seen[resp.headers["request-id"]] = {"key": "key1", "route": "messages", **dict.fromkeys(TOKEN_FIELDS, 0)}
    resp = await client.post("/v1/messages", data=b"{", headers={**AUTH, "Content-Type": "application/json"})
    assert resp.status == 400
    seen[resp.headers["request-id"]] = {"key": "key0", "route": "messages", **dict.fromkeys(TOKEN_FIELDS, 0)}
    await sdk0.close()
    await sdk1.close()
    return seen


async def aborted_stream(client: TestClient, vllm: FakeVLLM) -> dict[str, dict]:
    """A stream its client leaves after a few deltas; the usage it saw: input exact, output so far."""
    planned = 200
    vllm.script(Turn(text=["w "] * planned, delay_per_token=0.01, cached_tokens=3))
    body = {"model": "claude-x", "max_tokens": 500, "messages": HELLO, "stream": True}
    async with aiohttp.ClientSession() as session:
        resp = await session.post(str(client.make_url("/v1/messages")), json=body, headers=AUTH1)
        rid = resp.headers["request-id"]
        start: dict | None = None
        deltas = 0
        while deltas < 3:
            line = await resp.content.readline()
            if line.startswith(b"data: "):
                event = orjson.loads(line[6:])
                if event["type"] == "message_start":
                    start = event["message"]["usage"]
                deltas += event["type"] == "content_block_delta"
        resp.close()
    assert start is not None
    return {rid: {"key": "key1", "route": "messages", "aborted": True, "input_tokens": start["input_tokens"],
                  "cached_tokens": start["cache_read_input_tokens"], "min_output": deltas, "max_output": planned + 1}}  # fmt: skip


def add(into: dict[str, int], usage: dict) -> None:
    for field in TOKEN_FIELDS:
        into[field] = into.get(field, 0) + usage[field]


async def test_mixed_workload_adds_up(
    router_factory: RouterFactory, vllm_server: TestServer, vllm: FakeVLLM
) -> None:
    client = await router_factory(vllm_server, API_KEY=f"{KEY},{OTHER_KEY}", TELEMETRY_ENABLED="true")
    seen = await run_workload(client, vllm)
    stats = await wait_stats(client, len(seen))
    await asyncio.sleep(0.05)
    stats = await get_stats(client)
    assert stats["enabled"] is True
    records = {r["request_id"]: r for r in stats["recent"]}
    assert set(records) == set(seen)

    # The aborted stream: recorded as aborted (not an error), with the prompt its client saw and at least
    # the output it saw; its output count is the router's, which read a little further.
    for rid, s in seen.items():
        if s.get("aborted"):
            rec = records[rid]
            assert rec["aborted"] is True and rec["status"] == 499 and rec["error"] is None
            assert (rec["input_tokens"], rec["cached_tokens"]) == (s["input_tokens"], s["cached_tokens"])
            assert s["min_output"] <= rec["output_tokens"] < s["max_output"]
            s["output_tokens"] = rec["output_tokens"]

    totals: dict[str, int] = {}
    per_key: dict[str, dict[str, int]] = {}
    per_route: dict[str, dict[str, int]] = {}
    for rid, s in seen.items():
        assert {f: records[rid][f] for f in TOKEN_FIELDS} == {f: s[f] for f in TOKEN_FIELDS}, rid
        assert records[rid]["key"] == s["key"] and records[rid]["route"] == s["route"]
        add(totals, s)
        add(per_key.setdefault(s["key"], {}), s)
        add(per_route.setdefault(s["route"], {}), s)
    assert totals["input_tokens"] > 0 and totals["output_tokens"] > 0 and totals["cached_tokens"] > 0

    t = stats["totals"]
    assert {f: t[f] for f in TOKEN_FIELDS} == totals
    assert (t["requests"], t["errors"], t["aborted"]) == (len(seen), 2, 1)
    for key, usage in per_key.items():
        assert {f: stats["keys"][key][f] for f in TOKEN_FIELDS} == usage
    for route, usage in per_route.items():
        assert {f: stats["routes"][route][f] for f in TOKEN_FIELDS} == usage
    assert {f: stats["models"]["tiny"][f] for f in TOKEN_FIELDS} == totals
    assert {f: stats["backends"]["default"][f] for f in TOKEN_FIELDS} == totals
    assert stats["models"]["tiny"]["errors"] == 1  # no max_tokens: the backend was chosen, then 400
    assert stats["models"]["(none)"]["errors"] == stats["backends"]["(none)"]["requests"] == 1  # bad JSON
    assert stats["keys"]["key0"]["requests"] + stats["keys"]["key1"]["requests"] == len(seen)
    for summary in (t["duration_ms"], t["ttft_ms"]):
        assert 0 < summary["p50"] <= summary["p95"] and summary["avg"] > 0

    # /metrics counts the same tokens and requests.
    text = await (await client.get("/metrics")).text()
    tokens: dict[str, float] = {}
    requests = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "anthropic_router_tokens_total":
                tokens[s.labels["type"]] = tokens.get(s.labels["type"], 0) + s.value
            if s.name == "anthropic_router_requests_total" and s.labels["route"] not in (
                "health",
                "metrics",
                "stats",
            ):
                requests += s.value
    assert tokens == {"input": totals["input_tokens"], "output": totals["output_tokens"],
                      "cached": totals["cached_tokens"]}  # fmt: skip
    assert requests == len(seen)
    assert KEY not in orjson.dumps(stats).decode() and OTHER_KEY not in orjson.dumps(stats).decode()


async def test_recent_is_newest_first_and_bounded(
    router_factory: RouterFactory, vllm_server: TestServer
) -> None:
    client = await router_factory(vllm_server, TELEMETRY_ENABLED="true", STATS_RECENT="3")
    ids = []
    for _ in range(5):
        resp = await client.post(
            "/v1/messages", json={"model": "m", "max_tokens": 50, "messages": HELLO}, headers=AUTH
        )
        assert resp.status == 200
        ids.append(resp.headers["request-id"])
    stats = await get_stats(client)
    assert [r["request_id"] for r in stats["recent"]] == ids[::-1][:3]
    assert stats["totals"]["requests"] == 5  # the totals keep everything
    assert [r["request_id"] for r in (await get_stats(client, "?recent=1"))["recent"]] == ids[-1:]
    rec = stats["recent"][0]
    assert rec["route"] == "messages" and rec["client_model"] == "m" and rec["model"] == "tiny"
    assert rec["backend"] == "default" and rec["stream"] is False and rec["stop_reason"] == "end_turn"
    assert rec["key"] == "key0" and rec["status"] == 200 and rec["duration_ms"] > 0


async def test_monitoring_requests_are_not_usage(
    router_factory: RouterFactory, vllm_server: TestServer
) -> None:
    router = await router_factory(vllm_server, TELEMETRY_ENABLED="true")
    for _ in range(3):
        await (await router.get("/health")).read()
        await (await router.get("/metrics")).read()
    stats = await get_stats(router)
    assert stats["totals"]["requests"] == 0 and stats["recent"] == []
    assert stats["monitoring"]["health"] >= 3 and stats["monitoring"]["metrics"] == 3


async def test_stats_needs_a_key(router: TestClient) -> None:
    resp = await router.get("/stats")
    assert resp.status == 401
    assert (await resp.json())["error"]["type"] == "authentication_error"
    resp = await router.get("/stats", headers={"x-api-key": "wrong"})
    assert resp.status == 401


async def test_bad_recent_is_400(router: TestClient) -> None:
    resp = await router.get("/stats?recent=-1", headers=AUTH)
    assert resp.status == 400
    assert (await resp.json())["error"]["type"] == "invalid_request_error"


async def test_stats_when_telemetry_is_off(router_factory: RouterFactory, vllm_server: TestServer) -> None:
    client = await router_factory(vllm_server, TELEMETRY_ENABLED="false")
    resp = await client.post(
        "/v1/messages", json={"model": "m", "max_tokens": 5, "messages": HELLO}, headers=AUTH
    )
    assert resp.status == 200
    stats = await get_stats(client)
    assert stats["enabled"] is False and "TELEMETRY_ENABLED" in stats["message"]
    assert "totals" not in stats
