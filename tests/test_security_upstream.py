"""What reaches the backend (docs/security.md): only the router's own headers and the backend's own key,
never the client's key or headers; nor do the backend's headers come back to the client.
"""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient
from fake_vllm import FakeVLLM, Turn
from security_harness import (  # noqa: F401  (keyed_fixture: the `keyed` fixture)
    BACKEND_KEY,
    HELLO,
    KEYS,
    client_key,
    keyed_fixture,
    message,
)

CLIENT_HEADERS = {
    "Authorization": f"Bearer {KEYS[1]}",
    "Cookie": "session=abc",
    "Proxy-Authorization": "Basic Zm9vOmJhcg==",
    "X-Forwarded-For": "10.0.0.1",
    "Forwarded": "for=10.0.0.1",
    "Keep-Alive": "timeout=5",
    "TE": "trailers",
    "Upgrade": "websocket",
    "X-Custom-Secret": "do-not-forward",
    "anthropic-beta": "interleaved-thinking-2025-05-14",
    "anthropic-version": "2023-06-01",
    "X-Claude-Code-Session-Id": "7b14a16c",
    "OpenAI-Organization": "org-123",
}
ALLOWED_UPSTREAM = {
    "host",
    "content-type",
    "content-length",
    "accept",
    "accept-encoding",
    "user-agent",
    "authorization",
}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/messages", message()),
        ("/v1/messages", message(stream=True)),
        ("/v1/chat/completions", {"model": "m", "messages": HELLO}),
        ("/v1/chat/completions", {"model": "m", "messages": HELLO, "stream": True}),
    ],
)
async def test_backend_gets_only_its_own_key_and_headers(
    keyed: tuple[TestClient, FakeVLLM], path: str, body: dict
) -> None:
    client, fake = keyed
    fake.script(Turn(text="hi", headers={"Set-Cookie": "backend=1", "X-Backend-Internal": "yes"}))
    resp = await client.post(path, json=body, headers={**CLIENT_HEADERS, "x-api-key": KEYS[0]})
    assert resp.status == 200, await resp.text()
    await resp.read()
    sent = fake.request_headers[0]
    assert sent["Authorization"] == f"Bearer {BACKEND_KEY}"
    assert set(map(str.lower, sent)) <= ALLOWED_UPSTREAM, sorted(sent)
    assert all(key not in repr(sent) for key in KEYS)
    # Nor do the backend's own headers come back to the client.
    assert "Set-Cookie" not in resp.headers and "X-Backend-Internal" not in resp.headers


async def test_no_authorization_upstream_without_a_backend_key(router: TestClient, vllm: FakeVLLM) -> None:
    resp = await router.post(
        "/v1/messages", json=message(), headers={"Authorization": f"Bearer {client_key(router)}"}
    )
    assert resp.status == 200
    assert "Authorization" not in vllm.request_headers[0]
