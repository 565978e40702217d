"""StreamTranscoder and whitespace: text or thinking that is only whitespace never becomes a block (Anthropic
rejects whitespace-only text blocks, and clients replay what they got), exactly as the non-streamed path
drops it; whitespace in front of real text is kept, byte for byte.
"""

from __future__ import annotations

import json

import pytest
from anthropic_stream_check import check_stream, sdk_message
from hypothesis import given, settings
from hypothesis import strategies as st
from test_transcoder import DONE, MSG_ID, ROLE, blocks, call, delta, sse, transcode, types, usage_chunk

from router.transcoder import StreamTranscoder
from router.translate_response import to_anthropic


@pytest.mark.parametrize("field", ["content", "reasoning"])
def test_whitespace_before_a_tool_call_makes_no_block(field: str) -> None:
    raw = transcode(
        sse(
            ROLE,
            delta(**{field: "\n\n"}),
            delta(**{field: " "}),
            delta(tool_calls=[call(0, "c1", "f", '{"a": 1}')]),
            delta(finish="tool_calls"),
            DONE,
        )
    )
    assert types(check_stream(raw)) == [
        *("message_start", "content_block_start", "input_json_delta", "content_block_stop"),
        *("message_delta", "message_stop"),
    ]
    message = sdk_message(raw)
    assert blocks(message.content) == [("tool_use", "c1", "f", {"a": 1})]
    assert message.usage.output_tokens == 3  # no usage from the backend: every delta counted


@pytest.mark.parametrize(("field", "block"), [("content", "text"), ("reasoning", "thinking")])
def test_held_whitespace_goes_out_with_the_first_real_delta(field: str, block: str) -> None:
    pieces = ["\n", "\n", "Hello", "\n", " ", "world"]
    raw = transcode(sse(ROLE, *(delta(**{field: p}) for p in pieces), delta(finish="stop"), DONE))
    events = check_stream(raw)
    sent = [e["delta"][block] for e in events if e.get("delta", {}).get("type") == f"{block}_delta"]
    assert sent == ["\n\nHello", "\n", " ", "world"]
    assert [b[:2] for b in blocks(sdk_message(raw).content)] == [(block, "".join(pieces))]


@pytest.mark.parametrize(
    "chunks",
    [
        [delta(content="\n\n"), delta(content=" \t")],
        [delta(reasoning="\n"), delta(content="\n\n")],
        [delta(content="\n"), delta(reasoning=" ")],
    ],
)
@pytest.mark.parametrize("ending", [[delta(finish="stop"), usage_chunk(9, 2), DONE], [delta(finish="stop")]])
def test_a_whitespace_only_answer_has_no_content(chunks: list[dict], ending: list) -> None:
    tc = StreamTranscoder("m", MSG_ID)
    raw = tc.feed(sse(ROLE, *chunks, *ending)) + tc.close()  # the second ending stops at EOF
    assert types(check_stream(raw)) == ["message_start", "message_delta", "message_stop"]
    message = sdk_message(raw)
    assert (message.content, message.stop_reason) == ([], "end_turn")
    assert message.usage.output_tokens == 2


def test_whitespace_of_another_kind_leaves_the_open_block_open() -> None:
    raw = transcode(
        sse(delta(content="a"), delta(reasoning="\n"), delta(content="b"), delta(finish="stop"), DONE)
    )
    assert blocks(sdk_message(raw).content) == [("text", "ab")]


def test_whitespace_held_when_another_block_opens_is_dropped() -> None:
    raw = transcode(
        sse(delta(content="\n"), delta(reasoning="x"), delta(content="y"), delta(finish="stop"), DONE)
    )
    assert [b[:2] for b in blocks(sdk_message(raw).content)] == [("thinking", "x"), ("text", "y")]


_spaced = st.text(alphabet=" \n\tab", min_size=1, max_size=3)


@settings(max_examples=150, deadline=None)
@given(st.lists(_spaced, max_size=5), st.lists(_spaced, max_size=5), st.integers(0, 2))
def test_stream_and_non_stream_agree_on_whitespace(reasoning: list[str], text: list[str], tools: int) -> None:
    """Reasoning, then text, then tool calls, as vLLM sends them: the streamed message is exactly the
    non-streamed one (which drops whitespace-only text and thinking)."""
    calls = [call(i, f"call_{i}", "f", json.dumps({"i": i})) for i in range(tools)]
    stream = [delta(reasoning=r) for r in reasoning] + [delta(content=t) for t in text]
    stream += [delta(tool_calls=[c]) for c in calls]
    streamed = sdk_message(
        transcode(sse(ROLE, *stream, delta(finish="tool_calls" if tools else "stop"), DONE))
    )
    message = {"reasoning": "".join(reasoning), "content": "".join(text), "tool_calls": calls}
    response = {"choices": [{"message": message, "finish_reason": "tool_calls" if tools else "stop"}]}
    plain = to_anthropic(response, "m")
    assert blocks(streamed.content) == blocks(plain["content"])
    assert streamed.stop_reason == plain["stop_reason"]
