"""Request translation (router/translate_request.py): top-level fields, system placement, tools, and a
replay of real Claude Code requests."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from vllm_fixtures import claude_code_files, claude_code_requests, load_exchange

from router.errors import RouterError
from router.translate_request import TranslateOptions, to_openai

WEATHER = {
    "name": "get_weather",
    "description": "Get the weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def body(**fields: Any) -> dict:
    base: dict[str, Any] = {
        "model": "claude-x",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
    }
    base.update(fields)
    return base


def rejects(req: Any, *fragments: str) -> None:
    with pytest.raises(RouterError) as info:
        to_openai(req, "backend")
    assert info.value.status == 400 and info.value.type == "invalid_request_error"
    for fragment in fragments:
        assert fragment in info.value.message


def tool(name: str, **extra: Any) -> dict:
    return {"name": name, "description": f"{name} tool", "input_schema": {"type": "object"}, **extra}


def sent_tools(out: dict) -> list[str]:
    return [t["function"]["name"] for t in out.get("tools", [])]


# --- required fields and scalars ------------------------------------------------------------------


def test_minimal_request_uses_backend_model_and_keeps_max_tokens() -> None:
    out = to_openai(body(), "qwen-backend")
    assert out == {
        "model": "qwen-backend",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 100,
    }


@pytest.mark.parametrize(
    ("req", "field"),
    [
        ([], "request body"),
        (body(model=None), "model"),
        (body(model=3), "model"),
        (body(max_tokens=None), "max_tokens"),
        (body(max_tokens=0), "max_tokens"),
        (body(max_tokens="10"), "max_tokens"),
        (body(max_tokens=True), "max_tokens"),
        (body(messages=None), "messages"),
        (body(messages={}), "messages"),
        (body(messages=[]), "messages"),
        (body(messages=["hi"]), "messages.0"),
        (body(messages=[{"role": "user"}]), "messages.0.content"),
        (body(messages=[{"role": "tool", "content": "x"}]), "messages.0.role"),
        (body(temperature="hot"), "temperature"),
        (body(top_p=[1]), "top_p"),
        (body(top_k=0.5), "top_k"),
        (body(stop_sequences="END"), "stop_sequences"),
        (body(stop_sequences=["a", 1]), "stop_sequences"),
        (body(stream="yes"), "stream"),
        (body(metadata="u"), "metadata"),
        (body(metadata={"user_id": 7}), "metadata.user_id"),
        (body(thinking="on"), "thinking"),
        (body(system=5), "system"),
        (body(system=[{"type": "image"}]), "system.0.type"),
    ],
)
def test_invalid_fields_are_400_naming_the_field(req: Any, field: str) -> None:
    rejects(req, field)


def test_sampling_stop_and_user_are_passed_through() -> None:
    out = to_openai(
        body(
            temperature=0.2,
            top_p=0.9,
            top_k=40,
            stop_sequences=["\n\nHuman:", "END"],
            metadata={"user_id": "u1"},
        ),
        "b",
    )
    assert (out["temperature"], out["top_p"], out["top_k"]) == (0.2, 0.9, 40)
    assert out["stop"] == ["\n\nHuman:", "END"]
    assert out["user"] == "u1"


def test_unknown_top_level_fields_are_ignored() -> None:
    extra = {
        "context_management": {"edits": []},
        "container": "c",
        "service_tier": "auto",
        "output_config": {},
    }
    assert to_openai(body(**extra), "b") == to_openai(body(), "b")


def test_stream_asks_vllm_for_usage_on_every_chunk() -> None:
    out = to_openai(body(stream=True), "b")
    assert out["stream"] is True
    assert out["stream_options"] == {"include_usage": True, "continuous_usage_stats": True}
    assert "stream" not in to_openai(body(stream=False), "b")


@pytest.mark.parametrize(("kind", "expected"), [("enabled", True), ("adaptive", True), ("disabled", False)])
def test_thinking_switch_goes_to_chat_template_kwargs(kind: str, expected: bool) -> None:
    out = to_openai(body(thinking={"type": kind, "budget_tokens": 2048}), "b")
    assert out["chat_template_kwargs"] == {"enable_thinking": expected}
    custom = to_openai(body(thinking={"type": kind}), "b", TranslateOptions(thinking_kwarg="thinking"))
    assert custom["chat_template_kwargs"] == {"thinking": expected}
    assert "chat_template_kwargs" not in to_openai(
        body(thinking={"type": kind}), "b", TranslateOptions(thinking_kwarg="")
    )


def test_unknown_thinking_type_and_budget_are_ignored() -> None:
    out = to_openai(body(thinking={"type": "turbo", "budget_tokens": 99}), "b")
    assert "chat_template_kwargs" not in out and b"budget" not in orjson.dumps(out)


def test_output_format_becomes_json_schema_response_format() -> None:
    schema = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}
    out = to_openai(
        body(output_config={"effort": "high", "format": {"type": "json_schema", "schema": schema}}), "b"
    )
    assert out["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema},
    }
    rejects(body(output_config={"format": {"type": "xml"}}), "output_config.format")
    rejects(body(output_config={"format": {"type": "json_schema"}}), "output_config.format.schema")


def test_final_assistant_text_is_continued_not_answered() -> None:
    out = to_openai(
        body(messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": "The answer is"}]),
        "b",
    )
    assert out["messages"][-1] == {"role": "assistant", "content": "The answer is"}
    assert out["continue_final_message"] is True and out["add_generation_prompt"] is False
    assert "continue_final_message" not in to_openai(body(), "b")


# --- system prompt and inline system messages -----------------------------------------------------


def test_system_blocks_joined_with_newline_billing_header_dropped() -> None:
    system = [
        {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.331.abc; cch=123;"},
        {"type": "text", "text": "You are helpful.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Be brief."},
    ]
    out = to_openai(body(system=system), "b")
    assert out["messages"][0] == {"role": "system", "content": "You are helpful.\nBe brief."}
    assert to_openai(body(system="Plain."), "b")["messages"][0] == {"role": "system", "content": "Plain."}
    only_billing = to_openai(body(system=system[:1]), "b")
    assert only_billing["messages"] == [{"role": "user", "content": "hi"}]


def test_billing_header_change_does_not_change_the_output() -> None:
    def with_header(h: str) -> dict:
        return body(
            system=[
                {"type": "text", "text": f"x-anthropic-billing-header: {h}"},
                {"type": "text", "text": "S"},
            ]
        )

    assert to_openai(with_header("a1"), "b") == to_openai(with_header("b2"), "b")


CONVERSATION = [
    {"role": "user", "content": "first"},
    {
        "role": "system",
        "content": [{"type": "text", "text": "reminder", "cache_control": {"type": "ephemeral"}}],
    },
    {"role": "assistant", "content": "reply"},
    {"role": "user", "content": [{"type": "text", "text": "second"}]},
]


def test_fold_appends_inline_system_text_to_the_preceding_user_turn() -> None:
    out = to_openai(body(system="S", messages=CONVERSATION), "b")["messages"]
    assert out == [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "first\nreminder"},
        {"role": "assistant", "content": "reply"},
        {"role": "user", "content": "second"},
    ]


def test_fold_keeps_the_next_prompt_an_extension_of_the_previous_one() -> None:
    # Claude Code's pattern: [user, system], then [user, system, assistant, tool_result]. The second
    # prompt must start with the first one, token for token, or vLLM's prefix cache misses.
    first = to_openai(body(messages=CONVERSATION[:2]), "b")["messages"]
    second = to_openai(body(messages=CONVERSATION), "b")["messages"]
    assert first == [{"role": "user", "content": "first\nreminder"}]
    assert second[: len(first)] == first


def test_fold_with_no_preceding_user_turn_goes_into_the_next_one() -> None:
    messages = [{"role": "system", "content": "early"}, {"role": "user", "content": "hi"}]
    assert to_openai(body(messages=messages), "b")["messages"] == [{"role": "user", "content": "early\nhi"}]
    tail = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "yo"},
        {"role": "system", "content": "n"},
    ]
    assert to_openai(body(messages=tail), "b")["messages"][-1] == {"role": "user", "content": "n"}


def test_fold_never_splits_tool_calls_from_their_results() -> None:
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "Bash", "input": {}}]},
        {"role": "system", "content": "note"},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]},
    ]
    for mode in ("fold", "keep"):
        out = to_openai(body(messages=messages), "b", TranslateOptions(system_messages=mode))["messages"]
        assert [m["role"] for m in out[1:3]] == ["assistant", "tool"], mode
        assert out[3] == {"role": "user" if mode == "fold" else "system", "content": "note"}


def test_keep_emits_system_messages_in_place() -> None:
    out = to_openai(body(messages=CONVERSATION), "b", TranslateOptions(system_messages="keep"))["messages"]
    assert out == [
        {"role": "user", "content": "first"},
        {"role": "system", "content": "reminder"},
        {"role": "assistant", "content": "reply"},
        {"role": "user", "content": "second"},
    ]


def test_a_conversation_of_only_system_messages() -> None:
    only_system = body(messages=[{"role": "system", "content": "only system"}])
    assert to_openai(only_system, "b")["messages"] == [{"role": "user", "content": "only system"}]
    with pytest.raises(RouterError, match="messages"):
        to_openai(only_system, "b", TranslateOptions(system_messages="keep"))


def test_options_reject_unknown_system_mode() -> None:
    with pytest.raises(ValueError):
        TranslateOptions(system_messages="hoist")


# --- tools ----------------------------------------------------------------------------------------


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


# --- real traffic ---------------------------------------------------------------------------------


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
