"""Hostile and broken requests: each gets a 4xx in the route's error shape that names the problem, never a
5xx or a traceback.

The table covers each kind of bad input once, through real HTTP. Then hypothesis mutates valid Claude
Code-like requests (fields dropped or given the wrong type, random and unknown content blocks, odd
roles, huge numbers): thousands through the pure path the handler runs before any I/O, a few hundred
through the router itself. Generated *backend streams* are fuzzed in tests/test_transcoder.py
(``test_generated_streams_always_give_a_valid_anthropic_stream``) and tests/test_transcoder_fixtures.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from aiohttp.typedefs import Handler
from anthropic_stream_check import ERROR_TYPES, check_stream
from conftest import AUTH, RouterFactory
from fake_vllm import FakeVLLM
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from router.config import load_settings
from router.errors import RouterError
from router.handlers.chat_completions import _validate
from router.routing import choose_backend, has_openai_image
from router.translate_request import TranslateOptions, has_image, to_openai

FIXTURES = Path(__file__).parent / "fixtures"
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


# --- generated requests ---------------------------------------------------------------------------------


def _shrink(value: Any) -> Any:
    """A fixture body made small enough to mutate quickly: long strings cut, three tools kept."""
    if isinstance(value, str):
        return value[:120]
    if isinstance(value, list):
        return [_shrink(v) for v in value]
    if isinstance(value, dict):
        return {k: _shrink(v) for k, v in value.items()}
    return value


def _bases() -> list[dict]:
    bases = []
    for name in ("claude-code-2.1.331.json", "claude-code-2.1.197.json"):
        for exchange in json.loads((FIXTURES / name).read_text()):
            b = exchange["body"]
            bases.append(_shrink({**b, "tools": b.get("tools", [])[:3]}))
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVQI12P4z8AAAAMBAQAY3Y2wAAAAAElFTkSuQmCC"
    bases.append(
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "stream": False,
            "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
            "temperature": 0.5,
            "top_p": 0.9,
            "top_k": 40,
            "stop_sequences": ["STOP"],
            "metadata": {"user_id": "u1"},
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
            "tools": [{"name": "get_weather", "description": "w", "input_schema": {"type": "object"}}],
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this?"},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": png},
                        },
                        {"type": "document", "source": {"type": "text", "data": "doc"}, "title": "t"},
                    ],
                },
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                        {"type": "redacted_thinking", "data": "xx"},
                        {
                            "type": "tool_use",
                            "id": "toolu_1",
                            "name": "get_weather",
                            "input": {"city": "Paris"},
                        },
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_1",
                            "is_error": False,
                            "content": [
                                {"type": "text", "text": "sunny"},
                                {
                                    "type": "image",
                                    "source": {"type": "url", "url": "https://example.com/a.png"},
                                },
                            ],
                        }
                    ],
                },
                {"role": "assistant", "content": "The weather is"},
            ],
        }
    )
    return bases


BASES = _bases()
BLOCK_TYPES = [
    "text",
    "image",
    "document",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
    "server_tool_use",
    "web_search_tool_result",
    "container_upload",
    "tool_reference",
    "search_result",
    "hologram",
    "",
    "TEXT",
]
# What orjson can produce from request bytes: 64-bit integers (larger ones parse as floats) and finite floats.
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.sampled_from([0, -1, 1, 2**31, 2**63 - 1, 2**64 - 1, 1e308, -1e308, 0.5, 1e-300]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(
        ["", "user", "assistant", "system", "tool", "developer", "text", "base64", "url", "\x00"]
    ),
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
_field_names = st.sampled_from(
    [
        "type",
        "text",
        "source",
        "id",
        "name",
        "input",
        "content",
        "tool_use_id",
        "is_error",
        "thinking",
        "signature",
        "data",
        "media_type",
        "url",
        "title",
        "tool_name",
        "cache_control",
        "citations",
    ]
)
_blocks = st.builds(
    lambda kind, extra: {"type": kind, **extra},
    st.sampled_from(BLOCK_TYPES),
    st.dictionaries(_field_names, _json, max_size=4),
)


def _paths(value: Any, path: tuple = ()) -> Iterator[tuple]:
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*path, i))


def _get(value: Any, path: tuple) -> Any:
    for step in path:
        value = value[step]
    return value


@st.composite
def mutated_requests(draw: st.DrawFn) -> dict:
    """A valid Claude Code-like request with one to four random mutations, as orjson would parse it."""
    req = orjson.loads(orjson.dumps(draw(st.sampled_from(BASES))))
    for _ in range(draw(st.integers(1, 4))):
        paths = list(_paths(req))
        path = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(["drop", "replace", "block", "retype", "empty", "insert", "wrap"]))
        if not path:
            if op == "drop":
                continue
            key = draw(
                st.sampled_from(
                    [
                        "model",
                        "max_tokens",
                        "messages",
                        "stream",
                        "system",
                        "tools",
                        "tool_choice",
                        "thinking",
                        "temperature",
                        "metadata",
                        "top_k",
                        "stop_sequences",
                        "output_config",
                    ]
                )
            )
            req[key] = draw(_json)
            continue
        parent, last = _get(req, path[:-1]), path[-1]
        current = parent[last]
        if op == "drop":
            del parent[last]
        elif op == "replace":
            parent[last] = draw(_json)
        elif op == "block":
            parent[last] = draw(_blocks)
        elif op == "retype" and isinstance(current, dict):
            current["type"] = draw(st.sampled_from(BLOCK_TYPES))
        elif op == "empty" and isinstance(current, list | dict | str):
            parent[last] = type(current)()
        elif op == "insert" and isinstance(current, list):
            current.insert(draw(st.integers(0, len(current))), draw(_blocks | _json))
        elif op == "wrap":
            parent[last] = [current]
    return orjson.loads(orjson.dumps(req))


SETTINGS = load_settings({"API_KEY": "k", "VLLM_URL": "http://127.0.0.1:9"}, env_file=None)
OPTIONS = [TranslateOptions(), TranslateOptions(system_messages="keep", allow_image_urls=False)]
PURE_EXAMPLES = 2000


@settings(max_examples=PURE_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_requests(), st.sampled_from(OPTIONS))
def test_mutated_requests_never_fail_in_the_router(req: dict, options: TranslateOptions) -> None:
    """What the handlers run before any I/O: a mutated body is translated or refused with a 400 that
    says what is wrong, never an exception of any other kind."""
    size = len(orjson.dumps(req))
    for image in (has_image(req), has_openai_image(req)):
        choose_backend(SETTINGS, req, has_image=image, body_size=size)
    try:
        _validate(req)
    except RouterError as err:
        assert (err.status, err.type) == (400, "invalid_request_error") and err.message
    try:
        out = to_openai(req, "tiny", options)
    except RouterError as err:
        assert (err.status, err.type) == (400, "invalid_request_error")
        assert isinstance(err.message, str) and err.message
        return
    payload = orjson.loads(orjson.dumps(out))  # what is sent must serialise
    assert payload["model"] == "tiny" and payload["messages"]
    assert isinstance(payload["max_tokens"], int) and payload["max_tokens"] >= 1


HTTP_EXAMPLES = 400
BACKEND_5XX = web.AppKey("backend_5xx", list)


@web.middleware
async def _note_backend_5xx(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Counts the fake backend's own 5xx answers, crashes included: the OpenAI route passes a body
    through as it came, and a 5xx the backend chose (or suffered) is not the router's."""
    try:
        response = await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        request.app[BACKEND_5XX].append(request.path)
        raise
    if response.status >= 500:
        request.app[BACKEND_5XX].append(request.path)
    return response


