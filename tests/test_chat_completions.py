"""POST /v1/chat/completions through real HTTP: the ``openai`` SDK against a router that fronts several fake
vLLM backends, byte-exact pass-through, usage forced and dropped, errors in OpenAI's shape, aborts, and
the routing rules landing requests on the right backend (images in Anthropic tool results included)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import anthropic
import openai
import orjson
import pytest
from aiohttp import web
from fake_vllm import FakeVLLM, Turn

from router.app import create_app
from router.config import load_settings
from router.handlers.chat_completions import StreamScanner, backend_error_body
from router.keys import TELEMETRY
from router.request_info import RequestInfo

KEY = "sk-test-router"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVQI12P4z8AAAAMBAQAY3Y2wAAAAAElFTkSuQmCC"
HELLO = [{"role": "user", "content": "hello"}]


class Recorder:
    def __init__(self) -> None:
        self.infos: list[RequestInfo] = []

    def record(self, info: RequestInfo) -> None:
        self.infos.append(info)

    async def last(self, route: str = "chat_completions", count: int = 1) -> RequestInfo:
        """The latest record of ``route`` once ``count`` exist: a client can finish reading a stream
        a moment before the router's middleware records it."""
        for _ in range(500):
            found = [i for i in self.infos if i.route == route]
            if len(found) >= count:
                return found[-1]
            await asyncio.sleep(0.01)
        raise AssertionError(f"no telemetry record for {route}")


@dataclass
class Rig:
    url: str
    fakes: dict[str, FakeVLLM]
    servers: dict[str, object]
    telemetry: Recorder
    app: web.Application
    session: aiohttp.ClientSession = field(repr=False)

    def openai(self, **kw: object) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.url + "/v1", api_key=KEY, max_retries=0, **kw)

    def anthropic(self) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(base_url=self.url, api_key=KEY, max_retries=0)

    async def post(self, body: dict | bytes, **headers: str) -> aiohttp.ClientResponse:
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        hdrs = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json", **headers}
        return await self.session.post(self.url + "/v1/chat/completions", data=data, headers=hdrs)

    def counts(self) -> dict[str, int]:
        return {name: len(f.requests) for name, f in self.fakes.items()}


Start = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def start(aiohttp_server) -> Start:  # type: ignore[no-untyped-def]
    sessions: list[aiohttp.ClientSession] = []

    async def go(fakes: dict[str, FakeVLLM] | None = None, **env: str) -> Rig:
        fakes = fakes or {
            "default": FakeVLLM("text-model"),
            "small": FakeVLLM("small-model", max_model_len=4096),
            "vision": FakeVLLM("vision-model", multimodal=True),
        }
        environ = {"API_KEY": KEY, "HEALTH_INTERVAL": "60", "PING_INTERVAL": "5"}
        servers = {}
        for name, fake in fakes.items():
            servers[name] = server = await aiohttp_server(fake.app)
            url = str(server.make_url("/")).rstrip("/")
            if name == "default":
                environ["VLLM_URL"] = url
            elif name == "vision":
                environ |= {"VISION_URL": url, "VISION_MODEL": fake.config.model}
            else:
                environ[f"BACKEND_{name.upper()}_URL"] = url
        environ |= env
        app = create_app(load_settings(environ, env_file=None))
        telemetry = app[TELEMETRY] = Recorder()
        router = await aiohttp_server(app)
        session = aiohttp.ClientSession()
        sessions.append(session)
        rig = Rig(str(router.make_url("/")).rstrip("/"), fakes, servers, telemetry, app, session)
        deadline = time.monotonic() + 5
        while True:  # the start-up probe runs in the background
            async with session.get(rig.url + "/health") as resp:
                if resp.status == 200:
                    return rig
            assert time.monotonic() < deadline, "router never became healthy"
            await asyncio.sleep(0.01)

    yield go
    for s in sessions:
        await s.close()


# --- the openai SDK through the passthrough ----------------------------------------------------------


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


