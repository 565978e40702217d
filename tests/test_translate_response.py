"""Response translation (router/translate_response.py), mostly on real vLLM 0.32 responses."""

from __future__ import annotations

import re
from typing import Any

import pytest
from vllm_fixtures import json_body, load_exchange

from router.errors import RouterError
from router.translate_response import (
    anthropic_usage,
    map_stop_reason,
    new_message_id,
    parse_tool_arguments,
    sanitize_tool_id,
    thinking_signature,
    to_anthropic,
)

ID_PATTERN = re.compile(r"^[a-zA-Z0-9_-]+$")


def recorded(name: str) -> dict:
    exchange = load_exchange(name)
    assert exchange["status"] == 200 and exchange["path"] == "/v1/chat/completions"
    return json_body(exchange)


def completion(
    message: dict, finish_reason: str | None = "stop", stop_reason: Any = None, usage: Any = None
) -> dict:
    choice = {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish_reason}
    choice["stop_reason"] = stop_reason
    return {"id": "chatcmpl-1", "choices": [choice], "usage": usage}


def check_envelope(msg: dict, model: str = "claude-sonnet") -> None:
    assert list(msg) == ["id", "type", "role", "model", "content", "stop_reason", "stop_sequence", "usage"]
    assert re.fullmatch(r"msg_[A-Za-z0-9]{24}", msg["id"])
    assert (msg["type"], msg["role"], msg["model"]) == ("message", "assistant", model)
    for block in msg["content"]:
        if block["type"] == "text":
            assert block["text"], "empty text blocks are persisted by clients and later rejected"


# --- real vLLM responses --------------------------------------------------------------------------


def test_basic_length_cut_is_max_tokens() -> None:
    resp = recorded("10_chat_basic")
    msg = to_anthropic(resp, "claude-sonnet")
    check_envelope(msg)
    assert msg["content"] == [{"type": "text", "text": resp["choices"][0]["message"]["content"]}]
    assert (msg["stop_reason"], msg["stop_sequence"]) == ("max_tokens", None)
    assert msg["usage"] == {
        "input_tokens": 25,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 64,
    }


def test_stop_sequence_reports_the_matched_string() -> None:
    msg = to_anthropic(recorded("14_chat_stop_sequence"), "claude-sonnet")
    check_envelope(msg)
    assert (msg["stop_reason"], msg["stop_sequence"]) == ("stop_sequence", "e")
    assert msg["content"] == [{"type": "text", "text": "list tok"}]


def test_length_with_min_tokens() -> None:
    msg = to_anthropic(recorded("16_chat_max_tokens_length"), "m")
    assert msg["stop_reason"] == "max_tokens" and msg["usage"]["output_tokens"] == 3


def test_required_tool_call_has_no_empty_text_and_stops_for_tool_use() -> None:
    msg = to_anthropic(recorded("31_tools_required_strict"), "claude-sonnet")
    check_envelope(msg)
    (block,) = msg["content"]  # vLLM sent content "", which must not become a text block
    assert block["type"] == "tool_use" and block["name"] == "get_weather"
    assert block["input"] == {"city": "Paris", "unit": "fahrenheit"}
    assert ID_PATTERN.match(block["id"]) and block["id"] == "chatcmpl-tool-a10310bb858e31ee"
    assert msg["stop_reason"] == "tool_use"


def test_named_tool_choice_finish_stop_still_stops_for_tool_use() -> None:
    resp = recorded("33_tools_named_strict")
    assert resp["choices"][0]["finish_reason"] == "stop"
    msg = to_anthropic(resp, "m")
    assert msg["stop_reason"] == "tool_use" and msg["content"][0]["input"] == {"tz": "CET"}


def test_parallel_calls_keep_order_and_distinct_ids() -> None:
    msg = to_anthropic(recorded("37_tools_required_strict_parallel"), "m")
    assert [b["input"]["city"] for b in msg["content"]] == ["Tokyo", "London"]
    assert len({b["id"] for b in msg["content"]}) == 2


def test_text_then_call() -> None:
    msg = to_anthropic(recorded("41_tools_auto_strict_text_then_call"), "m")
    assert [b["type"] for b in msg["content"]] == ["text", "tool_use"]
    assert msg["content"][0]["text"] == " 469ion" and msg["stop_reason"] == "tool_use"


def test_broken_call_stays_text_end_turn() -> None:
    resp = recorded("42_tools_auto_nonstrict_broken_call")
    msg = to_anthropic(resp, "m")
    assert msg["content"] == [{"type": "text", "text": resp["choices"][0]["message"]["content"]}]
    assert msg["stop_reason"] == "end_turn"


def test_call_truncated_in_arguments_is_text_cut_by_max_tokens() -> None:
    resp = recorded("36c_tools_required_nonstrict_truncated_in_args")
    msg = to_anthropic(resp, "m")
    assert msg["content"][0]["text"].startswith("<tool_call>") and msg["stop_reason"] == "max_tokens"


def test_reasoning_becomes_a_signed_thinking_block_first() -> None:
    resp = recorded("R1_chat_reasoning")
    message = resp["choices"][0]["message"]
    msg = to_anthropic(resp, "m")
    thinking, text = msg["content"]
    assert thinking["type"] == "thinking" and thinking["thinking"] == message["reasoning"]
    assert isinstance(thinking["signature"], str) and thinking["signature"]
    assert text == {"type": "text", "text": message["content"]}
    assert msg["stop_reason"] == "end_turn" and msg["usage"]["output_tokens"] == 78


