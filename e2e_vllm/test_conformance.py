"""The router's conformance scenarios against a real vLLM 0.32 (CPU, tiny random-weight model), side by
side with vLLM's own ``/v1/messages``.

The model writes gibberish and ends by itself after ~35 tokens on average, so the checks are about the
protocol, never the text: stream grammar, stop reasons, usage, tool calls that follow their schema
(strict tools, vLLM's guided decoding), token counts and error shapes. A scenario whose outcome depends
on sampling (a stop string actually hit, a call not cut by max_tokens) tries a few times and says so in
its notes. Everything runs at max_tokens <= 32, except tool calls (96): xgrammar lets the random model
put whitespace between JSON tokens, so a call takes 35-60 tokens.
"""

from __future__ import annotations

import json
import re

import fake_vs_real as wire_diff
import pytest
from checks import (
    TOOLS,
    all_fields,
    anthropic_error,
    check_tool_input,
    complete,
    final_usage,
    judged,
    last_chat_request,
    save,
    streamed,
    text_of,
)
from vllm_stack import Stack

TOOL_MAX_TOKENS = 96
ATTEMPTS = 4
MAX_MODEL_LEN = 8192  # serve.sh --max-model-len
PROMPT_TOO_LONG = re.compile(r"^prompt is too long: (\d+) tokens > (\d+) maximum$")


def _user(text: str = "hello") -> list[dict]:
    return [{"role": "user", "content": text}]


def _turn(stack: Stack, side: str, body: dict, query: str = ""):  # type: ignore[no-untyped-def]
    return stack.post(side, "/v1/messages", {"model": stack.model(side), **body}, query)


# --- text ---------------------------------------------------------------------------------------------


def test_text_stream(stack: Stack, side: str, note) -> None:  # type: ignore[no-untyped-def]
    body = {"max_tokens": 32, "stream": True, "messages": _user()}
    resp = _turn(stack, side, body, "?beta=true")  # Claude Code's query string
    save(stack, "text_stream", side, body, resp)
    with judged(side):
        events, message = streamed(resp)
        input_tokens, output_tokens = final_usage(events)
        assert message.stop_reason in ("end_turn", "max_tokens"), message.stop_reason
        assert all(b.type == "text" for b in message.content), message.content
        assert input_tokens > 0 and 1 <= output_tokens <= 32, (input_tokens, output_tokens)
        if message.stop_reason == "max_tokens":
            assert output_tokens == 32, output_tokens
        assert message.model == stack.model(side), message.model
        note(
            f"{message.stop_reason}, {output_tokens} tokens, {sum(e['type'] == 'ping' for e in events)} pings"
        )


def test_non_stream(stack: Stack, side: str, note) -> None:  # type: ignore[no-untyped-def]
    body = {"max_tokens": 32, "messages": _user()}
    resp = _turn(stack, side, body)
    save(stack, "non_stream", side, body, resp)
    with judged(side):
        message = complete(resp)
        assert message.stop_reason in ("end_turn", "max_tokens"), message.stop_reason
        assert 1 <= message.usage.output_tokens <= 32, message.usage
        if message.stop_reason == "max_tokens":
            assert message.usage.output_tokens == 32
        assert message.model == stack.model(side), message.model
        note(f"{message.stop_reason}, {message.usage.output_tokens} tokens")
        all_fields(resp)


# --- tools --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
@pytest.mark.parametrize("choice", ["any", "named"])
def test_tool_call(stack: Stack, side: str, choice: str, stream: bool, note) -> None:  # type: ignore[no-untyped-def]
    tool_choice = {"type": "any"} if choice == "any" else {"type": "tool", "name": "get_weather"}
    tool_choice["disable_parallel_tool_use"] = True  # one call: a second one would not fit the budget
    body = {
        "max_tokens": TOOL_MAX_TOKENS,
        "tools": TOOLS,
        "tool_choice": tool_choice,
        "messages": _user("What is the weather in Paris?"),
    } | ({"stream": True} if stream else {})
    attempt = 0
    while attempt < ATTEMPTS:
        attempt += 1
        resp = _turn(stack, side, body)
        save(stack, f"tool_{choice}_{'stream' if stream else 'json'}", side, body, resp)
        with judged(side):
            message = streamed(resp)[1] if stream else complete(resp)
        if message.stop_reason != "max_tokens":  # the random model's whitespace ran out of budget
            break
    with judged(side):
        assert message.stop_reason == "tool_use", f"stop_reason {message.stop_reason} after {attempt} tries"
        calls = [b for b in message.content if b.type == "tool_use"]
        assert len(calls) == 1, message.content
        check_tool_input(calls[0].name, calls[0].input)
        if choice == "named":
            assert calls[0].name == "get_weather", calls[0].name
        note(f"{calls[0].name}({json.dumps(calls[0].input)}) on try {attempt}")
        if not stream:
            all_fields(resp)
    if side == "router":
        sent = last_chat_request(stack)
        want = "required" if choice == "any" else {"type": "function", "function": {"name": "get_weather"}}
        assert sent["tool_choice"] == want, sent["tool_choice"]
        assert all(t["function"].get("strict") is True for t in sent["tools"]), sent["tools"]
        assert sent.get("parallel_tool_calls") is False, sent


