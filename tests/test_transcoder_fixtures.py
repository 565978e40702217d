"""StreamTranscoder on the real vLLM 0.32 streams of shared/fixtures: every recorded stream, split any way,
gives what its chunks say, and the same answer as the non-streamed path gives.

The expected message is read straight off the OpenAI chunks, not from the transcoder; the whitespace rule
it applies is the non-streamed path's (``to_anthropic``: no whitespace-only text or thinking).
"""

from __future__ import annotations

import contextlib
import json
import re

import pytest
from anthropic_stream_check import check_stream, sdk_message
from hypothesis import given, settings
from hypothesis import strategies as st
from test_transcoder import MSG_ID, blocks, split_at, transcode
from vllm_fixtures import load_exchanges, vllm_fixture_names

from router.translate_response import to_anthropic


def _chat_exchanges() -> list[tuple[str, dict]]:
    return [
        (name, ex)
        for name in vllm_fixture_names()
        for ex in load_exchanges(name)
        if ex["path"] == "/v1/chat/completions" and ex["status"] == 200
    ]


def _is_stream(ex: dict) -> bool:
    return ex["headers"].get("content-type", "").startswith("text/event-stream")


FIXTURES = [(name, ex["body"]) for name, ex in _chat_exchanges() if _is_stream(ex)]


def accumulate(body: bytes) -> dict:
    """The OpenAI stream folded into the non-streamed response it stands for (choice 0 only), plus
    ``deltas``: how many chunks carried content (the output count when there is no usage)."""
    reasoning, text, calls, deltas = "", "", {}, 0
    finish = stop = usage = None
    for payload in re.findall(rb"^data: (.*)$", body, re.M):
        if payload == b"[DONE]":
            continue
        chunk = json.loads(payload)
        usage = chunk.get("usage") or usage
        for choice in chunk["choices"]:
            if choice["index"] != 0:
                continue
            d = choice["delta"]
            reasoning += d.get("reasoning") or ""
            text += d.get("content") or ""
            deltas += bool(d.get("reasoning") or d.get("content"))
            for tc in d.get("tool_calls") or []:
                entry = calls.setdefault(
                    tc["index"], {"id": tc.get("id"), "function": {"name": "", "arguments": ""}}
                )
                entry["function"]["name"] += tc.get("function", {}).get("name") or ""
                entry["function"]["arguments"] += tc.get("function", {}).get("arguments") or ""
                deltas += bool(tc.get("function", {}).get("arguments"))
            if choice.get("finish_reason"):
                finish, stop = choice["finish_reason"], choice.get("stop_reason")
    message = {"content": text, "reasoning": reasoning, "tool_calls": [calls[i] for i in sorted(calls)]}
    choice = {"index": 0, "message": message, "finish_reason": finish, "stop_reason": stop}
    return {"choices": [choice], "usage": usage, "deltas": deltas}


def expected_message(body: bytes) -> dict:
    """What the client must end up with, derived from the chunks by the rules of the protocol notes."""
    response = accumulate(body)
    choice, usage = response["choices"][0], response["usage"] or {}
    message = choice["message"]
    content: list[dict] = []
    if message["reasoning"].strip():
        content.append({"type": "thinking", "thinking": message["reasoning"]})
    if message["content"].strip():
        content.append({"type": "text", "text": message["content"]})
    content += [{"type": "tool_use", "id": c["id"], **c["function"]} for c in message["tool_calls"]]
    finish, stop = choice["finish_reason"], choice["stop_reason"]
    if finish == "length":  # a call cut by max_tokens is truncated: not to be run
        stop_reason, sequence = "max_tokens", None
    elif message["tool_calls"]:
        stop_reason, sequence = "tool_use", None
    elif finish == "stop" and isinstance(stop, str):
        stop_reason, sequence = "stop_sequence", stop
    else:
        stop_reason, sequence = {"length": "max_tokens"}.get(finish, "end_turn"), None
    return {
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": sequence,
        "input_tokens": usage.get("prompt_tokens", 0),
        "output_tokens": usage.get("completion_tokens") or response["deltas"],
    }


