"""Request translation (router/translate_request.py): tools (server tools left out, deferred ones sent
once referenced), tool_choice, parallel tool use, and an output that is deterministic."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from translate_request_helpers import WEATHER, body, rejects, sent_tools, tool

from router.translate_request import to_openai


def test_tools_become_functions_without_cache_control() -> None:
    out = to_openai(body(tools=[{**WEATHER, "cache_control": {"type": "ephemeral"}}]), "b")
    assert out["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Get the weather",
                "parameters": WEATHER["input_schema"],
            },
        }
    ]
    assert "tool_choice" not in out


def test_server_tools_are_left_out_and_empty_tools_accepted() -> None:
    server = [
        {"type": "web_search_20250305", "name": "web_search"},
        {"type": "bash_20250124", "name": "bash"},
    ]
    out = to_openai(body(tools=[*server, {**tool("Read"), "type": "custom"}]), "b")
    assert sent_tools(out) == ["Read"]
    assert "tools" not in to_openai(body(tools=[]), "b")
    assert "tools" not in to_openai(body(tools=server, tool_choice={"type": "any"}), "b")


@pytest.mark.parametrize(
    ("tools", "field"),
    [
        ("x", "tools"),
        (["x"], "tools.0"),
        ([{"input_schema": {}}], "tools.0.name"),
        ([{"name": "a"}], "tools.0.input_schema"),
        ([{"name": "a", "input_schema": {}, "description": 1}], "tools.0.description"),
        ([{"name": "a", "input_schema": {}, "type": 3}], "tools.0.type"),
    ],
)
def test_bad_tools_name_the_field(tools: Any, field: str) -> None:
    rejects(body(tools=tools), field)


def test_deferred_tools_are_sent_only_once_a_tool_reference_loads_them() -> None:
    tools = [tool("Bash"), tool("WebFetch", defer_loading=True), tool("NotebookEdit", defer_loading=True)]
    assert sent_tools(to_openai(body(tools=tools), "b")) == ["Bash"]
    messages = [
        {"role": "user", "content": "find"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "q", "name": "ToolSearch", "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "q",
                    "content": [{"type": "tool_reference", "tool_name": "WebFetch"}],
                }
            ],
        },
    ]
    assert sent_tools(to_openai(body(tools=tools, messages=messages), "b")) == ["Bash", "WebFetch"]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "any"}, "required"),
        ({"type": "none"}, "none"),
        ({"type": "tool", "name": "get_weather"}, {"type": "function", "function": {"name": "get_weather"}}),
    ],
)
def test_tool_choice_mapping(choice: dict, expected: Any) -> None:
    out = to_openai(body(tools=[WEATHER], tool_choice=choice), "b")
    assert out["tool_choice"] == expected
    assert "parallel_tool_calls" not in out


def test_disable_parallel_tool_use_and_no_tool_choice_without_tools() -> None:
    out = to_openai(
        body(tools=[WEATHER], tool_choice={"type": "auto", "disable_parallel_tool_use": True}), "b"
    )
    assert out["parallel_tool_calls"] is False
    bare = to_openai(body(tool_choice={"type": "any", "disable_parallel_tool_use": True}), "b")
    assert "tool_choice" not in bare and "parallel_tool_calls" not in bare


def test_bad_tool_choice_is_400() -> None:
    rejects(body(tools=[WEATHER], tool_choice="auto"), "tool_choice")
    rejects(body(tools=[WEATHER], tool_choice={"type": "maybe"}), "tool_choice.type")
    rejects(body(tools=[WEATHER], tool_choice={"type": "tool"}), "tool_choice.name")
    rejects(body(tools=[WEATHER], tool_choice={"type": "tool", "name": "nope"}), "tool_choice.name", "nope")


def test_named_tool_choice_loads_a_deferred_tool() -> None:
    out = to_openai(
        body(tools=[tool("Late", defer_loading=True)], tool_choice={"type": "tool", "name": "Late"}), "b"
    )
    assert sent_tools(out) == ["Late"]


def test_output_is_deterministic_and_input_untouched() -> None:
    req = body(
        system=[{"type": "text", "text": "S", "cache_control": {"type": "ephemeral"}}], tools=[WEATHER]
    )
    snapshot = copy.deepcopy(req)
    first = orjson.dumps(to_openai(req, "b"))
    assert orjson.dumps(to_openai(req, "b")) == first
    assert req == snapshot
