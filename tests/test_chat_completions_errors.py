"""POST /v1/chat/completions errors before any byte of an answer: bad requests and a missing key in
OpenAI's shape, backend errors keeping their status and vLLM's envelope, an unreachable backend."""

from __future__ import annotations

import openai
import pytest
from chat_completions_harness import HELLO, Start, start_fixture  # noqa: F401  (the `start` fixture)
from fake_vllm import Turn

from router.handlers.chat_completions import backend_error_body


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