# --- errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1]", "must be a JSON object"),
        (b'{"model":"m"}', "messages"),
        (b'{"model":"m","messages":"hi"}', "messages"),
        (b'{"model":"m","messages":[],"stream":true,"stream_options":"x"}', "stream_options"),
        (b'{"model":"m","messages":[],"stream":"true"}', "stream"),
    ],
)
async def test_bad_requests_get_openai_shaped_400s(start: Start, body: bytes, message: str) -> None:
    rig = await start()
    async with await rig.post(body) as resp:
        assert resp.status == 400
        err = (await resp.json())["error"]
    assert set(err) == {"message", "type", "param", "code"} and message in err["message"]
    assert err["type"] == "invalid_request_error"
    assert sum(rig.counts().values()) == 0


async def test_missing_key_is_an_openai_shaped_401(start: Start) -> None:
    rig = await start()
    client = openai.AsyncOpenAI(base_url=rig.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as exc:
        await client.chat.completions.create(model="m", messages=HELLO)
    assert exc.value.status_code == 401 and exc.value.body["type"] == "authentication_error"  # type: ignore[index]
    await client.close()


async def test_backend_error_keeps_status_and_vllm_envelope(start: Start) -> None:
    rig = await start()
    rig.fakes["small"].script(Turn(status=400, error="tiny is not a multimodal model"))
    async with await rig.post({"model": "small", "messages": HELLO, "stream": True}) as resp:
        assert resp.status == 400
        assert (resp.headers["x-router-backend"], resp.headers["x-router-model"]) == ("small", "small-model")
        body = await resp.json()
    assert body == {
        "error": {
            "message": "tiny is not a multimodal model",
            "type": "BadRequestError",
            "param": None,
            "code": 400,
        }
    }
    assert (await rig.telemetry.last()).error_type == "invalid_request_error"


async def test_openai_sdk_sees_backend_errors_with_their_status(start: Start) -> None:
    rig = await start()
    rig.fakes["default"].script(Turn(status=429, error="slow down", headers={"Retry-After": "0"}))
    client = rig.openai()
    with pytest.raises(openai.RateLimitError) as exc:
        await client.chat.completions.create(model="m", messages=HELLO)
    assert exc.value.body["message"] == "slow down"  # type: ignore[index]
    assert exc.value.response.headers["retry-after"] == "0"
    await client.close()


async def test_unreachable_backend_is_a_502_that_says_where_it_went(start: Start) -> None:
    rig = await start()
    await rig.servers["small"].close()  # type: ignore[attr-defined]
    async with await rig.post({"model": "small", "messages": HELLO}) as resp:
        assert resp.status == 502
        assert (resp.headers["x-router-backend"], resp.headers["x-router-model"]) == ("small", "small-model")
        err = (await resp.json())["error"]
    assert err["type"] == "api_error" and "unreachable" in err["message"]


@pytest.mark.parametrize(
    ("status", "raw", "expected"),
    [
        (
            404,
            b'{"error":{"message":"no","type":"NotFoundError","param":"model","code":404}}',
            (404, {"message": "no", "type": "NotFoundError", "param": "model", "code": 404}),
        ),
        (
            400,
            b'{"object":"error","message":"old","type":"BadRequestError","param":null,"code":400}',
            (400, {"message": "old", "type": "BadRequestError", "param": None, "code": 400}),
        ),
        (
            503,
            b"<html>bad gateway</html>",
            (503, {"message": "backend returned a non-JSON (HTML) error page", "type": "overloaded_error"}),
        ),
        (401, b'{"error":"Unauthorized"}', (502, {"type": "api_error"})),
        (403, b"", (502, {"type": "api_error"})),
        (302, b"moved", (502, {"message": "moved", "type": "api_error", "code": 502})),
        (422, b'{"detail":"bad field"}', (422, {"message": "bad field", "type": "invalid_request_error"})),
    ],
)
def test_backend_error_bodies(status: int, raw: bytes, expected: tuple[int, dict]) -> None:
    got_status, body = backend_error_body(status, raw)
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert got_status == expected[0]
    assert expected[1].items() <= body["error"].items()


# --- mid-stream failures and aborts ------------------------------------------------------------------


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


# --- routing through HTTP ------------------------------------------------------------------------------


async def test_openai_image_goes_to_the_vision_backend(start: Start) -> None:
    rig = await start()
    client = rig.openai()
    content = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    ]
    raw = await client.chat.completions.with_raw_response.create(
        model="small", messages=[{"role": "user", "content": content}]
    )
    assert raw.parse().choices[0].message.content
    assert raw.headers["x-router-backend"] == "vision" and raw.headers["x-router-model"] == "vision-model"
    assert rig.counts() == {"default": 0, "small": 0, "vision": 1}
    assert rig.fakes["vision"].requests[0]["model"] == "vision-model"
    await client.close()


