"""POST /v1/messages end to end: the official anthropic SDK → router → fake vLLM, over real sockets."""

from __future__ import annotations

import asyncio

import anthropic
import orjson
import pytest
from aiohttp.test_utils import TestClient
from anthropic_stream_check import check_stream
from conftest import AUTH
from fake_vllm import FakeVLLM, Turn

HELLO = [{"role": "user", "content": "hello"}]


async def test_non_streaming_text(sdk: anthropic.AsyncAnthropic, vllm: FakeVLLM) -> None:
    vllm.script(Turn(text="Hi there, friend."))
    msg = await sdk.messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=HELLO)
    assert msg.model == "claude-sonnet-4-5"
    assert [b.type for b in msg.content] == ["text"]
    assert msg.content[0].text == "Hi there, friend."  # type: ignore[union-attr]
    assert msg.stop_reason == "end_turn"
    sent = vllm.requests[0]
    assert sent["model"] == "tiny" and sent["max_tokens"] == 50
    assert msg.usage.output_tokens > 0 and msg.usage.input_tokens > 0


async def test_streaming_usage_equals_backend_usage(sdk: anthropic.AsyncAnthropic, vllm: FakeVLLM) -> None:
    vllm.script(Turn(text="One two three four five."))
    async with sdk.messages.stream(model="m", max_tokens=50, messages=HELLO) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    assert text == "One two three four five."
    assert final.stop_reason == "end_turn"
    vllm.script(Turn(text="One two three four five."))
    again = await sdk.messages.create(model="m", max_tokens=50, messages=HELLO)
    assert (final.usage.input_tokens, final.usage.output_tokens) == (
        again.usage.input_tokens,
        again.usage.output_tokens,
    )
    assert vllm.requests[0]["stream_options"] == {"include_usage": True, "continuous_usage_stats": True}


async def test_tool_round_trip(sdk: anthropic.AsyncAnthropic, vllm: FakeVLLM) -> None:
    tools = [
        {
            "name": "get_weather",
            "description": "weather",
            "input_schema": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        }
    ]
    vllm.script(Turn(text="Let me check.", tool_calls=[("get_weather", ['{"city": ', '"Paris"}'])]))
    async with sdk.messages.stream(model="m", max_tokens=100, messages=HELLO, tools=tools) as stream:
        first = await stream.get_final_message()
    assert first.stop_reason == "tool_use"
    tool_use = first.content[-1]
    assert tool_use.type == "tool_use" and tool_use.input == {"city": "Paris"}
    vllm.script(Turn(text="It is sunny in Paris."))
    history = [
        *HELLO,
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "sunny"}],
        },
    ]
    second = await sdk.messages.create(model="m", max_tokens=100, messages=history, tools=tools)
    assert second.content[0].text == "It is sunny in Paris."  # type: ignore[union-attr]
    sent = vllm.requests[1]["messages"]
    assert sent[1]["tool_calls"][0]["id"] == tool_use.id
    assert sent[2] == {"role": "tool", "tool_call_id": tool_use.id, "content": "sunny"}


async def test_parallel_tools_and_thinking_then_text(sdk: anthropic.AsyncAnthropic, vllm: FakeVLLM) -> None:
    vllm.script(
        Turn(
            reasoning="I should call both.",
            text="Calling.",
            tool_calls=[("a", '{"x": 1}'), ("b", '{"y": [1, 2]}')],
        )
    )
    async with sdk.messages.stream(
        model="m", max_tokens=200, messages=HELLO, thinking={"type": "enabled", "budget_tokens": 1024}
    ) as stream:
        msg = await stream.get_final_message()
    assert [b.type for b in msg.content] == ["thinking", "text", "tool_use", "tool_use"]
    assert msg.content[0].thinking == "I should call both."  # type: ignore[union-attr]
    assert [b.input for b in msg.content[2:]] == [{"x": 1}, {"y": [1, 2]}]  # type: ignore[union-attr]
    assert vllm.requests[0]["chat_template_kwargs"] == {"enable_thinking": True}


async def test_stop_sequence_reported(sdk: anthropic.AsyncAnthropic, vllm: FakeVLLM) -> None:
    vllm.script(Turn(text="alpha beta STOP gamma"), Turn(text="alpha beta STOP gamma"))
    msg = await sdk.messages.create(model="m", max_tokens=50, messages=HELLO, stop_sequences=["STOP"])
    assert (msg.stop_reason, msg.stop_sequence) == ("stop_sequence", "STOP")
    async with sdk.messages.stream(model="m", max_tokens=50, messages=HELLO, stop_sequences=["STOP"]) as s:
        streamed = await s.get_final_message()
    assert (streamed.stop_reason, streamed.stop_sequence) == ("stop_sequence", "STOP")
    assert vllm.requests[0]["stop"] == ["STOP"]


