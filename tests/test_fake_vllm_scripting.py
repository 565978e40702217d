"""The fake vLLM's scripted behaviours that router tests rely on: script order and recording, auth,
health, pre-stream and mid-stream errors, dropped connections, stalls, disconnect detection, and the
token accounting options."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import aiohttp
import orjson
import pytest
from aiohttp import web
from fake_vllm import FakeVLLM, Turn, tokenize

CHAT = "/v1/chat/completions"


def frames(body: bytes) -> list[bytes]:
    return [f.strip() for f in body.split(b"\n\n") if f.strip()]


def chunks(body: bytes) -> list[dict]:
    return [json.loads(f[6:]) for f in frames(body) if f != b"data: [DONE]"]


def body_for(stream: bool = True, **extra) -> dict:
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hello"}], "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body | extra


async def test_script_order_default_reply_and_recording(aiohttp_client):
    fake = FakeVLLM()
    fake.script(Turn(text="one"), Turn(text="two"))
    client = await aiohttp_client(fake.app)
    texts = []
    for _ in range(3):
        resp = await client.post(CHAT, json=body_for(False), headers={"X-Trace": "t"})
        texts.append((await resp.json())["choices"][0]["message"]["content"])
    assert texts == ["one", "two", fake.default.text]
    assert fake.requests == [body_for(False)] * 3 and fake.request_headers[1]["x-trace"] == "t"
    assert [e.outcome for e in fake.events] == ["completed"] * 3


async def test_api_key_guards_v1_only(aiohttp_client):
    client = await aiohttp_client(FakeVLLM(api_key="sekret").app)
    denied = await client.post(CHAT, json=body_for(False))
    assert (denied.status, await denied.read()) == (401, b'{"error":"Unauthorized"}')
    ok = await client.post(CHAT, json=body_for(False), headers={"Authorization": "Bearer sekret"})
    assert ok.status == 200
    assert (await client.post("/tokenize", json={"prompt": "hi"})).status == 200


async def test_unhealthy_engine(aiohttp_client):
    fake = FakeVLLM()
    fake.healthy = False
    client = await aiohttp_client(fake.app)
    assert (await client.get("/health")).status == 503
    resp = await client.post(CHAT, json=body_for())
    assert resp.status == 503 and (await resp.json())["error"]["code"] == 503


@pytest.mark.parametrize("after", [0, 2])
async def test_mid_stream_error_frame_then_done(aiohttp_client, after):
    fake = FakeVLLM()
    fake.script(Turn(text="a b c d", error_after=after, error="boom"))
    resp = await (await aiohttp_client(fake.app)).post(CHAT, json=body_for())
    got = frames(await resp.read())
    assert resp.status == 200
    assert got[-2:] == [
        b'data: {"error": {"message": "boom", "type": "InternalServerError", "param": null, "code": 500}}',
        b"data: [DONE]",
    ]
    assert len(got) == 2 + (after + 1 if after else 0)  # role chunk + tokens, none when it fails at once


async def test_scripted_http_errors(aiohttp_client):
    fake = FakeVLLM()
    fake.script(
        Turn(status=429, error="slow down", headers={"Retry-After": "1"}),
        Turn(status=500, error={"object": "error", "message": "old shape"}),
        Turn(status=502, error=b"<html>bad gateway</html>"),
    )
    client = await aiohttp_client(fake.app)
    first = await client.post(CHAT, json=body_for())
    assert first.status == 429 and first.headers["Retry-After"] == "1"
    assert (await first.json())["error"] == {
        "message": "slow down",
        "type": "TooManyRequestsError",
        "param": None,
        "code": 429,
    }
    assert await (await client.post(CHAT, json=body_for())).json() == {
        "object": "error",
        "message": "old shape",
    }
    assert await (await client.post(CHAT, json=body_for())).read() == b"<html>bad gateway</html>"


async def test_rejected_request_does_not_consume_the_script(aiohttp_client):
    fake = FakeVLLM()
    fake.script(Turn(text="kept"))
    client = await aiohttp_client(fake.app)
    assert (await client.post(CHAT, json=body_for(model="nope"))).status == 404
    assert fake.pending == 1
    assert (await (await client.post(CHAT, json=body_for(False))).json())["choices"][0]["message"][
        "content"
    ] == "kept"


async def test_drop_after_cuts_the_connection(aiohttp_client):
    fake = FakeVLLM()
    fake.script(Turn(text="a b c d e", drop_after=2), Turn(text="x", drop_after=0))
    client = await aiohttp_client(fake.app)
    resp = await client.post(CHAT, json=body_for())
    with pytest.raises(aiohttp.ClientPayloadError):
        await resp.read()
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await client.post(CHAT, json=body_for(False))
    assert [(e.outcome, e.chunks) for e in fake.events] == [("dropped", 3), ("dropped", 0)]


@contextlib.asynccontextmanager
async def serve(app: web.Application, handler_cancellation: bool):
    """A real server with a chosen ``handler_cancellation`` (the test server always enables it)."""
    runner = web.AppRunner(app, handler_cancellation=handler_cancellation, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
            yield session
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("cancellation", [True, False])
@pytest.mark.parametrize(
    "turn",
    [
        Turn(text="a b c d e f", delay_per_token=0.3),
        Turn(hang=True),
        Turn(delay_first=5),
        Turn(delay_headers=5),
    ],
)
async def test_client_disconnect_is_seen_within_100ms(turn, cancellation):
    fake = FakeVLLM()
    fake.script(turn)
    async with serve(fake.app, cancellation) as session:
        request = asyncio.ensure_future(session.post(CHAT, json=body_for()))
        await asyncio.sleep(0.1)  # enough for the role chunk of the first turn
        closed = time.monotonic()
        if request.done():
            request.result().close()
        else:
            request.cancel()
        event = await fake.wait_event(0, timeout=1)
    assert event.outcome == "disconnected" and event.ended - closed < 0.1


async def test_hanging_request_does_not_stall_shutdown():
    fake = FakeVLLM()
    fake.script(Turn(hang=True))
    start = time.monotonic()
    async with serve(fake.app, False) as session:
        request = asyncio.ensure_future(session.post(CHAT, json=body_for(False)))
        await asyncio.sleep(0.05)
    request.cancel()
    assert time.monotonic() - start < 0.9 and (await fake.wait_event(0)).outcome == "disconnected"


async def test_delays(aiohttp_client):
    fake = FakeVLLM()
    fake.script(Turn(text="a b", delay_headers=0.15), Turn(text="a b", delay_first=0.4))
    client = await aiohttp_client(fake.app)
    start = time.monotonic()
    resp = await client.post(CHAT, json=body_for())
    assert time.monotonic() - start >= 0.15
    await resp.read()
    start = time.monotonic()
    resp = await client.post(CHAT, json=body_for())
    assert time.monotonic() - start < 0.3  # headers come at once, the first chunk after prefill
    await resp.content.readline()
    assert time.monotonic() - start >= 0.4


async def test_max_tokens_cuts_a_tool_call(aiohttp_client):
    fake = FakeVLLM()
    call = ("get_time", '{"tz": "UTC"}')
    fake.script(Turn(text="Hi", tool_calls=[call]), Turn(text="Hi", tool_calls=[call]))
    client = await aiohttp_client(fake.app)
    tools = [{"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}]
    streamed = chunks(await (await client.post(CHAT, json=body_for(max_tokens=4, tools=tools))).read())
    last = streamed[-2]["choices"][0]
    assert last["finish_reason"] == "length" and last["delta"]["tool_calls"][0]["function"] == {
        "arguments": '"'
    }
    reply = await (await client.post(CHAT, json=body_for(False, max_tokens=4, tools=tools))).json()
    message = reply["choices"][0]["message"]
    assert (
        "tool_calls" not in message
        and message["content"] == 'Hi<tool_call>{"name": "get_time", "arguments": {"'
    )


async def test_whole_call_in_first_delta_and_reasoning_content_field(aiohttp_client):
    fake = FakeVLLM(reasoning_field="reasoning_content")
    fake.script(Turn(reasoning="hmm", tool_calls=[("f", '{"a": 1}')], args_in_first_delta=True))
    resp = await (await aiohttp_client(fake.app)).post(
        CHAT, json=body_for(tools=[{"type": "function", "function": {"name": "f"}}])
    )
    deltas = [c["choices"][0]["delta"] for c in chunks(await resp.read()) if c["choices"]]
    assert deltas[1] == {"reasoning_content": "hmm"}
    assert deltas[2]["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"a": 1}'}
    assert deltas[3] == {} and len(deltas) == 4


async def test_usage_options(aiohttp_client):
    fake = FakeVLLM(prompt_tokens_details=True, force_include_usage=True)
    fake.script(Turn(text="a", cached_tokens=16), Turn(text="a", cached_tokens=16))
    client = await aiohttp_client(fake.app)
    streamed = chunks(await (await client.post(CHAT, json=body_for() | {"stream_options": None})).read())
    assert streamed[-1]["usage"]["prompt_tokens_details"] == {"cached_tokens": 16}
    reply = await (await client.post(CHAT, json=body_for(False))).json()
    assert reply["usage"]["prompt_tokens_details"] == {"cached_tokens": 16}
    assert list(reply["usage"]) == [  # vLLM's order (fixture 10_chat_basic)
        "prompt_tokens",
        "total_tokens",
        "completion_tokens",
        "prompt_tokens_details",
        "completion_tokens_details",
    ]


async def test_stop_string_and_eos_without_parser(aiohttp_client):
    fake = FakeVLLM(tool_parser=False)
    fake.script(Turn(text="Hello. World"), Turn(text="Hi"))
    client = await aiohttp_client(fake.app)
    streamed = chunks(await (await client.post(CHAT, json=body_for(stop=["zz", "."]))).read())
    assert [c["choices"][0] for c in streamed[1:-1]][-1] == {
        "index": 0,
        "delta": {"content": ""},
        "logprobs": None,
        "finish_reason": "stop",
        "stop_reason": ".",
        "token_ids": None,
    }
    assert streamed[-1]["usage"]["completion_tokens"] == 2
    eos = chunks(await (await client.post(CHAT, json=body_for())).read())[-2]["choices"][0]
    assert eos["delta"] == {"content": ""} and eos["finish_reason"] == "stop"  # no parser: an empty content


def test_tokenizer_is_lossless():
    text = 'Hi  there,\n{"a": 12345} ünï\t!'
    assert "".join(tokenize(text)) == text and len(tokenize(text)) > 5
    assert orjson.loads(orjson.dumps(tokenize(text))) == tokenize(text)
