"""POST /v1/messages/count_tokens through real HTTP: exact counts from the backend's /tokenize that equal
what /v1/messages then reports, the estimate for servers without /tokenize, and 5xx (never a fake 0)
when the backend cannot count."""

from __future__ import annotations

import asyncio
import logging
import math
import socket
from collections.abc import Awaitable, Callable

import anthropic
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from conftest import AUTH, RouterFactory
from fake_vllm import FakeVLLM, count_prompt_tokens

from router.handlers.count_tokens import estimate
from router.translate_request import to_openai

PROMPT_FIELDS = (
    "messages",
    "tools",
    "chat_template_kwargs",
    "add_generation_prompt",
    "continue_final_message",
)
TOOLS = [
    {
        "name": "get_weather",
        "description": "Current weather for a city",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
            "required": ["city"],
        },
    },
    {
        "name": "get_time",
        "description": "Time in a zone",
        "input_schema": {"type": "object", "properties": {}},
    },
]
HISTORY = [
    {"role": "user", "content": "What is the weather in Paris?"},
    {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
        ],
    },
    {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": "toolu_01",
                "content": [{"type": "text", "text": "18 C, sunny"}],
            },
            {"type": "text", "text": "And in Tokyo?"},
        ],
    },
]
CASES = {
    "plain": {"messages": [{"role": "user", "content": "hello"}]},
    "system": {"system": "You are terse.", "messages": [{"role": "user", "content": "hello"}]},
    "system_blocks": {
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "hi"}],
    },
    "tools": {"tools": TOOLS, "messages": [{"role": "user", "content": "weather?"}]},
    "tool_results": {"system": "Use tools.", "tools": TOOLS, "messages": HISTORY},
    "thinking": {
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "messages": [{"role": "user", "content": "think first"}],
    },
}


async def _ok(_request: web.Request) -> web.Response:
    return web.Response()


def prompt_of(body: dict) -> dict:
    return {k: body[k] for k in PROMPT_FIELDS if k in body}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_count_equals_messages_input_tokens(
    sdk: anthropic.AsyncAnthropic, vllm: FakeVLLM, case: str
) -> None:
    request = {"model": "claude-sonnet-4-5", **CASES[case]}
    counted = await sdk.messages.count_tokens(**request)
    message = await sdk.messages.create(max_tokens=64, **request)
    assert counted.input_tokens == message.usage.input_tokens + (message.usage.cache_read_input_tokens or 0)
    assert counted.input_tokens > 0
    # The same rendering inputs reached /tokenize as reached the chat endpoint, so a real vLLM agrees too.
    tokenized, generated = vllm.tokenize_requests[-1], vllm.requests[-1]
    assert tokenized["model"] == generated["model"] == "tiny"
    assert prompt_of(tokenized) == {"add_generation_prompt": True, **prompt_of(generated)}


async def test_streamed_usage_matches_count_too(sdk: anthropic.AsyncAnthropic) -> None:
    request = {"model": "m", **CASES["tool_results"]}
    counted = await sdk.messages.count_tokens(**request)
    async with sdk.messages.stream(max_tokens=64, **request) as stream:
        final = await stream.get_final_message()
    assert counted.input_tokens == final.usage.input_tokens


async def test_system_and_tools_are_counted(sdk: anthropic.AsyncAnthropic) -> None:
    bare = await sdk.messages.count_tokens(model="m", messages=[{"role": "user", "content": "weather?"}])
    with_tools = await sdk.messages.count_tokens(model="m", messages=[{"role": "user", "content": "weather?"}],
                                                 tools=TOOLS)  # fmt: skip
    with_system = await sdk.messages.count_tokens(
        model="m", system="A long system prompt " * 20, messages=[{"role": "user", "content": "weather?"}]
    )
    assert with_tools.input_tokens > bare.input_tokens + 30
    assert with_system.input_tokens > bare.input_tokens + 60