async def test_max_tokens_stop_reason(sdk: anthropic.AsyncAnthropic, vllm: FakeVLLM) -> None:
    vllm.script(Turn(text="a b c d e f g h i j k l m n o p"))
    msg = await sdk.messages.create(model="m", max_tokens=3, messages=HELLO)
    assert msg.stop_reason == "max_tokens" and msg.usage.output_tokens == 3


async def test_image_reaches_backend_as_data_uri(sdk: anthropic.AsyncAnthropic, vllm: FakeVLLM) -> None:
    vllm.config.multimodal = True
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    await sdk.messages.create(
        model="m",
        max_tokens=10,
        messages=[{"role": "user", "content": [image, {"type": "text", "text": "what?"}]}],
    )
    parts = vllm.requests[0]["messages"][0]["content"]
    assert parts[0] == {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}


@pytest.mark.parametrize(
    ("turn", "exc"),
    [
        (Turn(status=400, error="bad things"), anthropic.BadRequestError),
        (Turn(status=404, error="The model `x` does not exist."), anthropic.NotFoundError),
        (Turn(status=429, error="slow down"), anthropic.RateLimitError),
        (Turn(status=503, error="busy"), anthropic.InternalServerError),
        (Turn(status=500, error="oops"), anthropic.InternalServerError),
    ],
)
async def test_backend_errors_raise_matching_sdk_exceptions(
    sdk: anthropic.AsyncAnthropic, vllm: FakeVLLM, turn: Turn, exc: type[Exception]
) -> None:
    vllm.script(turn, turn)
    with pytest.raises(exc) as info:
        await sdk.messages.create(model="m", max_tokens=10, messages=HELLO)
    assert info.value.body["type"] == "error"  # type: ignore[attr-defined]
    # Streaming: the backend failed before the first token, so the real status still reaches the client.
    with pytest.raises(exc):
        async with sdk.messages.stream(model="m", max_tokens=10, messages=HELLO) as s:
            await s.get_final_message()


async def test_overloaded_backend_is_529_with_retry_hint(router: TestClient, vllm: FakeVLLM) -> None:
    vllm.script(Turn(status=503, error="queue full"))
    resp = await router.post(
        "/v1/messages", json={"model": "m", "max_tokens": 5, "messages": HELLO}, headers=AUTH
    )
    assert resp.status == 529
    assert resp.headers["x-should-retry"] == "true"
    assert (await resp.json())["error"]["type"] == "overloaded_error"


async def test_context_overflow_is_rewritten_for_claude_code(router: TestClient, vllm: FakeVLLM) -> None:
    vllm.script(Turn(prompt_tokens=9000))
    resp = await router.post(
        "/v1/messages", json={"model": "m", "max_tokens": 5, "messages": HELLO}, headers=AUTH
    )
    assert resp.status == 400
    assert (await resp.json())["error"]["message"].startswith(
        "prompt is too long: 8193 tokens > 8192 maximum"
    )  # vLLM 0.32 says "at least"


async def test_max_tokens_capped_at_context_length(router: TestClient, vllm: FakeVLLM) -> None:
    resp = await router.post(
        "/v1/messages", json={"model": "m", "max_tokens": 32000, "messages": HELLO}, headers=AUTH
    )
    assert resp.status == 200, await resp.text()
    assert vllm.requests[0]["max_tokens"] == 8192


async def test_mid_stream_error_becomes_overloaded_event(router: TestClient, vllm: FakeVLLM) -> None:
    vllm.script(Turn(text="a b c d e f", error_after=2, status=500, error="engine died"))
    body = {"model": "m", "max_tokens": 50, "messages": HELLO, "stream": True}
    resp = await router.post("/v1/messages", json=body, headers=AUTH)
    assert resp.status == 200
    raw = await resp.read()
    events = check_stream(raw)
    assert events[-1]["type"] == "error"
    assert b'"type":"overloaded_error"' in raw  # what Claude Code looks for before retrying


async def test_backend_dropping_mid_stream_ends_with_error_event(router: TestClient, vllm: FakeVLLM) -> None:
    vllm.script(Turn(text="a b c d e f", drop_after=2))
    resp = await router.post(
        "/v1/messages", json={"model": "m", "max_tokens": 50, "messages": HELLO, "stream": True}, headers=AUTH
    )
    events = check_stream(await resp.read())
    assert events[-1]["type"] == "error"


async def test_prefill_silence_sends_pings_then_answers(router_factory, vllm_server, vllm: FakeVLLM) -> None:
    client = await router_factory(vllm_server, PING_INTERVAL="0.05")
    vllm.script(Turn(text="late answer", delay_headers=0.3))
    resp = await client.post(
        "/v1/messages", json={"model": "m", "max_tokens": 50, "messages": HELLO, "stream": True}, headers=AUTH
    )
    raw = await resp.read()
    assert raw.count(b"event: ping") >= 2
    events = check_stream(raw)
    assert events[-1]["type"] == "message_stop"
    assert (
        "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")
        == "late answer"
    )


