"""POST /v1/chat/completions once the answer has started: a backend error or drop mid-stream, a client
that leaves (the backend request is aborted), and keep-alive comments while a long prefill runs."""

from __future__ import annotations

import asyncio

import openai
import orjson
import pytest
from chat_completions_harness import HELLO, Start, start_fixture  # noqa: F401  (the `start` fixture)
from fake_vllm import Turn


async def test_vllm_mid_stream_error_reaches_the_openai_sdk(start: Start) -> None:
    rig = await start()
    rig.fakes["default"].script(
        Turn(text="one two three four", error_after=2, error="engine died", status=500)
    )
    client = rig.openai()
    stream = await client.chat.completions.create(model="m", messages=HELLO, stream=True)
    with pytest.raises(openai.APIError, match="engine died"):
        async for _ in stream:
            pass
    await client.close()


async def test_dropped_backend_ends_the_stream_with_an_error_frame_and_done(start: Start) -> None:
    rig = await start()
    rig.fakes["default"].script(Turn(text="one two three four", drop_after=2))
    async with await rig.post({"model": "m", "messages": HELLO, "stream": True}) as resp:
        assert resp.status == 200
        data = await resp.read()
    frames = data.split(b"\n\n")
    assert frames[-1] == b"" and frames[-2] == b"data: [DONE]"
    err = orjson.loads(frames[-3].removeprefix(b"data: "))["error"]
    assert err["type"] == "api_error" and err["code"] == 502
    assert data.count(b'"content":"one"') == 1  # what came before the drop was forwarded
    assert (await rig.telemetry.last()).error_type == "api_error"


async def test_client_disconnect_aborts_the_backend_request(start: Start) -> None:
    rig = await start()
    rig.fakes["default"].script(Turn(text="a b c d e f g h", delay_per_token=0.2))
    resp = await rig.post({"model": "m", "messages": HELLO, "stream": True})
    assert resp.status == 200
    await resp.content.readuntil(b"\n\n")  # the stream is flowing
    resp.close()  # the client goes away
    event = await rig.fakes["default"].wait_event(0, timeout=3)
    assert event.outcome == "disconnected" and event.chunks < 8
    info = await rig.telemetry.last()
    assert info.client_aborted and info.status == 499


async def test_client_disconnect_aborts_a_non_streaming_backend_request(start: Start) -> None:
    rig = await start()
    rig.fakes["default"].script(Turn(hang=True))
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(rig.post({"model": "m", "messages": HELLO}), 0.3)
    event = await rig.fakes["default"].wait_event(0, timeout=3)
    assert event.outcome == "disconnected"
    assert (await rig.telemetry.last()).client_aborted


async def test_keepalive_comments_during_a_long_prefill(start: Start) -> None:
    rig = await start(PING_INTERVAL="0.05")
    rig.fakes["default"].script(Turn(text="late reply", delay_first=0.4))
    async with await rig.post({"model": "m", "messages": HELLO, "stream": True}) as resp:
        data = await resp.read()
    assert data.startswith(b": keep-alive\n\n") and data.count(b": keep-alive\n\n") >= 3
    rig.fakes["default"].script(Turn(text="late reply", delay_first=0.2))
    client = rig.openai()
    stream = await client.chat.completions.create(model="m", messages=HELLO, stream=True)
    assert "".join([c.choices[0].delta.content or "" async for c in stream]) == "late reply"
    await client.close()
