"""Generated bad input: hypothesis mutates valid Claude Code-like requests (fields dropped or given the
wrong type, random and unknown content blocks, odd roles, huge numbers): thousands through the pure path
the handler runs before any I/O, a few hundred through the router itself. Each is translated or refused
with a 4xx that says what is wrong, never a 5xx of the router's own or a traceback.

The hand-written table of bad input is in tests/test_bad_input_http.py. Generated *backend streams* are
fuzzed in tests/test_transcoder.py (``test_generated_streams_always_give_a_valid_anthropic_stream``) and
tests/test_transcoder_fixtures.py.
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
from conftest import AUTH
from fake_vllm import FakeVLLM
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from router.config import load_settings
from router.errors import RouterError
from router.handlers.chat_completions import _validate
from router.routing import choose_backend, has_openai_image
from router.translate_request import TranslateOptions, has_image, to_openai

FIXTURES = Path(__file__).parent / "fixtures"
JSON = {"Content-Type": "application/json"}


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
