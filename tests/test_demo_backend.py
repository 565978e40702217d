"""The ``make demo`` backend: OpenAI/vLLM-shaped answers that echo the user, call a named tool and
quote its result, streamed or not."""

from __future__ import annotations

import json

import pytest

from router.demo_backend import MAX_MODEL_LEN, MODEL, create_demo_app

CHAT = "/v1/chat/completions"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "f"]}},
            "required": ["city", "unit"],
        },
    },
}
BASH = {
    "type": "function",
    "function": {"name": "Bash", "parameters": {"properties": {"command": {"type": "string"}}}},
}


@pytest.fixture
async def client(aiohttp_client):
    return await aiohttp_client(create_demo_app(token_delay=0))


def user(text: str, **extra) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], **extra}


def sse(raw: bytes) -> list[dict | str]:
    frames = [f.removeprefix(b"data: ") for f in raw.split(b"\n\n") if f.strip()]
    return [f.decode() if f == b"[DONE]" else json.loads(f) for f in frames]


async def test_models_health_and_tokenize(client):
    models = await (await client.get("/v1/models")).json()
    assert [(m["id"], m["max_model_len"]) for m in models["data"]] == [(MODEL, MAX_MODEL_LEN)]
    assert (await client.get("/health")).status == 200
    counted = await (await client.post("/tokenize", json=user("Hello there, friend!"))).json()
    assert list(counted) == ["count", "max_model_len", "tokens", "token_strs"]
    reply = await (await client.post(CHAT, json=user("Hello there, friend!"))).json()
    assert counted["count"] == reply["usage"]["prompt_tokens"] == len(counted["tokens"]) > 5
    prompt = await (await client.post("/tokenize", json={"prompt": "one two, three"})).json()
    assert prompt["count"] == 4


async def test_echoes_the_user_streamed_and_not(client):
    reply = await (await client.post(CHAT, json=user("tell me about llamas"))).json()
    text = reply["choices"][0]["message"]["content"]
    assert "tell me about llamas" in text and reply["choices"][0]["finish_reason"] == "stop"
    body = user("tell me about llamas", stream=True, stream_options={"include_usage": True})
    resp = await client.post(CHAT, json=body)
    assert resp.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    frames = sse(await resp.read())
    assert frames[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""} and frames[-1] == "[DONE]"
    streamed = "".join(f["choices"][0]["delta"].get("content") or "" for f in frames[1:-2])
    assert streamed == text and len(frames) > 10  # one chunk per token
    assert frames[-3]["choices"][0]["finish_reason"] == "stop"
    assert frames[-2]["choices"] == [] and frames[-2]["usage"] == reply["usage"]


async def test_no_usage_chunk_unless_asked(client):
    frames = sse(await (await client.post(CHAT, json=user("hi", stream=True))).read())
    assert all("usage" not in f for f in frames[:-1]) and frames[-2]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("stream", [False, True])
async def test_weather_question_calls_the_tool(client, stream):
    body = user("What is the weather in Tokyo?", tools=[BASH, WEATHER], stream=stream)
    resp = await client.post(CHAT, json=body)
    if stream:
        frames = sse(await resp.read())
        calls = [c for f in frames[1:-1] for c in f["choices"][0]["delta"].get("tool_calls") or []]
        assert calls[0]["function"] == {"name": "get_weather"} and calls[0]["id"].startswith("chatcmpl-tool-")
        arguments = "".join(c["function"].get("arguments", "") for c in calls[1:])
        finish = frames[-2]["choices"][0]["finish_reason"]
    else:
        choice = (await resp.json())["choices"][0]
        assert choice["message"]["content"] is None
        (call,) = choice["message"]["tool_calls"]
        assert call["function"]["name"] == "get_weather"
        arguments, finish = call["function"]["arguments"], choice["finish_reason"]
    assert json.loads(arguments) == {"city": "Tokyo", "unit": "celsius"} and finish == "tool_calls"


async def test_named_tool_only_when_written_as_named(client):
    called = await (await client.post(CHAT, json=user("please run Bash for me", tools=[BASH]))).json()
    assert called["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == '{"command": "ls"}'
    plain = await (await client.post(CHAT, json=user("a bash party", tools=[BASH]))).json()
    assert "tool_calls" not in plain["choices"][0]["message"]
    fallback = await (await client.post(CHAT, json=user("Use a tool!", tools=[BASH]))).json()
    assert fallback["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "Bash"


async def test_tool_result_is_quoted(client):
    messages = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "Sunny, 21 degrees"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "<system-reminder>Be nice.</system-reminder>"}],
        },
    ]
    reply = await (await client.post(CHAT, json={"messages": messages, "tools": [WEATHER]})).json()
    assert '"Sunny, 21 degrees"' in reply["choices"][0]["message"]["content"]


async def test_max_tokens_and_stop(client):
    cut = await (await client.post(CHAT, json=user("hi", max_tokens=3))).json()
    assert cut["choices"][0]["finish_reason"] == "length" and cut["usage"]["completion_tokens"] == 3
    stopped = await (await client.post(CHAT, json=user("hi", stop=["demo"]))).json()
    choice = stopped["choices"][0]
    assert (choice["finish_reason"], choice["stop_reason"]) == ("stop", "demo")
    assert choice["message"]["content"] == "Hello from the anthropic-router "


async def test_bad_request(client):
    resp = await client.post(CHAT, json={"messages": []})
    assert resp.status == 400 and (await resp.json())["error"]["code"] == 400


async def test_continuous_usage_on_every_chunk_when_asked(client) -> None:
    options = {"include_usage": True, "continuous_usage_stats": True}
    resp = await client.post(CHAT, json=user("Hello there", stream=True, stream_options=options))
    chunks = [c for c in sse(await resp.read()) if isinstance(c, dict)]
    counted = [c["usage"]["completion_tokens"] for c in chunks if c["choices"]]
    assert counted[0] == 0 and counted == sorted(counted) and counted[-1] > 0
    assert len({c["usage"]["prompt_tokens"] for c in chunks}) == 1
    plain = [
        c
        for c in sse(await (await client.post(CHAT, json=user("Hi", stream=True))).read())
        if isinstance(c, dict)
    ]
    assert all("usage" not in c for c in plain)