async def test_images_go_to_the_main_backend_without_vision_url(start: Start) -> None:
    rig = await start({"default": FakeVLLM("text-model", multimodal=True)})
    content = [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]
    async with await rig.post({"model": "m", "messages": [{"role": "user", "content": content}]}) as resp:
        assert resp.status == 200 and resp.headers["x-router-backend"] == "default"


async def test_image_in_an_anthropic_tool_result_goes_to_the_vision_backend(start: Start) -> None:
    rig = await start()
    client = rig.anthropic()
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    messages = [
        {"role": "user", "content": "take a screenshot"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "shot", "input": {}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": [image]}]},
    ]
    raw = await client.messages.with_raw_response.create(
        model="claude-sonnet-4", max_tokens=64, messages=messages
    )
    assert (await raw.parse()).content[0].text  # type: ignore[union-attr]
    assert raw.headers["x-router-backend"] == "vision" and raw.headers["x-router-model"] == "vision-model"
    assert rig.counts() == {"default": 0, "small": 0, "vision": 1}
    sent = orjson.dumps(rig.fakes["vision"].requests[0]["messages"])
    assert PNG.encode() in sent and rig.fakes["vision"].requests[0]["model"] == "vision-model"
    await client.close()


ROUTES = {
    "BACKEND_SMALL_MODEL": "small-model",  # configured; the other backends' models are discovered
    "MODEL_MAP": "claude-opus-*=vision, *sonnet*=small",
    "ROUTE_BACKGROUND": "small",
    "ROUTE_THINK": "vision",
    "ROUTE_LONG_CONTEXT": "vision",
    "LONG_CONTEXT_TOKENS": "2000",
}


@pytest.mark.parametrize(
    ("extra", "backend", "rule"),
    [
        ({"model": "gpt-4o"}, "default", "default"),
        ({"model": "small"}, "small", "model"),
        ({"model": "small-model"}, "small", "model"),
        ({"model": "claude-opus-4-1"}, "vision", "model_map"),
        ({"model": "claude-sonnet-4"}, "small", "model_map"),
        ({"model": "claude-haiku-4-5"}, "small", "background"),
        ({"model": "claude-3-7", "reasoning_effort": "high"}, "vision", "think"),
        ({"model": "small", "user": "x" * 9000}, "vision", "long_context"),
        ({"model": "claude-haiku-4-5", "reasoning_effort": "high"}, "small", "background"),
        ({"model": "claude-sonnet-4", "reasoning_effort": "high"}, "small", "model_map"),
    ],
)
async def test_each_route_rule_lands_on_its_backend(
    start: Start, extra: dict, backend: str, rule: str
) -> None:
    rig = await start(**ROUTES)
    async with await rig.post({"messages": HELLO, **extra}) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.headers["x-router-backend"] == backend
        assert resp.headers["x-router-model"] == rig.fakes[backend].config.model
    assert rig.counts() == {name: int(name == backend) for name in rig.fakes}
    assert rig.fakes[backend].requests[0]["model"] == rig.fakes[backend].config.model
    assert (await rig.telemetry.last()).route_rule == rule


async def test_anthropic_route_rules_through_messages(start: Start) -> None:
    rig = await start(**ROUTES)
    client = rig.anthropic()
    for model, thinking, backend in [
        ("claude-haiku-4-5", None, "small"),
        ("claude-opus-4-1", None, "vision"),
        ("some-unknown-model", None, "default"),
        ("claude-3-7", {"type": "enabled", "budget_tokens": 1024}, "vision"),
    ]:
        extra = {"thinking": thinking} if thinking else {}
        raw = await client.messages.with_raw_response.create(
            model=model, max_tokens=2048, messages=HELLO, **extra
        )
        await raw.parse()
        assert raw.headers["x-router-backend"] == backend, model
    assert rig.counts() == {"default": 1, "small": 1, "vision": 2}
    await client.close()


# --- the stream scanner on its own -------------------------------------------------------------------


def _frames(*objs: dict | str) -> list[bytes]:
    return [b"data: " + (o.encode() if isinstance(o, str) else orjson.dumps(o)) + b"\n\n" for o in objs]


ROLE = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
TOKEN = {"choices": [{"index": 0, "delta": {"content": 'hi "usage": {'}, "finish_reason": None}]}
LAST = {"choices": [{"index": 0, "delta": {"content": "!"}, "finish_reason": "length"}]}
USAGE = {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}}
STREAM = _frames(ROLE, TOKEN, LAST, USAGE, "[DONE]")