# --- synthetic edge cases -------------------------------------------------------------------------


def test_old_reasoning_content_field_is_read_too() -> None:
    msg = to_anthropic(completion({"content": "hi", "reasoning_content": "hmm"}), "m")
    assert msg["content"][0]["thinking"] == "hmm"


def test_empty_answer_is_an_empty_content_list() -> None:
    msg = to_anthropic(completion({"content": "", "reasoning": None}), "m")
    assert msg["content"] == [] and msg["stop_reason"] == "end_turn"
    assert to_anthropic(completion({"content": None}), "m")["content"] == []


def test_whitespace_only_text_and_thinking_are_not_blocks() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    msg = to_anthropic(completion({"content": "\n\n", "reasoning": "\n", "tool_calls": [call]}), "m")
    assert [b["type"] for b in msg["content"]] == ["tool_use"]
    kept = to_anthropic(completion({"content": " a ", "reasoning": " b "}), "m")
    assert [b.get("text", b.get("thinking")) for b in kept["content"]] == [" b ", " a "]


def test_tool_ids_are_sanitised_deterministically() -> None:
    call = {"id": "call:1/ä.x", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    ids = {
        to_anthropic(completion({"content": None, "tool_calls": [call]}), "m")["content"][0]["id"]
        for _ in range(3)
    }
    (only,) = ids
    assert ID_PATTERN.match(only) and only == "call_1___x"
    missing = to_anthropic(completion({"tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}), "m")
    assert ID_PATTERN.match(missing["content"][0]["id"])


def test_broken_arguments_do_not_crash() -> None:
    calls = [
        {"id": "a", "function": {"name": "f", "arguments": '{"cmd": "ls -l'}},
        {"id": "b", "function": {"name": "f", "arguments": "96191036594135103689648"}},
        {"id": "c", "function": {"name": "f", "arguments": {"already": "parsed"}}},
    ]
    msg = to_anthropic(completion({"content": None, "tool_calls": calls}, finish_reason="length"), "m")
    assert [b["input"] for b in msg["content"]] == [
        {"cmd": "ls -l"},
        {"_raw_arguments": "96191036594135103689648"},
        {"already": "parsed"},
    ]
    assert msg["stop_reason"] == "max_tokens"  # cut by max_tokens: Claude Code must not run it


@pytest.mark.parametrize("resp", [{}, {"choices": []}, {"choices": ["x"]}, []])
def test_response_without_choices_is_a_backend_error(resp: Any) -> None:
    with pytest.raises(RouterError) as info:
        to_anthropic(resp, "m")
    assert info.value.type == "api_error" and info.value.status >= 500


@pytest.mark.parametrize(
    ("finish", "vllm_stop", "tools", "expected"),
    [
        ("stop", None, False, ("end_turn", None)),
        ("stop", "###", False, ("stop_sequence", "###")),
        ("stop", 151645, False, ("end_turn", None)),  # a stop token id, not a sequence
        ("length", None, False, ("max_tokens", None)),
        ("tool_calls", None, True, ("tool_use", None)),
        ("stop", "###", True, ("tool_use", None)),
        ("length", None, True, ("max_tokens", None)),  # a truncated call must not be run
        ("tool_calls", None, False, ("end_turn", None)),
        ("content_filter", None, False, ("refusal", None)),
        (None, None, False, ("end_turn", None)),
    ],
)
def test_map_stop_reason(finish: str | None, vllm_stop: Any, tools: bool, expected: tuple) -> None:
    assert map_stop_reason(finish, vllm_stop, tools) == expected


def test_usage_subtracts_prefix_cache_hits_from_input() -> None:
    usage = {"prompt_tokens": 1000, "completion_tokens": 20, "prompt_tokens_details": {"cached_tokens": 768}}
    assert anthropic_usage(usage) == {
        "input_tokens": 232,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 768,
        "output_tokens": 20,
    }
    zero = {
        "input_tokens": 0,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 0,
    }
    assert anthropic_usage(None) == zero
    assert (
        anthropic_usage({"prompt_tokens": "x", "completion_tokens": None, "prompt_tokens_details": None})
        == zero
    )


def test_message_ids_are_random_base62() -> None:
    ids = {new_message_id() for _ in range(50)}
    assert len(ids) == 50 and all(re.fullmatch(r"msg_[A-Za-z0-9]{24}", i) for i in ids)


def test_helpers_shared_with_the_transcoder() -> None:
    assert parse_tool_arguments('{"a": 1}') == {"a": 1}
    assert sanitize_tool_id("ok-id_1") == "ok-id_1"
    assert thinking_signature("x") == thinking_signature("x") != thinking_signature("y")


@pytest.mark.parametrize("finish", ["abort", "error"])
def test_aborted_generation_is_a_retryable_overload(finish: str) -> None:
    with pytest.raises(RouterError) as info:
        to_anthropic(completion({"content": "half an ans"}, finish_reason=finish), "m")
    assert (info.value.status, info.value.type, info.value.retry) == (529, "overloaded_error", True)