async def test_error_after_pings_is_an_event_not_a_status(
    router_factory, vllm_server, vllm: FakeVLLM
) -> None:
    client = await router_factory(vllm_server, PING_INTERVAL="0.05")
    vllm.script(Turn(status=503, error="busy", delay_headers=0.2))
    resp = await client.post(
        "/v1/messages", json={"model": "m", "max_tokens": 5, "messages": HELLO, "stream": True}, headers=AUTH
    )
    assert resp.status == 200
    events = check_stream(await resp.read())
    assert events[-1] == {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}', "model"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "x"}]}', "max_tokens"),
        (b'{"model": "m", "max_tokens": 5, "messages": []}', "messages"),
        (b'{"model": "m", "max_tokens": 5, "messages": [{"role": "bot", "content": "x"}]}', "role"),
    ],
)
async def test_bad_requests_get_anthropic_400(
    router: TestClient, vllm: FakeVLLM, body: bytes, needle: str
) -> None:
    resp = await router.post("/v1/messages", data=body, headers={**AUTH, "content-type": "application/json"})
    assert resp.status == 400
    data = await resp.json()
    assert data["type"] == "error" and data["error"]["type"] == "invalid_request_error"
    assert needle in data["error"]["message"]
    assert data["request_id"] == resp.headers["request-id"]
    assert vllm.requests == []


async def test_query_string_is_ignored(router: TestClient) -> None:
    resp = await router.post(
        "/v1/messages?beta=true", json={"model": "m", "max_tokens": 5, "messages": HELLO}, headers=AUTH
    )
    assert resp.status == 200
    assert orjson.loads(await resp.read())["type"] == "message"


async def test_wrong_key_raises_authentication_error(router: TestClient, vllm: FakeVLLM) -> None:
    client = anthropic.AsyncAnthropic(base_url=str(router.make_url("")), api_key="wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as info:
        await client.messages.create(model="m", max_tokens=5, messages=HELLO)
    assert info.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    assert "wrong" not in str(info.value.body)
    await client.close()
    assert vllm.requests == []


async def test_body_over_max_body_mb_is_413(router_factory, vllm_server, vllm: FakeVLLM) -> None:
    client = await router_factory(vllm_server, MAX_BODY_MB="0.01")
    sdk = anthropic.AsyncAnthropic(
        base_url=str(client.make_url("")), api_key=AUTH["x-api-key"], max_retries=0
    )
    with pytest.raises(anthropic.APIStatusError) as info:
        await sdk.messages.create(
            model="m", max_tokens=5, messages=[{"role": "user", "content": "x" * 20000}]
        )
    assert info.value.status_code == 413
    assert info.value.body["error"]["type"] == "request_too_large"  # type: ignore[index]
    await sdk.close()
    assert vllm.requests == []


async def test_finished_stream_returns_its_backend_connection_to_the_pool(
    aiohttp_server, router_factory
) -> None:
    """The chunked terminator often arrives after ``[DONE]``; the router must read it, not drop the
    connection, or every stream pays a new TCP handshake to vLLM."""
    from aiohttp import web

    from router.keys import UPSTREAM

    peers: list[object] = []
    frame = (
        b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"tiny","choices":[{"index":0,'
        b'"delta":{"content":"hi"},"logprobs":null,"finish_reason":"stop","stop_reason":null}],'
        b'"usage":{"prompt_tokens":3,"total_tokens":4,"completion_tokens":1}}\n\n'
    )

    async def chat(request: web.Request) -> web.StreamResponse:
        await request.read()
        peers.append(request.transport.get_extra_info("peername"))  # type: ignore[union-attr]
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(frame + b"data: [DONE]\n\n")
        await asyncio.sleep(0.05)  # the terminator comes in a later segment
        await resp.write_eof()
        return resp

    async def health(request: web.Request) -> web.Response:
        return web.Response()

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": "tiny", "max_model_len": 8192}]})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/health", health)
    app.router.add_get("/v1/models", models)
    client = await router_factory(await aiohttp_server(app))
    body = {"model": "m", "max_tokens": 50, "messages": HELLO, "stream": True}
    for _ in range(3):
        resp = await client.post("/v1/messages", json=body, headers=AUTH)
        assert check_stream(await resp.read())[-1]["type"] == "message_stop"
    assert len(set(peers)) == 1, peers  # one keep-alive connection served all three streams
    connector = client.app[UPSTREAM].session.connector  # type: ignore[index,union-attr]
    for _ in range(100):  # the handler finishes reading the terminator after the client is done
        if not connector._acquired:  # type: ignore[union-attr]
            break
        await asyncio.sleep(0.01)
    assert not connector._acquired  # type: ignore[union-attr]
