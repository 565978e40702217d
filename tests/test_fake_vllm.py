"""The fake vLLM against the real one: recorded vLLM 0.32 exchanges are replayed against the fake and
must come back byte for byte (ids and timestamps aside), plus the scripted behaviours router tests use
(stalls, mid-stream errors, dropped connections, disconnect detection)."""

from __future__ import annotations

import json
import re

import aiohttp
import pytest
from fake_vllm import FakeVLLM, Turn, count_prompt_tokens, max_tokens_overflow_message, tokenize
from vllm_fixtures import available, load_exchange

pytestmark = pytest.mark.skipif(not available(), reason="shared vLLM fixtures not present")

CHAT = "/v1/chat/completions"
_IDS = re.compile(rb'"(chatcmpl-)[0-9a-f]{16}"|"created":\d+')


def frames(body: bytes) -> list[bytes]:
    return [f.strip() for f in body.split(b"\n\n") if f.strip()]


def chunks(body: bytes) -> list[dict]:
    return [json.loads(f[6:]) for f in frames(body) if f != b"data: [DONE]"]


def normal(data: bytes) -> bytes:
    """Drop what differs between any two runs of vLLM itself: the completion id and ``created``."""
    return _IDS.sub(b"<id>", data)


def mask_counts(data: bytes) -> bytes:
    """For tool calls, where the real model spent tokens on markup the fake does not emit."""
    return re.sub(rb'"(completion|total)_tokens":\d+', rb'"\1_tokens":0', data)


def stream_turn(body: bytes) -> Turn:
    """The scripted turn that makes the fake say what the recorded stream said, token for token."""
    reasoning, text, calls = [], [], {}
    for chunk in chunks(body):
        for choice in chunk["choices"]:
            delta = choice["delta"]
            if delta.get("reasoning"):
                reasoning.append(delta["reasoning"])
            if delta.get("content") and "role" not in delta:
                text.append(delta["content"])
            for call in delta.get("tool_calls") or []:
                if "id" in call:
                    calls[call["index"]] = (call["function"]["name"], [], call["id"])
                else:
                    calls[call["index"]][1].append(call["function"]["arguments"])
            if isinstance(choice.get("stop_reason"), str):  # the stop string hid the end of this token
                text[-1] += choice["stop_reason"]
    return Turn(text=text, reasoning=reasoning, tool_calls=list(calls.values()))


def prompt_of(body: bytes) -> int | None:
    usages = [c["usage"] for c in chunks(body) if c.get("usage")] or [{}]
    return usages[-1].get("prompt_tokens")


def fingerprint_of(body: bytes) -> str:
    return re.search(rb'"system_fingerprint":"([^"]+)"', body).group(1).decode()


async def replay(client, exchange: dict, **headers: str) -> aiohttp.ClientResponse:
    headers = {"Content-Type": "application/json", **headers}
    return await client.request(
        exchange["method"], exchange["path"], data=exchange["request_raw"], headers=headers
    )


STREAMS = [
    "11_chat_basic_stream_usage",
    "12_chat_stream_no_stream_options",
    "13_chat_stream_continuous_usage",
    "15_chat_stop_sequence_stream",
    "17_chat_max_tokens_length_stream",
    "30_tools_auto_stream",
    "32_tools_required_strict_stream",
    "34_tools_named_strict_stream",
    "37b_tools_required_strict_parallel_stream",
    "41b_tools_auto_strict_text_then_call_stream",
    "R2_chat_reasoning_stream",
    "R3_chat_reasoning_truncated_stream",
    "R4_chat_reasoning_tools_required_strict_stream",
]


@pytest.mark.parametrize("name", STREAMS)
async def test_stream_replays_byte_for_byte(aiohttp_client, name):
    recorded = load_exchange(name)
    fake = FakeVLLM(
        reasoning_parser=name.startswith("R"), system_fingerprint=fingerprint_of(recorded["body"])
    )
    turn = stream_turn(recorded["body"])
    turn.prompt_tokens = prompt_of(recorded["body"])
    fake.script(turn)
    resp = await replay(await aiohttp_client(fake.app), recorded)
    assert resp.status == 200
    assert resp.headers["Content-Type"] == recorded["headers"]["content-type"]
    assert "Content-Length" not in resp.headers and resp.headers["Server"] == "uvicorn"
    expected, got = normal(recorded["body"]), normal(await resp.read())
    if turn.tool_calls:
        expected, got = mask_counts(expected), mask_counts(got)
    assert frames(got) == frames(expected)


NON_STREAMS = {  # recorded non-stream file -> the stream of the same generation (exact token counts)
    "10_chat_basic": "11_chat_basic_stream_usage",
    "14_chat_stop_sequence": "15_chat_stop_sequence_stream",
    "16_chat_max_tokens_length": "17_chat_max_tokens_length_stream",
    "R1_chat_reasoning": "R2_chat_reasoning_stream",
    "31_tools_required_strict": None,
    "33_tools_named_strict": None,
    "37_tools_required_strict_parallel": None,
    "41_tools_auto_strict_text_then_call": None,
}


@pytest.mark.parametrize("name", NON_STREAMS)
async def test_non_stream_replays_byte_for_byte(aiohttp_client, name):
    recorded = load_exchange(name)
    message = json.loads(recorded["body"])["choices"][0]["message"]
    fake = FakeVLLM(
        reasoning_parser=name.startswith("R"), system_fingerprint=fingerprint_of(recorded["body"])
    )
    if NON_STREAMS[name]:
        turn = stream_turn(load_exchange(NON_STREAMS[name])["body"])
    else:
        calls = [(c["function"]["name"], c["function"]["arguments"], c["id"]) for c in message["tool_calls"]]
        turn = Turn(text=message["content"] or "", tool_calls=calls)
    turn.prompt_tokens = json.loads(recorded["body"])["usage"]["prompt_tokens"]
    fake.script(turn)
    resp = await replay(await aiohttp_client(fake.app), recorded)
    assert resp.status == 200
    assert resp.headers["Content-Type"] == recorded["headers"]["content-type"]
    expected, got = normal(recorded["body"]), normal(await resp.read())
    if turn.tool_calls:
        expected, got = mask_counts(expected), mask_counts(got)
    assert got == expected


