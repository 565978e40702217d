"""Request translation (router/translate_request.py) against real traffic: a history shape vLLM 0.32
answered with a 200, and a replay of every recorded Claude Code request."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from translate_request_helpers import body, sent_tools
from vllm_fixtures import claude_code_files, claude_code_requests, load_exchange

from router.translate_request import to_openai


def test_vllm_accepts_the_history_shape_we_produce() -> None:
    """38_tools_history is a 200 from vLLM 0.32 for the same conversation shape."""
    recorded = load_exchange("38_tools_history")
    assert recorded["status"] == 200
    messages = [
        {"role": "user", "content": "What is the weather in Paris?"},
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "call_1",
                    "name": "get_weather",
                    "input": {"city": "Paris", "unit": "celsius"},
                }
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": '{"temp_c": 21, "sky": "clear"}'},
                {"type": "text", "text": "And in"},
                {"type": "text", "text": "Tokyo?"},
            ],
        },
    ]
    out = to_openai(body(system="You are terse.", messages=messages), "tiny")["messages"]
    sent = recorded["request"]["messages"]
    assert [m["role"] for m in out] == [m["role"] for m in sent]
    assert out[2]["content"] is sent[2]["content"] is None
    assert out[2]["tool_calls"][0]["id"] == sent[2]["tool_calls"][0]["id"]
    assert orjson.loads(out[2]["tool_calls"][0]["function"]["arguments"]) == {
        "city": "Paris",
        "unit": "celsius",
    }
    assert out[3] == sent[3]


def _walk_keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value).union(*(_walk_keys(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_walk_keys(v) for v in value))
    return set()


CLAUDE_CODE = [
    pytest.param(req["body"], id=f"{path.parent.name}/{path.stem}/{i}")
    for path in claude_code_files()
    for i, req in enumerate(claude_code_requests(path))
    if "count_tokens" not in req["path"]
]


def test_claude_code_fixtures_are_present() -> None:
    assert len(CLAUDE_CODE) >= 10


@pytest.mark.parametrize("req", CLAUDE_CODE)
def test_claude_code_requests_translate_sanely(req: dict) -> None:
    out = to_openai(req, "backend-model")
    encoded = orjson.dumps(out)
    assert b"x-anthropic-billing-header" not in encoded
    assert "cache_control" not in _walk_keys(out["messages"]) and "defer_loading" not in _walk_keys(out)
    assert out["messages"][0]["role"] == "system" and out["max_tokens"] == req["max_tokens"]
    assert [m["role"] for m in out["messages"][1:]].count("system") == 0  # folded by default
    deferred = {t["name"] for t in req.get("tools", []) if t.get("defer_loading")}
    referenced = {
        inner["tool_name"]
        for m in req["messages"]
        if isinstance(m["content"], list)
        for b in m["content"]
        if b["type"] == "tool_result" and isinstance(b.get("content"), list)
        for inner in b["content"]
        if inner["type"] == "tool_reference"
    }
    assert set(sent_tools(out)) & deferred == referenced & deferred
    assert "DeferredToolPlaceholder" not in sent_tools(out)
    open_calls: set[str] = set()
    for message in out["messages"]:
        if message["role"] == "assistant":
            assert not open_calls, "tool calls left unanswered before the next assistant turn"
            open_calls = {c["id"] for c in message.get("tool_calls", [])}
        elif message["role"] == "tool":
            open_calls.remove(message["tool_call_id"])  # KeyError: a result without its call
    if "output_config" in req and "format" in req["output_config"]:
        assert out["response_format"]["json_schema"]["schema"] == req["output_config"]["format"]["schema"]
