"""Hostile and broken requests through real HTTP: each gets a 4xx in the route's error shape that names
the problem, never a 5xx or a traceback. The table covers each kind of bad input once; generated
mutations of valid requests are in tests/test_bad_input_generated.py.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from conftest import AUTH, RouterFactory
from fake_vllm import FakeVLLM

HELLO = [{"role": "user", "content": "hi"}]
JSON = {"Content-Type": "application/json"}


def body(**fields: Any) -> bytes:
    # json, not orjson: it writes integers of any size, as a hostile client can.
    return json.dumps({"model": "m", "max_tokens": 5, "messages": HELLO, **fields}).encode()


def without(field: str) -> bytes:
    data = {"model": "m", "max_tokens": 5, "messages": HELLO}
    del data[field]
    return orjson.dumps(data)


BAD_MESSAGES = [
    # (body, status, error type, what the message must name)
    (b"{not json", 400, "invalid_request_error", "not valid JSON"),
    (b"", 400, "invalid_request_error", "empty"),
    (b'"just a string"', 400, "invalid_request_error", "JSON object"),
    (b'{"model": "m", "max_tokens": 5, "messages": [}', 400, "invalid_request_error", "not valid JSON"),
    (without("model"), 400, "invalid_request_error", "model"),
    (without("max_tokens"), 400, "invalid_request_error", "max_tokens"),
    (without("messages"), 400, "invalid_request_error", "messages"),
    (body(model=7), 400, "invalid_request_error", "model"),
    (body(max_tokens="5"), 400, "invalid_request_error", "max_tokens"),
    (body(max_tokens=0), 400, "invalid_request_error", "max_tokens"),
    (body(max_tokens=True), 400, "invalid_request_error", "max_tokens"),
    (body(messages="hi"), 400, "invalid_request_error", "messages"),
    (body(messages=[]), 400, "invalid_request_error", "messages"),
    (body(messages=[5]), 400, "invalid_request_error", "messages.0"),
    (body(messages=[{"role": "user"}]), 400, "invalid_request_error", "messages.0.content"),
    (body(messages=[{"role": "user", "content": 5}]), 400, "invalid_request_error", "messages.0.content"),
    (body(messages=[{"role": "robot", "content": "x"}]), 400, "invalid_request_error", "role"),
    (body(messages=[{"role": None, "content": "x"}]), 400, "invalid_request_error", "role"),
    (
        body(messages=[{"role": "user", "content": [{"type": "hologram", "data": "x"}]}]),
        400,
        "invalid_request_error",
        "'hologram'",
    ),
    (
        body(messages=[{"role": "user", "content": [{"text": "no type"}]}]),
        400,
        "invalid_request_error",
        "type",
    ),
    (
        body(messages=[{"role": "user", "content": ["bare string"]}]),
        400,
        "invalid_request_error",
        "content.0",
    ),
    (body(stream="yes"), 400, "invalid_request_error", "stream"),
    (body(temperature="hot"), 400, "invalid_request_error", "temperature"),
    (body(system=5), 400, "invalid_request_error", "system"),
    (body(tools={"name": "x"}), 400, "invalid_request_error", "tools"),
    (body(tools=[{"name": "x"}]), 400, "invalid_request_error", "input_schema"),
    (body(tool_choice="auto"), 400, "invalid_request_error", "tool_choice"),
    (body(stop_sequences="STOP"), 400, "invalid_request_error", "stop_sequences"),
    (body(metadata=[1]), 400, "invalid_request_error", "metadata"),
    # non-UTF-8 bytes, inside a string and outside one
    (b'{"model": "m\xff", "max_tokens": 5, "messages": []}', 400, "invalid_request_error", "UTF-8"),
    (b"\xfe\xff{}", 400, "invalid_request_error", "not valid JSON"),
    # deeply nested: past the parser's limit, and past what the router could send on
    (b"[" * 100_000, 400, "invalid_request_error", "not valid JSON"),
    (b'{"model": "m", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400, "invalid_request_error", "JSON"),
    (
        b'{"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi", "x": '
        + b"[" * 600
        + b"]" * 600
        + b"}]}",
        400,
        "invalid_request_error",
        "nested too deeply",
    ),
    (
        b'{"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], "tools": '
        b'[{"name": "t", "input_schema": ' + b'{"a":' * 260 + b"1" + b"}" * 260 + b"}]}",
        400,
        "invalid_request_error",
        "nested too deeply",
    ),
    # huge numbers: beyond a double, and integers no backend takes
    (b'{"model": "m", "max_tokens": 1e400, "messages": []}', 400, "invalid_request_error", "infinity"),
    (body(max_tokens=10**40), 400, "invalid_request_error", "max_tokens"),
    (body(max_tokens=-(2**63)), 400, "invalid_request_error", "max_tokens"),
    (body(temperature=-1e308, top_k=2.5), 400, "invalid_request_error", "top_k"),
]


@pytest.mark.parametrize(("raw", "status", "etype", "needle"), BAD_MESSAGES)
async def test_bad_messages_requests(
    router: TestClient, vllm: FakeVLLM, raw: bytes, status: int, etype: str, needle: str
) -> None:
    resp = await router.post("/v1/messages", data=raw, headers={**AUTH, **JSON})
    text = await resp.text()
    assert resp.status == status, text
    data = orjson.loads(text)
    assert data == {
        "type": "error",
        "error": {"type": etype, "message": data["error"]["message"]},
        "request_id": resp.headers["request-id"],
    }
    assert needle in data["error"]["message"]
    assert "Traceback" not in text
    assert vllm.requests == []


BAD_CHAT = [
    (b"{not json", "not valid JSON"),
    (b"[]", "JSON object"),
    (orjson.dumps({"model": "m"}), "messages"),
    (orjson.dumps({"model": "m", "messages": "hi"}), "messages"),
    (orjson.dumps({"model": "m", "messages": HELLO, "stream": "yes"}), "stream"),
    (orjson.dumps({"model": "m", "messages": HELLO, "stream_options": []}), "stream_options"),
    (b'{"model": "m\xff", "messages": []}', "UTF-8"),
    (b'{"model": "m", "messages": [], "x": ' + b"[" * 300 + b"]" * 300 + b"}", "nested too deeply"),
    (b'{"model": "m", "messages": [], "temperature": -1e400}', "infinity"),
]


@pytest.mark.parametrize(("raw", "needle"), BAD_CHAT)
async def test_bad_chat_completions_requests(
    router: TestClient, vllm: FakeVLLM, raw: bytes, needle: str
) -> None:
    resp = await router.post("/v1/chat/completions", data=raw, headers={**AUTH, **JSON})
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == 400
    assert needle in error["message"]
    assert vllm.requests == []


@pytest.mark.parametrize(
    ("method", "path", "status", "etype", "needle"),
    [
        ("GET", "/v1/messages", 405, "invalid_request_error", "GET"),
        ("PUT", "/v1/messages", 405, "invalid_request_error", "PUT"),
        ("DELETE", "/v1/chat/completions", 405, "invalid_request_error", "DELETE"),
        ("PATCH", "/v1/messages/count_tokens", 405, "invalid_request_error", "PATCH"),
        ("POST", "/v1/nope", 404, "not_found_error", "/v1/nope"),
        ("GET", "/v2/messages", 404, "not_found_error", "/v2/messages"),
        ("POST", "/v1/messages/", 404, "not_found_error", "/v1/messages/"),
        ("GET", "/%2e%2e/etc/passwd", 404, "not_found_error", "no route"),
    ],
)
async def test_wrong_method_and_unknown_path(
    router: TestClient, method: str, path: str, status: int, etype: str, needle: str
) -> None:
    resp = await router.request(method, path, headers=AUTH, data=body())
    assert resp.status == status
    data = await resp.json()
    if path == "/v1/chat/completions":  # the OpenAI route answers in OpenAI's shape
        assert data["error"]["code"] == status
    else:
        assert data["type"] == "error"
    assert data["error"]["type"] == etype
    assert needle in data["error"]["message"]


async def test_unknown_path_without_a_key_is_401_not_a_route_map(router: TestClient) -> None:
    resp = await router.get("/v1/secret-admin")
    assert resp.status == 401
    assert (await resp.json())["error"]["type"] == "authentication_error"


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/chat/completions", "/v1/messages/count_tokens"])
async def test_body_over_max_body_mb_is_413(
    router_factory: RouterFactory, vllm_server, vllm: FakeVLLM, path: str
) -> None:
    client = await router_factory(vllm_server, MAX_BODY_MB="0.01")  # 10 KiB
    big = body(messages=[{"role": "user", "content": "x" * 20_000}])
    resp = await client.post(path, data=big, headers={**AUTH, **JSON})
    assert resp.status == 413
    data = await resp.json()
    error = data["error"]
    assert error["type"] == "request_too_large" and "MAX_BODY_MB" in error["message"]
    # Just under the limit is fine.
    small = body(messages=[{"role": "user", "content": "x" * 9_000}])
    resp = await client.post(path, data=small, headers={**AUTH, **JSON})
    assert resp.status == 200, await resp.text()
    assert len(vllm.requests) + len(vllm.tokenize_requests) >= 1


async def test_huge_but_valid_max_tokens_is_capped_not_refused(router: TestClient, vllm: FakeVLLM) -> None:
    resp = await router.post("/v1/messages", data=body(max_tokens=2**64 - 1), headers={**AUTH, **JSON})
    assert resp.status == 200, await resp.text()
    assert vllm.requests[0]["max_tokens"] == 8192
