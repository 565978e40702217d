"""POST /v1/chat/completions through real HTTP, when all goes well: the ``openai`` SDK through the
pass-through, usage forced upstream and dropped again for a client that did not ask, and the stream's
bytes passed on unchanged."""

from __future__ import annotations

import re

from chat_completions_harness import HELLO, Start, start_fixture  # noqa: F401  (the `start` fixture)
from fake_vllm import FakeVLLM, Turn


async def test_openai_sdk_non_streaming(start: Start) -> None:
    rig = await start()
    client = rig.openai()
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=HELLO, max_tokens=50
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == rig.fakes["default"].default.text
    assert raw.headers["x-router-backend"] == "default"
    assert raw.headers["x-router-model"] == "text-model"
    sent = rig.fakes["default"].requests[-1]
    assert sent["model"] == "text-model"  # unknown client model: the default backend, its model
    assert "stream_options" not in sent
    info = await rig.telemetry.last()
    assert (info.backend, info.backend_model, info.client_model) == ("default", "text-model", "gpt-4o")
    assert info.route_rule == "default" and info.stop_reason == completion.choices[0].finish_reason == "stop"
    assert info.input_tokens == completion.usage.prompt_tokens > 0
    assert info.output_tokens == completion.usage.completion_tokens > 0
    await client.close()


async def test_openai_sdk_streaming_without_usage(start: Start) -> None:
    rig = await start()
    client = rig.openai()
    stream = await client.chat.completions.create(model="small", messages=HELLO, stream=True)
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == rig.fakes["small"].default.text
    assert all(c.usage is None for c in chunks) and all(c.choices for c in chunks)  # usage frame dropped
    sent = rig.fakes["small"].requests[-1]
    assert sent["model"] == "small-model" and sent["stream_options"] == {"include_usage": True}
    info = await rig.telemetry.last()
    assert (info.backend, info.route_rule, info.stop_reason) == ("small", "model", "stop")
    assert info.output_tokens == len(chunks) - 1 > 0  # the fake sends one token per chunk after the role
    assert info.input_tokens > 0 and info.ttft is not None and 0 < info.ttft <= info.duration
    await client.close()


async def test_openai_sdk_streaming_with_usage(start: Start) -> None:
    rig = await start()
    client = rig.openai()
    stream = await client.chat.completions.create(
        model="small-model", messages=HELLO, stream=True, stream_options={"include_usage": True}, max_tokens=3
    )
    chunks = [c async for c in stream]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3
    assert (await rig.telemetry.last()).output_tokens == 3
    assert (await rig.telemetry.last()).stop_reason == "length"
    await client.close()


async def test_continuous_usage_is_not_turned_on_for_a_client_that_did_not_ask(start: Start) -> None:
    rig = await start()
    body = {
        "model": "x",
        "messages": HELLO,
        "stream": True,
        "stream_options": {"continuous_usage_stats": True},
    }
    async with await rig.post(body) as resp:
        data = await resp.read()
    assert rig.fakes["default"].requests[-1]["stream_options"] == {"include_usage": True}
    assert b'"usage"' not in data and data.endswith(b"data: [DONE]\n\n")
    assert (await rig.telemetry.last()).output_tokens > 0


async def test_stream_bytes_are_passed_through_unchanged(start: Start) -> None:
    # The fake writes its error frame with json.dumps spacing: any re-encoding would show.
    turn = Turn(text=["caf\u00e9", " \u2603", ' "q"'], error_after=3, error="engine hiccup", status=500)
    direct = FakeVLLM("text-model")
    rig = await start({"default": FakeVLLM("text-model"), "direct": direct})
    rig.fakes["default"].script(turn)
    direct.script(turn)
    body = {
        "model": "text-model",
        "messages": HELLO,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    async with await rig.post(body) as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        assert resp.headers["x-router-backend"] == "default"
        via_router = await resp.read()
    direct_url = str(rig.servers["direct"].make_url("/v1/chat/completions"))  # type: ignore[attr-defined]
    async with rig.session.post(direct_url, json=body) as resp:
        expected = await resp.read()
    created = re.compile(rb'"created":\d+')
    assert created.sub(b"", via_router) == created.sub(b"", expected)
    assert b'data: {"error": {"message": "engine hiccup"' in via_router
    assert (await rig.telemetry.last()).error_type == "overloaded_error"  # a 5xx frame: retryable