def test_tool_choice_none(stack: Stack, side: str, note) -> None:  # type: ignore[no-untyped-def]
    body = {
        "max_tokens": 32,
        "stream": True,
        "tools": TOOLS,
        "tool_choice": {"type": "none"},
        "messages": _user("What is the weather in Paris?"),
    }
    resp = _turn(stack, side, body)
    save(stack, "tool_choice_none", side, body, resp)
    with judged(side):
        message = streamed(resp)[1]
        assert all(b.type == "text" for b in message.content), message.content
        assert message.stop_reason in ("end_turn", "max_tokens"), message.stop_reason
        note(f"{message.stop_reason}, text only")
    if side == "router":
        assert last_chat_request(stack)["tool_choice"] == "none"


# --- stop sequences and max_tokens --------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
def test_stop_sequence(stack: Stack, side: str, stream: bool, note) -> None:  # type: ignore[no-untyped-def]
    body = {"max_tokens": 32, "stop_sequences": ["zz", "e"], "messages": _user()} | (
        {"stream": True} if stream else {}
    )
    outcomes = []
    for _attempt in range(ATTEMPTS):
        resp = _turn(stack, side, body)
        save(stack, f"stop_sequence_{'stream' if stream else 'json'}", side, body, resp)
        with judged(side):
            if stream:
                events, message = streamed(resp)
                delta = [e for e in events if e["type"] == "message_delta"][-1]["delta"]
                assert delta["stop_sequence"] == message.stop_sequence, delta
            else:
                message = complete(resp)
            text = text_of(message)
            # The matched string is not part of the text, and no stop string may survive in it.
            assert "e" not in text and "zz" not in text, f"stop string in the text {text!r}"
            outcomes.append(message.stop_reason)
            if message.stop_reason == "stop_sequence":
                assert message.stop_sequence in ("e", "zz"), message.stop_sequence
                break
            assert message.stop_sequence is None, message.stop_sequence
    with judged(side):
        assert outcomes[-1] == "stop_sequence", f"never stopped on a stop string: {outcomes}"
        note(f"stop_sequence {message.stop_sequence!r} after {outcomes}")
        if not stream:
            all_fields(resp)
    if side == "router":
        assert last_chat_request(stack)["stop"] == ["zz", "e"]


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
def test_max_tokens(stack: Stack, side: str, stream: bool, note) -> None:  # type: ignore[no-untyped-def]
    body = {"max_tokens": 4, "messages": _user()} | ({"stream": True} if stream else {})
    attempt = 0
    while attempt < ATTEMPTS:
        attempt += 1
        resp = _turn(stack, side, body)
        save(stack, f"max_tokens_{'stream' if stream else 'json'}", side, body, resp)
        with judged(side):
            if stream:
                events, message = streamed(resp)
                output_tokens = final_usage(events)[1]
            else:
                message = complete(resp)
                output_tokens = message.usage.output_tokens
        if message.stop_reason != "end_turn":  # ~2 % per token: the model may end first
            break
    with judged(side):
        assert message.stop_reason == "max_tokens", f"{message.stop_reason} after {attempt} tries"
        assert output_tokens == 4, output_tokens
        note(f"try {attempt}")
        if not stream:
            all_fields(resp)


# --- token counting -----------------------------------------------------------------------------------

_HISTORY = [
    {"role": "user", "content": "What is the weather in Paris?"},
    {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
        ],
    },
    {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01", "content": "sunny, 21 degrees"},
            {"type": "text", "text": "And in London?"},
        ],
    },
]