async def test_beta_query_and_thinking_kwargs(router: TestClient, vllm: FakeVLLM) -> None:
    body = {"model": "m", **CASES["thinking"]}
    resp = await router.post("/v1/messages/count_tokens?beta=true", json=body, headers=AUTH)
    assert resp.status == 200, await resp.text()
    assert resp.headers["x-router-token-count"] == "exact"
    sent = vllm.tokenize_requests[-1]
    assert sent["chat_template_kwargs"] == {"enable_thinking": True}
    assert (await resp.json())["input_tokens"] == count_prompt_tokens(sent["messages"])


async def test_answer_is_the_backend_count(router: TestClient, vllm: FakeVLLM) -> None:
    resp = await router.post("/v1/messages/count_tokens", json={"model": "m", **CASES["tools"]}, headers=AUTH)
    answer = await resp.json()
    assert answer == {"input_tokens": answer["input_tokens"]}  # nothing else, in Anthropic's shape
    sent = vllm.tokenize_requests[-1]
    assert answer["input_tokens"] == count_prompt_tokens(sent["messages"], sent["tools"])


async def test_prefill_renders_like_generation(router: TestClient, vllm: FakeVLLM) -> None:
    messages = [{"role": "user", "content": "Write JSON"}, {"role": "assistant", "content": '{"a":'}]
    resp = await router.post(
        "/v1/messages/count_tokens", json={"model": "m", "messages": messages}, headers=AUTH
    )
    assert resp.status == 200
    sent = vllm.tokenize_requests[-1]
    assert sent["add_generation_prompt"] is False and sent["continue_final_message"] is True


async def test_ignores_max_tokens_and_stream(router: TestClient, vllm: FakeVLLM) -> None:
    body = {"model": "m", "max_tokens": 0, "stream": True, **CASES["plain"]}
    resp = await router.post("/v1/messages/count_tokens", json=body, headers=AUTH)
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "application/json"
    assert "stream" not in vllm.tokenize_requests[-1] and "max_tokens" not in vllm.tokenize_requests[-1]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"model": "m"}', "messages"),
        (b'{"model": "m", "messages": []}', "messages"),
        (b'{"messages": [{"role": "user", "content": "x"}]}', "model"),
    ],
)
async def test_bad_requests_are_400(router: TestClient, vllm: FakeVLLM, body: bytes, needle: str) -> None:
    resp = await router.post(
        "/v1/messages/count_tokens", data=body, headers={**AUTH, "Content-Type": "application/json"}
    )
    data = await resp.json()
    assert resp.status == 400
    assert data["type"] == "error" and data["error"]["type"] == "invalid_request_error"
    assert needle in data["error"]["message"]
    assert vllm.tokenize_requests == []


async def test_key_required(router: TestClient, vllm: FakeVLLM) -> None:
    resp = await router.post("/v1/messages/count_tokens", json={"model": "m", **CASES["plain"]})
    assert resp.status == 401
    assert (await resp.json())["error"]["type"] == "authentication_error"
    assert vllm.tokenize_requests == []


# --- backends that cannot count -------------------------------------------------------------------


class OtherServer:
    """An OpenAI-compatible server that is not vLLM: /tokenize missing, or answering what it is told."""

    def __init__(self, tokenize: tuple[int, bytes] | None = None) -> None:
        self.tokenize = tokenize
        self.tokenize_calls = 0
        self.app = web.Application()
        self.app.router.add_get("/health", _ok)
        self.app.router.add_get("/v1/models", self._models)
        if tokenize is not None:
            self.app.router.add_post("/tokenize", self._tokenize)

    async def _models(self, _request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "other", "object": "model"}]})

    async def _tokenize(self, request: web.Request) -> web.Response:
        await request.read()
        self.tokenize_calls += 1
        assert self.tokenize is not None
        status, body = self.tokenize
        return web.Response(status=status, body=body, content_type="application/json")


Start = Callable[[OtherServer], Awaitable[TestClient]]


@pytest.fixture
def start_other(aiohttp_server: Callable[..., Awaitable[TestServer]], router_factory: RouterFactory) -> Start:
    async def go(other: OtherServer) -> TestClient:
        return await router_factory(await aiohttp_server(other.app))

    return go


