"""StreamTranscoder: hand-made and generated OpenAI streams in, Anthropic streams that a strict client
accepts out. The helpers here are shared by test_transcoder_fixtures.py (the real recorded vLLM streams,
and streamed vs non-streamed answers) and test_transcoder_whitespace.py.

Every output goes through ``check_stream`` (grammar, as Claude Code enforces it) and, where it ends with
``message_stop``, through the official SDK's accumulator.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from anthropic_stream_check import SDKStreamError, check_stream, sdk_message
from hypothesis import given, settings
from hypothesis import strategies as st

from router.transcoder import StreamTranscoder

MSG_ID = "msg_test0123"


def transcode(*pieces: bytes, message_id: str = MSG_ID, model: str = "claude-test") -> bytes:
    tc = StreamTranscoder(model, message_id)
    out = b"".join(tc.feed(piece) for piece in pieces) + tc.close()
    assert tc.done
    return out


def sse(*chunks: object) -> bytes:
    """An OpenAI stream: dicts become JSON data frames, bytes are sent as they are."""
    return b"".join(
        c if isinstance(c, bytes) else b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks
    )


def delta(
    index: int = 0, finish: str | None = None, stop: object = None, usage: dict | None = None, **d
) -> dict:
    choice = {"index": index, "delta": d, "finish_reason": finish}
    if finish:
        choice["stop_reason"] = stop
    chunk: dict = {"object": "chat.completion.chunk", "choices": [choice]}
    if usage is not None:
        chunk["usage"] = usage
    return chunk


def call(index: int, id: str | None = None, name: str | None = None, args: str | None = None) -> dict:
    function = {k: v for k, v in (("name", name), ("arguments", args)) if v is not None}
    out: dict = {"index": index, "function": function}
    if id is not None:
        out |= {"id": id, "type": "function"}
    return out


def usage_chunk(prompt: int, completion: int, cached: int | None = None) -> dict:
    usage: dict = {"prompt_tokens": prompt, "completion_tokens": completion}
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return {"object": "chat.completion.chunk", "choices": [], "usage": usage}


DONE = b"data: [DONE]\n\n"
ROLE = delta(role="assistant", content="")


def types(events: list[dict]) -> list[str]:
    return [e["type"] if e["type"] != "content_block_delta" else e["delta"]["type"] for e in events]


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def blocks(content: list[Any], ids: bool = True) -> list[tuple]:
    """Content blocks, from ``to_anthropic`` (dicts) or the SDK (models), as comparable tuples."""
    out: list[tuple] = []
    for block in content:
        get = block.get if isinstance(block, dict) else lambda name, b=block: getattr(b, name)
        if get("type") == "text":
            out.append(("text", get("text")))
        elif get("type") == "thinking":
            out.append(("thinking", get("thinking"), get("signature")))
        else:
            out.append(("tool_use", get("id") if ids else None, get("name"), get("input")))
    return out


# --- message framing ----------------------------------------------------------------------------------


def test_begin_sends_message_start_once_and_input_tokens_arrive_at_the_end() -> None:
    tc = StreamTranscoder("m", MSG_ID)
    head = tc.begin()
    assert tc.begin() == b""
    rest = tc.feed(sse(delta(content="hi", usage={"prompt_tokens": 40, "completion_tokens": 1})))
    rest += tc.feed(sse(delta(finish="stop"), usage_chunk(40, 1), DONE))
    events = check_stream(head + rest)
    assert types(events).count("message_start") == 1
    assert events[0]["message"]["usage"]["input_tokens"] == 0
    assert events[-2]["usage"]["input_tokens"] == 40


def test_no_block_for_empty_deltas() -> None:
    raw = transcode(sse(ROLE, delta(content=""), delta(reasoning=""), delta(finish="stop"), DONE))
    assert types(check_stream(raw)) == ["message_start", "message_delta", "message_stop"]
    assert sdk_message(raw).content == []


def test_thinking_then_text_then_tools() -> None:
    raw = transcode(
        sse(
            ROLE,
            delta(reasoning="let me "),
            delta(reasoning_content="think"),  # the pre-0.11 vLLM / SGLang field name
            delta(content="Calling."),
            delta(tool_calls=[call(0, "call_a", "read", '{"path": "a"}')]),
            delta(tool_calls=[call(1, "call_b", "read", '{"path"')]),
            delta(tool_calls=[call(1, args=': "b"}')]),
            delta(finish="tool_calls"),
            usage_chunk(10, 9),
            DONE,
        )
    )
    assert types(check_stream(raw)) == [
        "message_start",
        *("content_block_start", "thinking_delta", "thinking_delta", "signature_delta", "content_block_stop"),
        *("content_block_start", "text_delta", "content_block_stop"),
        *("content_block_start", "input_json_delta", "content_block_stop"),
        *("content_block_start", "input_json_delta", "input_json_delta", "content_block_stop"),
        "message_delta",
        "message_stop",
    ]
    message = sdk_message(raw)
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use", "tool_use"]
    assert message.content[0].thinking == "let me think"
    assert [(b.id, b.input) for b in message.content[2:]] == [
        ("call_a", {"path": "a"}),
        ("call_b", {"path": "b"}),
    ]
    assert message.stop_reason == "tool_use"


def test_text_after_thinking_after_text_opens_new_blocks() -> None:
    raw = transcode(
        sse(delta(content="a"), delta(reasoning="b"), delta(content="c"), delta(finish="stop"), DONE)
    )
    message = sdk_message(raw)
    assert [(b.type, getattr(b, "text", None) or b.thinking) for b in message.content] == [
        ("text", "a"),
        ("thinking", "b"),
        ("text", "c"),
    ]


def test_whole_tool_call_in_one_delta_with_unsafe_id() -> None:
    raw = transcode(
        sse(delta(tool_calls=[call(0, "functions.get:0", "get", '{"q": [1, 2]}')], finish="stop"), DONE)
    )
    check_stream(raw)
    block = sdk_message(raw).content[0]
    assert (block.id, block.name, block.input) == ("functions_get_0", "get", {"q": [1, 2]})


def test_tool_call_without_id_gets_a_deterministic_id() -> None:
    stream = sse(delta(tool_calls=[call(0, name="f", args="{}")], finish="tool_calls"), DONE)
    ids = [sdk_message(transcode(stream, message_id=m)).content[0].id for m in (MSG_ID, MSG_ID, "msg_other")]
    assert ids[0] == ids[1] != ids[2]
    assert all(re.fullmatch(r"toolu_[a-zA-Z0-9_-]+", i) for i in ids)


def test_tool_call_without_arguments_gets_empty_object() -> None:
    raw = transcode(sse(delta(tool_calls=[call(0, "c1", "now", "")]), delta(finish="tool_calls"), DONE))
    check_stream(raw)
    assert sdk_message(raw).content[0].input == {}


def test_tool_name_arriving_after_the_id_opens_the_block_then() -> None:
    raw = transcode(
        sse(
            delta(tool_calls=[call(0, "c1", args='{"a"')]),
            delta(tool_calls=[{"index": 0, "function": {"name": "f", "arguments": ": 1}"}}]),
            delta(finish="tool_calls"),
            DONE,
        )
    )
    block = sdk_message(raw).content[0]
    assert (block.id, block.name, block.input) == ("c1", "f", {"a": 1})


def test_tool_calls_without_index_follow_one_another() -> None:
    raw = transcode(
        sse(
            delta(tool_calls=[{"id": "a", "function": {"name": "f", "arguments": '{"x"'}}]),
            delta(tool_calls=[{"function": {"arguments": ": 1}"}}]),
            delta(tool_calls=[{"id": "b", "function": {"name": "g", "arguments": "{}"}}]),
            delta(finish="tool_calls"),
            DONE,
        )
    )
    content = sdk_message(raw).content
    assert [(b.id, b.name, b.input) for b in content] == [("a", "f", {"x": 1}), ("b", "g", {})]


def test_arguments_for_an_already_closed_tool_end_the_stream_with_an_error() -> None:
    tc = StreamTranscoder("m", MSG_ID)
    raw = tc.feed(
        sse(
            delta(tool_calls=[call(0, "c0", "f", '{"a":')]),
            delta(tool_calls=[call(1, "c1", "g", "{}")]),
            delta(tool_calls=[call(0, args="1}")]),
        )
    )
    assert tc.done
    events = check_stream(raw)
    assert events[-1]["error"]["type"] == "overloaded_error"
    assert tc.feed(sse(delta(finish="tool_calls"), DONE)) == b"" and tc.close() == b""


def test_only_the_first_choice_is_used() -> None:
    raw = transcode(sse(delta(0, content="zero"), delta(1, content="one"), delta(0, finish="stop"), DONE))
    assert sdk_message(raw).content[0].text == "zero"


# --- stop reasons and usage ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("finish", "stop", "expected"),
    [
        ("stop", None, ("end_turn", None)),
        ("stop", "</done>", ("stop_sequence", "</done>")),
        ("stop", 128001, ("end_turn", None)),  # a stop *token id* is not a stop sequence
        ("length", None, ("max_tokens", None)),
    ],
)
def test_stop_reason(finish: str, stop: object, expected: tuple) -> None:
    tc = StreamTranscoder("m", MSG_ID)
    raw = tc.feed(sse(delta(content="x"), delta(finish=finish, stop=stop), usage_chunk(3, 1), DONE))
    message = sdk_message(raw)
    assert (message.stop_reason, message.stop_sequence) == expected == (tc.stop_reason, expected[1])


def test_message_delta_waits_for_the_usage_chunk() -> None:
    tc = StreamTranscoder("m", MSG_ID)
    before = tc.feed(sse(delta(content="hello"), delta(finish="stop")))
    assert b"message_delta" not in before and not tc.done
    after = tc.feed(sse(usage_chunk(100, 7, cached=60)))  # no [DONE] needed
    assert tc.done and after.endswith(b'{"type":"message_stop"}\n\n')
    usage = check_stream(before + after)[-2]["usage"]
    assert (usage["input_tokens"], usage["cache_read_input_tokens"], usage["output_tokens"]) == (40, 60, 7)
    assert tc.usage["output_tokens"] == 7


def test_output_tokens_are_counted_when_the_backend_sends_no_usage() -> None:
    raw = transcode(sse(delta(content="a"), delta(content="b"), delta(content="c", finish="stop"), DONE))
    assert check_stream(raw)[-2]["usage"]["output_tokens"] == 3


def test_first_token_time_is_set_by_the_first_content_delta() -> None:
    tc = StreamTranscoder("m", MSG_ID)
    tc.feed(sse(ROLE))
    assert tc.first_token_at is None
    tc.feed(sse(delta(content="\n")))  # generated, though held back (see below)
    assert tc.first_token_at is not None


# --- errors and early ends ----------------------------------------------------------------------------


def test_mid_stream_error_frame_then_done() -> None:
    tc = StreamTranscoder("m", MSG_ID)
    error = {"error": {"message": "engine died", "type": "InternalServerError", "param": None, "code": 500}}
    raw = tc.feed(sse(delta(content="partial"), error))
    assert tc.done and tc.feed(DONE) == b"" and tc.close() == b""
    events = check_stream(raw)
    assert events[-1]["error"] == {"type": "overloaded_error", "message": "engine died"}
    with pytest.raises(SDKStreamError):
        sdk_message(raw)


def test_mid_stream_overflow_error_is_reworded_for_claude_code() -> None:
    message = (
        "'max_tokens' or 'max_completion_tokens' is too large: 500. This model's maximum context length "
        "is 8192 tokens and your request has 8000 input tokens (500 > 8192 - 8000)."
    )
    raw = transcode(sse({"error": {"message": message, "type": "BadRequestError", "code": 400}}, DONE))
    error = check_stream(raw)[-1]["error"]
    assert error["type"] == "invalid_request_error"
    assert "input length and `max_tokens` exceed context limit: 8000 + 500 > 8192" in error["message"]


@pytest.mark.parametrize("bad", [b"data: {not json\n\n", b"data: [1, 2]\n\n", b'data: {"choices": "x"}\n\n'])
def test_malformed_chunk_ends_with_a_retryable_error(bad: bytes) -> None:
    raw = transcode(sse(delta(content="ok")) + bad + sse(delta(content="more"), DONE))
    events = check_stream(raw)
    assert events[-1]["error"]["type"] == "overloaded_error"
    assert b"more" not in raw


def test_eof_after_finish_without_done_finishes_cleanly() -> None:
    raw = transcode(sse(delta(content="a"), delta(finish="length")))
    message = sdk_message(raw)
    assert (message.stop_reason, message.usage.output_tokens) == ("max_tokens", 1)


def test_eof_before_finish_is_an_error() -> None:
    raw = transcode(sse(ROLE, delta(tool_calls=[call(0, "c", "f", '{"a"')])))
    events = check_stream(raw)
    assert events[-1]["error"] == {"type": "overloaded_error", "message": "backend stream ended early"}


def test_eof_with_no_bytes_at_all() -> None:
    assert types(check_stream(transcode())) == ["message_start", "error"]


def test_final_frame_without_blank_line_is_still_read() -> None:
    raw = transcode(sse(delta(content="a"), delta(finish="stop")) + b"data: [DONE]")
    assert sdk_message(raw).stop_reason == "end_turn"


def test_fail_is_idempotent_and_final() -> None:
    tc = StreamTranscoder("m", MSG_ID)
    first = tc.feed(sse(delta(content="a"))) + tc.fail("overloaded_error", "client timeout")
    assert tc.fail("api_error", "again") == b"" and tc.close() == b"" and tc.begin() == b""
    assert check_stream(first)[-1]["error"]["message"] == "client timeout"


# --- generated backend streams ------------------------------------------------------------------------

_words = st.text(max_size=6) | st.sampled_from(["\n\n", " ", "\t\n"])
_json_args = st.dictionaries(
    st.text(max_size=4), st.integers() | st.text(max_size=4) | st.booleans(), max_size=3
)
_garbage = st.sampled_from(
    [b": keep-alive\n\n", b"event: x\nid: 1\n\n", b"data: {broken\n\n", b"data: null\n\n", b"retry: 5\n\n"]
)


@st.composite
def backend_streams(draw: st.DrawFn) -> bytes:
    """Random, possibly broken, OpenAI streams: every kind of delta, ending, error and garbage line."""
    out: list[bytes] = []
    tools = 0
    for op in draw(st.lists(st.integers(0, 11), max_size=14)):
        if op == 0:
            out.append(sse(delta(content=draw(_words))))
        elif op == 1:
            out.append(sse(delta(reasoning=draw(_words))))
        elif op in (2, 3):  # a new tool call, its JSON arguments cut into fragments
            args = json.dumps(draw(_json_args))
            cuts = split_at(args.encode(), draw(st.lists(st.integers(0, 64), max_size=3)))
            call_id = draw(st.sampled_from([None, "", "call 1", f"chatcmpl-tool-{tools}"]))
            first = call(tools, call_id, draw(st.sampled_from(["f", "get_weather"])), cuts[0].decode())
            out.append(sse(delta(tool_calls=[first])))
            out += [sse(delta(tool_calls=[call(tools, args=c.decode())])) for c in cuts[1:]]
            tools += 1
        elif op == 4 and tools:  # more arguments for some earlier call (in order only for the last one)
            out.append(sse(delta(tool_calls=[call(draw(st.integers(0, tools - 1)), args=draw(_words))])))
        elif op == 5:
            out.append(sse(delta(finish=draw(st.sampled_from(["stop", "length", "tool_calls"])), stop="x")))
        elif op == 6:
            out.append(sse(usage_chunk(draw(st.integers(0, 99)), draw(st.integers(0, 99)))))
        elif op == 7:
            out.append(sse({"error": {"message": "boom", "code": draw(st.sampled_from([400, 500]))}}))
        elif op == 8:
            out.append(draw(_garbage))
        elif op == 9:
            out.append(DONE)
        elif op == 10:
            out.append(sse(ROLE, delta(1, content="other choice")))
        else:
            out.append(sse(delta(content="u", usage={"prompt_tokens": 5, "completion_tokens": 1})))
    return b"".join(out)


@settings(max_examples=150, deadline=None)
@given(backend_streams(), st.lists(st.integers(0, 1 << 16), max_size=6))
def test_generated_streams_always_give_a_valid_anthropic_stream(body: bytes, cuts: list[int]) -> None:
    raw = transcode(*split_at(body, cuts))
    assert raw == transcode(body)
    events = check_stream(raw)
    if events[-1]["type"] == "message_stop":
        message = sdk_message(raw)
        assert message.usage.output_tokens == events[-2]["usage"]["output_tokens"]
        if message.stop_reason != "max_tokens":  # a truncated call says max_tokens, not tool_use
            assert (message.stop_reason == "tool_use") == any(b.type == "tool_use" for b in message.content)
        assert all(b[1].strip() for b in blocks(message.content) if b[0] != "tool_use")


@pytest.mark.parametrize("finish", ["abort", "error"])
def test_aborted_generation_ends_with_a_retryable_error(finish: str) -> None:
    body = sse(ROLE, delta(content="half an"), delta(finish=finish), DONE)
    events = check_stream(transcode(body))
    assert events[-1]["type"] == "error"
    assert events[-1]["error"]["type"] == "overloaded_error"