def test_the_fixture_set_has_the_interesting_streams() -> None:
    prefixes = {name.split("_")[0] for name, _ in FIXTURES}
    assert prefixes >= {
        "11",
        "12",
        "13",
        "15",
        "17",
        "20",
        "30",
        "32",
        "34",
        "35",
        "36b",
        "37b",
        "41b",
        "42b",
    }
    assert prefixes >= {"R2", "R3", "R4"}


@pytest.mark.parametrize(("name", "body"), FIXTURES, ids=[n for n, _ in FIXTURES])
def test_real_vllm_stream(name: str, body: bytes) -> None:
    raw = transcode(body)
    events = check_stream(raw)
    expected = expected_message(body)
    message = sdk_message(raw)

    assert message.id == MSG_ID and message.model == "claude-test"
    assert message.stop_reason == expected["stop_reason"]
    assert message.stop_sequence == expected["stop_sequence"]
    assert message.usage.input_tokens == expected["input_tokens"]
    assert message.usage.output_tokens == expected["output_tokens"] > 0
    assert len(message.content) == len(expected["content"])
    tool_json = iter(
        "".join(e["delta"]["partial_json"] for e in events if e.get("index") == i and "delta" in e)
        for i, block in enumerate(message.content)
        if block.type == "tool_use"
    )
    for got, want in zip(message.content, expected["content"], strict=True):
        assert got.type == want["type"]
        if got.type == "text":
            assert got.text == want["text"]
        elif got.type == "thinking":
            assert got.thinking == want["thinking"] and got.signature
        else:
            assert (got.id, got.name) == (want["id"], want["name"])
            assert next(tool_json) == (want["arguments"] or "{}")  # every argument byte, in order
            # Unless the model wrote invalid JSON (cut by max_tokens): that is forwarded as written.
            with contextlib.suppress(ValueError):
                assert got.input == json.loads(want["arguments"])


def test_continuous_usage_puts_the_prompt_size_in_message_start() -> None:
    body = next(b for n, b in FIXTURES if n.startswith("13_"))
    start = check_stream(transcode(body))[0]
    assert start["message"]["usage"]["input_tokens"] == expected_message(body)["input_tokens"] > 0


def test_stop_sequence_fixture() -> None:
    message = sdk_message(transcode(next(b for n, b in FIXTURES if n.startswith("15_"))))
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "e")


def test_named_tool_choice_finish_stop_is_tool_use() -> None:
    body = next(b for n, b in FIXTURES if n.startswith("34_"))
    assert b'"finish_reason":"stop"' in body
    assert sdk_message(transcode(body)).stop_reason == "tool_use"


# --- streamed and non-streamed agree ------------------------------------------------------------------


@pytest.mark.parametrize(("name", "body"), FIXTURES, ids=[n for n, _ in FIXTURES])
def test_stream_matches_the_non_streamed_translation_of_the_same_answer(name: str, body: bytes) -> None:
    response = accumulate(body)
    streamed = sdk_message(transcode(body))
    plain = to_anthropic(response, "claude-test")
    assert (streamed.stop_reason, streamed.stop_sequence) == (plain["stop_reason"], plain["stop_sequence"])
    # Arguments that are not a JSON object (cut by max_tokens) are repaired by the non-streamed path and
    # forwarded as written by the streamed one: for those calls only id and name must agree.
    calls = response["choices"][0]["message"]["tool_calls"]
    broken = iter(_json_object(c["function"]["arguments"] or "{}") is None for c in calls)
    got, want = blocks(streamed.content), blocks(plain["content"])
    assert len(got) == len(want)
    for got_block, want_block in zip(got, want, strict=True):
        if got_block[0] == "tool_use" and next(broken):
            got_block, want_block = got_block[:3], want_block[:3]
        assert got_block == want_block