async def count(client: TestClient, body: dict) -> tuple[int, dict, str | None]:
    resp = await client.post("/v1/messages/count_tokens", json=body, headers=AUTH)
    return resp.status, await resp.json(), resp.headers.get("x-router-token-count")


@pytest.mark.parametrize(
    "tokenize",
    [
        None,
        (404, b'{"detail":"Not Found"}'),
        (405, b'{"detail":"Method Not Allowed"}'),
        (200, b'{"tokens":[1,2]}'),
    ],
    ids=["no-route", "fastapi-404", "405", "no-count"],
)
async def test_estimate_without_tokenize(
    start_other: Start, caplog: pytest.LogCaptureFixture, tokenize: tuple[int, bytes] | None
) -> None:
    client = await start_other(OtherServer(tokenize))
    body = {"model": "m", "system": "Be brief.", "tools": TOOLS, "messages": HISTORY}
    with caplog.at_level(logging.WARNING, logger="router.count_tokens"):
        status, answer, how = await count(client, body)
        again = await count(client, {"model": "m", "messages": [{"role": "user", "content": "x"}]})
    assert status == 200 and how == "estimated"
    # The documented estimate: 4 characters of the translated messages + tools per token, rounded up.
    translated = to_openai({**body, "max_tokens": 1}, "other")
    expected = math.ceil(len(orjson.dumps([translated["messages"], translated["tools"]])) / 4)
    assert answer == {"input_tokens": expected}
    assert again[0] == 200 and again[1]["input_tokens"] >= 1
    warnings = [r for r in caplog.records if "estimate" in r.getMessage()]
    assert len(warnings) == 1 and "default" in warnings[0].getMessage()


def test_estimate_is_never_zero() -> None:
    assert estimate({"messages": [], "tools": None}) >= 1
    assert estimate({"messages": [{"role": "user", "content": "x" * 400}]}) == math.ceil(
        len(orjson.dumps([[{"role": "user", "content": "x" * 400}], None])) / 4
    )


@pytest.mark.parametrize(
    ("status", "body", "want_status", "want_type"),
    [
        (500, b'{"error":{"message":"boom","type":"InternalServerError","code":500}}', 502, "api_error"),
        (502, b"<html>bad gateway</html>", 502, "api_error"),
        (503, b'{"error":{"message":"engine dead","type":"ServiceUnavailableError","code":503}}', 529,
         "overloaded_error"),
        (404, b'{"error":{"message":"The model `x` does not exist.","type":"NotFoundError","param":"model",'
              b'"code":404}}', 404, "not_found_error"),
        (200, b"not json", 502, "api_error"),
    ],
    ids=["500", "502-html", "503", "vllm-404", "garbage"],
)  # fmt: skip
async def test_backend_failure_is_an_error_never_zero(
    start_other: Start, status: int, body: bytes, want_status: int, want_type: str
) -> None:
    other = OtherServer((status, body))
    client = await start_other(other)
    got_status, answer, _ = await count(client, {"model": "m", **CASES["plain"]})
    assert other.tokenize_calls == 1
    assert (got_status, answer["type"], answer["error"]["type"]) == (want_status, "error", want_type)
    assert "input_tokens" not in answer


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_backend_down_is_5xx(router_factory: RouterFactory, vllm_server: TestServer) -> None:
    client = await router_factory(vllm_server)
    await vllm_server.close()
    for _ in range(2):  # before the health monitor noticed (connection refused), and after
        status, answer, _ = await count(client, {"model": "m", **CASES["plain"]})
        assert status in (502, 529), answer
        assert answer["error"]["type"] == ("api_error" if status == 502 else "overloaded_error")
        await asyncio.sleep(0.3)


async def test_backend_starting_is_529(router_factory: RouterFactory) -> None:
    client = await router_factory(f"http://127.0.0.1:{unused_port()}", ready=False)
    status, answer, _ = await count(client, {"model": "m", **CASES["plain"]})
    assert (status, answer["error"]["type"]) == (529, "overloaded_error")