@pytest.fixture
def vllm() -> FakeVLLM:
    fake = FakeVLLM()
    fake.app[BACKEND_5XX] = []
    fake.app.middlewares.insert(0, _note_backend_5xx)
    return fake


@settings(
    max_examples=HTTP_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(req=mutated_requests(), openai=st.booleans())
async def test_mutated_requests_through_http_never_get_a_5xx(
    router: TestClient, vllm: FakeVLLM, req: dict, openai: bool
) -> None:
    """The same requests through the router to FakeVLLM (which validates like vLLM), on both routes: any
    error is a well-formed 4xx, or a 5xx that came from the backend; anything accepted comes back as a
    valid message or stream."""
    path = "/v1/chat/completions" if openai else "/v1/messages"
    backend_5xx = len(vllm.app[BACKEND_5XX])
    resp = await router.post(path, data=orjson.dumps(req), headers={**AUTH, **JSON})
    raw = await resp.read()
    event(f"{path} {resp.status}")
    assert resp.status < 500 or len(vllm.app[BACKEND_5XX]) > backend_5xx, raw
    if resp.status != 200:
        data = orjson.loads(raw)
        if openai:
            assert data["error"]["code"] == resp.status, data
        else:
            assert data["type"] == "error" and data["error"]["type"] in ERROR_TYPES, data
        assert data["error"]["message"] and "Traceback" not in data["error"]["message"]
    elif openai:
        assert raw.endswith(b"data: [DONE]\n\n") if req.get("stream") else orjson.loads(raw)["choices"]
    elif resp.headers["Content-Type"].startswith("text/event-stream"):
        check_stream(raw)
    else:
        assert orjson.loads(raw)["type"] == "message"