ERRORS = [
    "45_chat_image_part",
    "55_tokenize_unknown_model",
    "60_err_invalid_json",
    "61_err_missing_messages",
    "63_err_unknown_model",
    "64_err_context_overflow_prompt",
    "66_err_max_tokens_huge",
    "68_err_bad_type",
    "69_err_empty_messages",
    "70_err_tool_choice_required_without_tools",
    "71_err_named_tool_not_in_tools",
    "72_err_404_path",
    "73_err_405_method",
    "74_err_negative_max_tokens",
    "75_err_stream_unknown_model",
    "76_err_stream_context_overflow",
    "77_err_wrong_content_type",
]


@pytest.mark.parametrize("name", ERRORS)
async def test_errors_replay_exactly(aiohttp_client, name):
    recorded = load_exchange(name)
    fake = FakeVLLM()
    content_type = "application/x-www-form-urlencoded" if name.startswith("77") else "application/json"
    resp = await replay(await aiohttp_client(fake.app), recorded, **{"Content-Type": content_type})
    assert resp.status == recorded["status"]
    assert await resp.read() == recorded["body"]
    for header in ("content-type", "allow"):
        assert resp.headers.get(header) == recorded["headers"].get(header)
    assert fake.pending == 0 and all(e.outcome == "rejected" for e in fake.events)


@pytest.mark.parametrize("name", ["62_err_missing_model", "67_err_bad_role"])
async def test_lenient_requests_are_accepted_like_vllm(aiohttp_client, name):
    resp = await replay(await aiohttp_client(FakeVLLM().app), load_exchange(name))
    assert resp.status == 200 and (await resp.json())["model"] == "tiny"


async def test_info_endpoints_match_recordings(aiohttp_client):
    client = await aiohttp_client(FakeVLLM(max_model_len=4096).app)
    health = await client.get("/health")
    assert (health.status, await health.read(), health.headers.get("Content-Type")) == (200, b"", None)
    version = await client.get("/version")
    assert await version.read() == load_exchange("02_version")["body"]
    models, recorded = (
        await (await client.get("/v1/models")).json(),
        json.loads(load_exchange("01_models")["body"]),
    )

    def keys(value):
        if isinstance(value, dict):
            return [(k, keys(v)) for k, v in value.items()]
        return [keys(v) for v in value] if isinstance(value, list) else type(value).__name__

    assert keys(models) == keys(recorded)
    assert models["data"][0]["max_model_len"] == 4096


@pytest.mark.parametrize(
    "name",
    [
        "50_tokenize_messages",
        "51_tokenize_messages_tools",
        "52_tokenize_prompt",
        "53_tokenize_messages_no_gen_prompt",
    ],
)
async def test_tokenize_shapes_and_counts(aiohttp_client, name):
    recorded = load_exchange(name)
    resp = await replay(await aiohttp_client(FakeVLLM().app), recorded)
    got, expected = await resp.json(), json.loads(recorded["body"])
    assert list(got) == list(expected) == ["count", "max_model_len", "tokens", "token_strs"]
    assert got["count"] == len(got["tokens"]) and all(isinstance(t, int) for t in got["tokens"])
    assert (got["token_strs"] is None) == (expected["token_strs"] is None)
    req = recorded["request"]
    if "messages" in req:
        gen = req.get("add_generation_prompt", True)
        assert got["count"] == count_prompt_tokens(req["messages"], req.get("tools"), gen)
    else:
        assert got["count"] == len(tokenize(req["prompt"]))


async def test_tokenize_count_equals_chat_prompt_tokens(aiohttp_client):
    fake = FakeVLLM()
    client = await aiohttp_client(fake.app)
    chat = load_exchange("31_tools_required_strict")["request"]
    counted = await (
        await client.post("/tokenize", json={k: chat[k] for k in ("model", "messages", "tools")})
    ).json()
    reply = await (await client.post(CHAT, json=chat)).json()
    assert counted["count"] == reply["usage"]["prompt_tokens"] > count_prompt_tokens(chat["messages"])


async def test_prompt_plus_max_tokens_is_clamped_like_vllm_032(aiohttp_client):
    fake = FakeVLLM()
    fake.script(Turn(text="word " * 100, prompt_tokens=8175))
    reply = await (
        await (await aiohttp_client(fake.app)).post(
            CHAT, json=load_exchange("65b_max_tokens_clamped_to_context")["request"]
        )
    ).json()
    assert reply["choices"][0]["finish_reason"] == "length"
    assert reply["usage"] == json.loads(load_exchange("65b_max_tokens_clamped_to_context")["body"])["usage"]


async def test_older_vllm_rejects_prompt_plus_max_tokens(aiohttp_client):
    fake = FakeVLLM(max_model_len=100, clamp_max_tokens=False)
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 90}
    resp = await (await aiohttp_client(fake.app)).post(CHAT, json=body)
    prompt = count_prompt_tokens(body["messages"])
    assert resp.status == 400
    assert (await resp.json())["error"] == {
        "message": max_tokens_overflow_message(90, 100, prompt),
        "type": "BadRequestError",
        "param": "max_tokens",
        "code": 400,
    }
