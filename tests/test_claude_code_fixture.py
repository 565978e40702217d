"""Requests the real Claude Code CLI sent (recorded by ``make e2e``) replayed through the router.

``tests/fixtures/claude-code-<version>.json`` holds, per pinned CLI version, the first request of a
tool loop, the request carrying the tool_result, and the one echoing a thinking block (the CLI's prose
replaced by same-length placeholders; see e2e/record_fixture.py). They pin the router to what the
client really sends (24 or 12 tools of real schemas, ``thinking: adaptive``, ``context_management``,
``output_config``, mid-conversation ``role: system``, cache_control everywhere, signatures) without
needing the CLI itself.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from anthropic_stream_check import check_stream
from fake_vllm import FakeVLLM, Turn, count_prompt_tokens

from router.app import create_app
from router.config import load_settings

FIXTURES = sorted((Path(__file__).parent / "fixtures").glob("claude-code-*.json"))
KEY = "fixture-key"
MODEL = "e2e-model"
SKIPPED_HEADERS = {"accept-encoding", "connection", "content-type"}
ITEMS = [
    (path.stem.removeprefix("claude-code-"), item)
    for path in FIXTURES
    for item in json.loads(path.read_text())
]


def _ids() -> list[str]:
    return [f"{version}-{item['name']}" for version, item in ITEMS]


@pytest.fixture(params=ITEMS, ids=_ids())
def item(request: pytest.FixtureRequest) -> dict:
    return request.param[1]


@pytest.fixture
async def routed(aiohttp_server, aiohttp_client):  # type: ignore[no-untyped-def]
    fake = FakeVLLM(model=MODEL, max_model_len=1_000_000)
    server = await aiohttp_server(fake.app)
    env = {
        "VLLM_URL": str(server.make_url("")).rstrip("/"),
        "VLLM_MODEL": MODEL,
        "API_KEY": KEY,
        "LOG_LEVEL": "warning",
    }
    client = await aiohttp_client(create_app(load_settings(env, env_file=None)))
    for _ in range(200):  # the router answers 529 until its first health check saw the backend
        resp = await client.get("/health")
        await resp.read()
        if resp.status == 200:
            break
        await asyncio.sleep(0.01)
    return fake, client


def _headers(item: dict) -> dict[str, str]:
    headers = {k: v for k, v in item["headers"].items() if k.lower() not in SKIPPED_HEADERS}
    return headers | {"x-api-key": KEY, "content-type": "application/json"}


def _texts(content: object) -> list[str]:
    if isinstance(content, str):
        return [content]
    return [b["text"] for b in content or [] if isinstance(b, dict) and b.get("type") == "text"]


def _recorded_texts(body: dict) -> list[str]:
    """Every prose text the CLI sent (system blocks, user/system turns, tool results)."""
    out = [b["text"] for b in body["system"] if not b["text"].startswith("x-anthropic-billing-header")]
    for message in body["messages"]:
        if message["role"] in ("user", "system"):
            out += _texts(message["content"])
            for block in message["content"] if isinstance(message["content"], list) else []:
                if block.get("type") == "tool_result":
                    out += _texts(block["content"])
    return [t for t in out if t.strip()]


def _sent_text(sent: dict) -> str:
    return "\n".join(t for m in sent["messages"] for t in _texts(m.get("content")))


def test_fixtures_are_recorded() -> None:
    versions = {version for version, _ in ITEMS}
    assert {"2.1.331", "2.1.197"} <= versions
    names = {(version, item["name"]) for version, item in ITEMS}
    for version in ("2.1.331", "2.1.197"):
        assert {n for v, n in names if v == version} >= {
            "tool-loop-first",
            "tool-loop-result",
            "thinking-echo",
        }
    assert ("2.1.331", "toolsearch-loaded") in names, "the deferred-tool flow of the current CLI"


async def test_replayed_request_streams(routed, item: dict) -> None:  # type: ignore[no-untyped-def]
    fake, client = routed
    fake.script(Turn(text="Done."))
    body = item["body"]
    resp = await client.post(item["path"], data=json.dumps(body), headers=_headers(item))
    raw = await resp.read()
    assert resp.status == 200, raw[:500]
    check_stream(raw)

    sent = fake.requests[-1]
    assert sent["stream"] is True and sent["stream_options"]["include_usage"] is True
    assert sent.get("max_tokens", sent.get("max_completion_tokens")) == body["max_tokens"]
    loaded = {
        ref["tool_name"]
        for m in body["messages"]
        if isinstance(m["content"], list)
        for b in m["content"]
        if b.get("type") == "tool_result" and isinstance(b.get("content"), list)
        for ref in b["content"]
        if ref.get("type") == "tool_reference"
    }
    callable_tools = {t["name"] for t in body["tools"] if not t.get("defer_loading") or t["name"] in loaded}
    assert {t["function"]["name"] for t in sent["tools"]} == callable_tools
    by_name = {t["name"]: t for t in body["tools"]}
    for tool in sent["tools"]:
        schema, recorded = tool["function"]["parameters"], by_name[tool["function"]["name"]]["input_schema"]
        assert schema.get("properties", {}).keys() == recorded.get("properties", {}).keys()
        assert schema.get("required") == recorded.get("required")

    roles = [m["role"] for m in sent["messages"]]
    assert "system" not in roles[1:], f"mid-conversation system turns are folded: {roles}"
    text = _sent_text(sent)
    assert "x-anthropic-billing-header" not in text, (
        "the per-request billing block would defeat prefix caching"
    )
    for recorded in _recorded_texts(body):
        assert recorded in text, f"text lost on the way to the backend: {recorded[:80]!r}"


async def test_replayed_history_keeps_ids_and_thinking(routed, item: dict) -> None:  # type: ignore[no-untyped-def]
    fake, client = routed
    body = item["body"]
    resp = await client.post(item["path"], data=json.dumps(body), headers=_headers(item))
    assert resp.status == 200
    await resp.read()
    sent = fake.requests[-1]["messages"]
    recorded_uses = [b for m in body["messages"] if m["role"] == "assistant" for b in m["content"]]
    tool_uses = [b for b in recorded_uses if b["type"] == "tool_use"]
    calls = [c for m in sent if m["role"] == "assistant" for c in m.get("tool_calls", [])]
    results = [m for m in sent if m["role"] == "tool"]
    assert len(calls) == len(tool_uses) == len(results)
    for use, call, result in zip(tool_uses, calls, results, strict=True):
        assert call["function"]["name"] == use["name"]
        assert json.loads(call["function"]["arguments"]) == use["input"]
        assert result["tool_call_id"] == call["id"]
    thinking = [b["thinking"] for b in recorded_uses if b["type"] == "thinking"]
    reasoning = [m["reasoning"] for m in sent if m["role"] == "assistant" and m.get("reasoning")]
    assert reasoning == thinking, "thinking blocks go back to vLLM as `reasoning`"


async def test_replayed_request_without_streaming(routed, item: dict) -> None:  # type: ignore[no-untyped-def]
    """Claude Code re-sends a turn without ``stream`` after a failed stream: same request, JSON answer."""
    fake, client = routed
    fake.script(Turn(text="Done."))
    body = {k: v for k, v in item["body"].items() if k != "stream"}
    resp = await client.post(item["path"], data=json.dumps(body), headers=_headers(item))
    answer = await resp.json()
    assert resp.status == 200, answer
    assert answer["type"] == "message" and answer["content"] == [{"type": "text", "text": "Done."}]
    assert answer["usage"]["input_tokens"] == count_prompt_tokens(
        fake.requests[-1]["messages"], fake.requests[-1]["tools"]
    )
    assert not fake.requests[-1].get("stream")


async def test_count_tokens_matches_generation(routed, item: dict) -> None:  # type: ignore[no-untyped-def]
    """count_tokens on the CLI's request equals the prompt size vLLM reports when generating it."""
    fake, client = routed
    body = item["body"]
    counted = {k: body[k] for k in ("model", "messages", "tools", "system")}
    resp = await client.post(
        "/v1/messages/count_tokens?beta=true", data=json.dumps(counted), headers=_headers(item)
    )
    answer = await resp.json()
    assert resp.status == 200, answer
    resp = await client.post(item["path"], data=json.dumps(body), headers=_headers(item))
    await resp.read()
    sent = fake.requests[-1]
    assert answer["input_tokens"] == count_prompt_tokens(sent["messages"], sent["tools"]) > 1000