@pytest.mark.parametrize("keep_usage", [True, False])
def test_scanner_gives_the_same_bytes_however_the_stream_is_cut(keep_usage: bool) -> None:
    data = b"".join(STREAM)
    expected = data if keep_usage else data.replace(STREAM[3], b"")
    for size in [*range(1, 40), 97, 250, len(data)]:
        scanner = StreamScanner(keep_usage, clock=lambda: 1.0)
        out = b"".join(scanner.feed(data[i : i + size]) for i in range(0, len(data), size)) + scanner.flush()
        assert out == expected, size
        assert scanner.usage == USAGE["usage"] and scanner.finish_reason == "length"
        assert scanner.done and scanner.first_token_at == 1.0


def test_scanner_first_token_time_is_the_first_non_empty_delta() -> None:
    times = iter([1.0, 2.0, 3.0])
    scanner = StreamScanner(True, clock=lambda: next(times))
    scanner.feed(STREAM[0])
    assert scanner.first_token_at is None
    scanner.feed(b"".join(STREAM[1:]))
    assert scanner.first_token_at == 1.0


def test_scanner_handles_crlf_and_multiline_frames() -> None:
    usage = orjson.dumps(USAGE)
    data = (
        b"data: "
        + orjson.dumps(ROLE)
        + b"\r\n\r\n"
        + b": comment\r\ndata: "
        + usage
        + b"\r\n\r\ndata: [DONE]\r\n\r\n"
    )
    scanner = StreamScanner(keep_usage=False)
    assert scanner.feed(data) == data.replace(b": comment\r\ndata: " + usage + b"\r\n\r\n", b"")
    assert scanner.usage == USAGE["usage"] and scanner.done


def test_scanner_flush_keeps_a_whole_last_frame_and_drops_a_cut_one() -> None:
    scanner = StreamScanner(True)
    assert scanner.feed(STREAM[0] + b"data: [DONE]") == STREAM[0]
    assert scanner.flush() == b"data: [DONE]\n\n" and scanner.done
    scanner = StreamScanner(True)
    assert scanner.feed(STREAM[0] + STREAM[1][:20]) == STREAM[0]
    assert scanner.flush() == b"" and not scanner.done


def test_scanner_records_error_frames_and_keeps_them() -> None:
    frame = (
        b'data: {"error": {"message": "boom", "type": "InternalServerError", "param": null, "code": 500}}\n\n'
    )
    scanner = StreamScanner(keep_usage=False)
    assert scanner.feed(STREAM[0] + STREAM[1] + frame) == STREAM[0] + STREAM[1] + frame
    assert scanner.error is not None and scanner.error["error"]["message"] == "boom"


def test_scanner_only_parses_frames_that_need_it() -> None:
    # After the first token, a frame whose bytes show no usage/finish_reason/error is not parsed at all:
    # broken JSON there passes through without being noticed.
    scanner = StreamScanner(True)
    scanner.feed(STREAM[0] + STREAM[1])
    assert scanner.feed(b"data: {broken\n\n") == b"data: {broken\n\n"
    assert scanner.finish_reason is None and scanner.usage is None
