"""URL media (docs/security.md): vLLM would fetch an image, video or audio URL itself (SSRF from the GPU
host), so ``ALLOW_IMAGE_URLS=false`` refuses them on both routes while inline media still work.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import orjson
import pytest
from aiohttp.test_utils import TestClient
from conftest import RouterFactory
from fake_vllm import FakeVLLM
from security_harness import client_key, message

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVQI12P4z8AAAAMBAQAY3Y2wAAAAAElFTkSuQmCC"

URL_IMAGE = {"type": "image", "source": {"type": "url", "url": "http://169.254.169.254/latest/meta-data"}}
B64_IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}


@pytest.fixture
async def no_urls(
    router_factory: RouterFactory, aiohttp_server
) -> AsyncIterator[tuple[TestClient, FakeVLLM]]:  # type: ignore[no-untyped-def]
    fake = FakeVLLM(multimodal=True)
    server = await aiohttp_server(fake.app)
    yield await router_factory(server, ALLOW_IMAGE_URLS="false"), fake


@pytest.mark.parametrize(
    "content",
    [
        [URL_IMAGE],
        [{"type": "text", "text": "look"}, URL_IMAGE],
    ],
)
async def test_url_images_refused_when_disabled(no_urls: tuple[TestClient, FakeVLLM], content: list) -> None:
    client, fake = no_urls
    for messages in (
        [{"role": "user", "content": content}],
        [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": content}]},
        ],
    ):
        resp = await client.post("/v1/messages", json=message(messages=messages), headers=auth(client))
        assert resp.status == 400
        error = (await resp.json())["error"]
        assert (
            error["type"] == "invalid_request_error" and "image URL sources are disabled" in error["message"]
        )
    assert fake.requests == []
    # Inline images still work.
    resp = await client.post(
        "/v1/messages",
        json=message(messages=[{"role": "user", "content": [B64_IMAGE]}]),
        headers=auth(client),
    )
    assert resp.status == 200, await resp.text()


@pytest.mark.parametrize(
    ("part", "refused"),
    [
        ({"type": "image_url", "image_url": {"url": "http://10.0.0.1/x.png"}}, True),
        ({"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}, True),
        ({"type": "image_url", "image_url": "https://example.com/x.png"}, True),
        ({"type": "video_url", "video_url": {"url": "https://example.com/v.mp4"}}, True),
        ({"type": "audio_url", "audio_url": {"url": "https://example.com/a.wav"}}, True),
        ({"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}, False),
        ({"type": "text", "text": "http://example.com is just text"}, False),
    ],
)
async def test_openai_route_refuses_media_urls_when_disabled(
    no_urls: tuple[TestClient, FakeVLLM], part: dict, refused: bool
) -> None:
    client, fake = no_urls
    body = {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, part]}]}
    resp = await client.post("/v1/chat/completions", json=body, headers=auth(client))
    data = await resp.json()
    if refused:
        assert resp.status == 400
        assert data["error"]["type"] == "invalid_request_error"
        assert re.search(r"messages\.0\.content\.1\.\w+: media URLs are disabled", data["error"]["message"])
        assert fake.requests == []
    else:
        assert resp.status == 200, data
        assert len(fake.requests) == 1


async def test_url_images_pass_by_default(router: TestClient, vllm: FakeVLLM) -> None:
    vllm.config.multimodal = True
    body = message(messages=[{"role": "user", "content": [URL_IMAGE]}])
    resp = await router.post("/v1/messages", json=body, headers=auth(router))
    assert resp.status == 200, await resp.text()
    sent = orjson.dumps(vllm.requests[0]).decode()
    assert URL_IMAGE["source"]["url"] in sent  # type: ignore[index]


def auth(client: TestClient) -> dict[str, str]:
    return {"x-api-key": client_key(client)}