def _request_key(request: dict) -> str:
    return json.dumps(
        {k: v for k, v in request.items() if k not in ("stream", "stream_options")}, sort_keys=True
    )


def _json_object(arguments: str) -> dict | None:
    with contextlib.suppress(ValueError):
        value = json.loads(arguments)
        return value if isinstance(value, dict) else None
    return None


def _said(choice: dict) -> tuple:
    """What vLLM answered, as far as the translation depends on it (a streamed call's arguments are
    spaced differently from the non-streamed one's)."""
    message = choice["message"]
    calls = [
        (c["function"]["name"], _json_object(c["function"]["arguments"]) or c["function"]["arguments"])
        for c in message.get("tool_calls") or ()
    ]
    return message["content"] or "", message.get("reasoning") or "", calls, choice["finish_reason"]


def _recorded_pairs() -> list[tuple[str, dict, bytes]]:
    """(names, non-streamed response, stream body) for each request recorded both ways, where vLLM gave
    the same answer both times (its non-strict tool parser does not: 35/36, 36b/36c, 42/42b)."""
    plain: dict[str, list[tuple[str, dict]]] = {}
    streamed: dict[str, list[tuple[str, bytes]]] = {}
    for name, ex in _chat_exchanges():
        if ex["request"] is not None:
            key = _request_key(ex["request"])
            if _is_stream(ex):
                streamed.setdefault(key, []).append((name, ex["body"]))
            else:
                plain.setdefault(key, []).append((name, json.loads(ex["body"])))
    return [
        (f"{plain_name}+{stream_name}", response, body)
        for key in sorted(plain.keys() & streamed.keys())
        for plain_name, response in plain[key]
        for stream_name, body in streamed[key]
        if _said(response["choices"][0]) == _said(accumulate(body)["choices"][0])
    ]


PAIRS = _recorded_pairs()


def test_the_recorded_pairs_include_text_tools_and_reasoning() -> None:
    names = {name.split("_")[0] for pair, _, _ in PAIRS for name in pair.split("+")}
    assert names >= {"10", "11", "14", "15", "31", "32", "37", "37b", "41", "41b", "R1", "R2"}


@pytest.mark.parametrize(("names", "response", "body"), PAIRS, ids=[n for n, _, _ in PAIRS])
def test_recorded_stream_and_non_stream_answers_translate_alike(
    names: str, response: dict, body: bytes
) -> None:
    streamed = sdk_message(transcode(body))
    plain = to_anthropic(response, "claude-test")
    # Tool-call ids differ between the two recordings; everything else must match.
    assert blocks(streamed.content, ids=False) == blocks(plain["content"], ids=False)
    assert (streamed.stop_reason, streamed.stop_sequence) == (plain["stop_reason"], plain["stop_sequence"])
    assert streamed.usage.output_tokens == plain["usage"]["output_tokens"]


# --- split invariance ---------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(FIXTURES), st.lists(st.integers(0, 1 << 20), max_size=30))
def test_random_splits_give_identical_output(fixture: tuple[str, bytes], cuts: list[int]) -> None:
    body = fixture[1]
    assert transcode(*split_at(body, cuts)) == transcode(body)


@pytest.mark.parametrize("prefix", ["R4_", "41b_"])
def test_byte_by_byte_gives_identical_output(prefix: str) -> None:
    body = next(b for n, b in FIXTURES if n.startswith(prefix))
    assert transcode(*(body[i : i + 1] for i in range(len(body)))) == transcode(body)


def test_every_two_way_split_of_a_short_stream() -> None:
    body = next(b for n, b in FIXTURES if n.startswith("15_")).replace(b"\n", b"\r\n")
    whole = transcode(body)
    assert all(transcode(body[:i], body[i:]) == whole for i in range(len(body) + 1))