@pytest.mark.parametrize("case", ["plain", "tools"])
def test_count_tokens(stack: Stack, side: str, case: str, note) -> None:  # type: ignore[no-untyped-def]
    """count_tokens must be what the same request costs: Claude Code compacts on this number."""
    if case == "plain":
        request = {"messages": _user()}
    else:
        request = {"system": "You are terse.", "tools": TOOLS, "messages": _HISTORY}
    counted = stack.post(side, "/v1/messages/count_tokens", {"model": stack.model(side), **request})
    save(stack, f"count_tokens_{case}", side, request, counted)
    resp = _turn(stack, side, {"max_tokens": 8, **request})
    with judged(side):
        assert counted.status == 200, f"HTTP {counted.status}: {counted.raw[:300]!r}"
        count = counted.json()["input_tokens"]
        message = complete(resp)
        assert count == message.usage.input_tokens, (
            f"count_tokens {count} != usage {message.usage.input_tokens}"
        )
        if side == "router":
            assert counted.headers.get("x-router-token-count") == "exact", counted.headers
        extra = sorted(set(counted.json()) - {"input_tokens"})
        note(f"{count} tokens" + (f"; extra fields {extra}" if extra else ""))
        all_fields(resp)


# --- errors -------------------------------------------------------------------------------------------


def test_unknown_model(stack: Stack, side: str, note) -> None:  # type: ignore[no-untyped-def]
    """The router serves every model name on its default backend (Claude Code sends claude-* names);
    vLLM's native endpoint knows only its served name and should answer Anthropic's 404."""
    body = {"model": "claude-no-such-model", "max_tokens": 8, "messages": _user()}
    resp = stack.post(side, "/v1/messages", body)
    save(stack, "unknown_model", side, body, resp)
    with judged(side):
        if side == "router":
            message = complete(resp)
            assert message.model == "claude-no-such-model", message.model
            assert last_chat_request(stack)["model"] == "tiny"
            note("200: served by the default backend, the client's model name echoed")
            all_fields(resp)
        else:
            message_text = anthropic_error(resp, 404, "not_found_error")
            note(f"404 {message_text[:80]}")


def _overflow_body(stream: bool) -> dict:
    # ~9000 tokens of the tiny tokenizer, over --max-model-len 8192
    return {"max_tokens": 16, "messages": _user("hello " * 9000)} | ({"stream": True} if stream else {})


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
def test_context_overflow(stack: Stack, side: str, stream: bool, note) -> None:  # type: ignore[no-untyped-def]
    """Claude Code compacts on "prompt is too long: N tokens > M maximum" (a 400 invalid_request_error)."""
    body = _overflow_body(stream)
    resp = _turn(stack, side, body)
    save(stack, f"context_overflow_{'stream' if stream else 'json'}", side, b"<9000 x hello>", resp)
    with judged(side):
        message = anthropic_error(resp, 400, "invalid_request_error")
        match = PROMPT_TOO_LONG.match(message)
        assert match, f"not Claude Code's wording: {message[:200]}"
        prompt, limit = (int(g) for g in match.groups())
        assert limit == MAX_MODEL_LEN and prompt > limit, message
        note(message[:80])


def test_max_tokens_over_context(stack: Stack, side: str, note) -> None:  # type: ignore[no-untyped-def]
    """Claude Code asks for max_tokens 32000: the router caps it at max_model_len instead of failing."""
    body = {"max_tokens": 100_000, "messages": _user()}
    resp = _turn(stack, side, body)
    save(stack, "max_tokens_over_context", side, body, resp)
    with judged(side):
        message = complete(resp)
        assert message.stop_reason in ("end_turn", "max_tokens"), message.stop_reason
        note(f"{message.stop_reason} after {message.usage.output_tokens} tokens")
        all_fields(resp)
    if side == "router":
        assert last_chat_request(stack)["max_tokens"] == MAX_MODEL_LEN


# --- the fake in tests/ against what this real vLLM sent ----------------------------------------------


def test_fake_matches_real(stack: Stack, note) -> None:  # type: ignore[no-untyped-def]
    """Runs last: replays every router->vLLM exchange of this session against tests/fake_vllm.py."""
    compared, differences = wire_diff.compare(stack.backend_exchanges())
    text = wire_diff.report("tool-calling server (hermes parser)", compared, differences)
    (stack.log_dir / "wire-diff.md").write_text(text)
    for d in differences:
        note(f"{d.what}: real {d.real_only} / fake {d.fake_only}")
    assert not differences, text
