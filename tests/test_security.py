"""Who gets in, what leaks, and what the backend is made to do (docs/security.md).

Keys: every configured key works, by ``x-api-key`` or ``Bearer``; anything else is a 401; the comparison
runs against every key whatever matched (no early exit). Secrets (client keys, the backend's key,
credentials in a backend URL) never show in logs, error bodies, ``/stats``, ``/metrics`` or ``/health``.
The backend sees only the router's own headers and its own key. URL media, which vLLM would fetch
itself, can be refused with ``ALLOW_IMAGE_URLS=false`` on both routes.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from conftest import RouterFactory
from fake_vllm import FakeVLLM, Turn
from raw_backend import RawBackend, reset_before_headers, stall
from router_process import RouterProcess

from router import middleware
from router.check import security_warning
from router.config import DEFAULT_API_KEY, ConfigError, load_settings

KEYS = ("alpha-key-0123456789", "bravo-key-abcdefghij", "charlie-key-ZYXWVUTSRQ")
BACKEND_KEY = "backend-secret-key-42"
WRONG = "wrong-key-but-still-a-secret"
URL_PASSWORD = "url-password-77"
HELLO = [{"role": "user", "content": "hello"}]
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVQI12P4z8AAAAMBAQAY3Y2wAAAAAElFTkSuQmCC"


def message(**fields: object) -> dict:
    return {"model": "m", "max_tokens": 20, "messages": HELLO, **fields}


@pytest.fixture
async def keyed(router_factory: RouterFactory, aiohttp_server) -> tuple[TestClient, FakeVLLM]:  # type: ignore[no-untyped-def]
    """A router with three client keys in front of a backend that wants its own key."""
    fake = FakeVLLM(api_key=BACKEND_KEY)
    server: TestServer = await aiohttp_server(fake.app)
    client = await router_factory(
        server, API_KEY=",".join(KEYS), VLLM_API_KEY=BACKEND_KEY, TELEMETRY_ENABLED="true"
    )
    return client, fake


# --- keys -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"x-api-key": KEYS[0]}, 200),
        ({"x-api-key": KEYS[1]}, 200),
        ({"x-api-key": KEYS[2]}, 200),
        ({"Authorization": f"Bearer {KEYS[2]}"}, 200),
        ({"Authorization": f"bearer {KEYS[0]}"}, 200),
        ({}, 401),
        ({"x-api-key": ""}, 401),
        ({"x-api-key": WRONG}, 401),
        ({"x-api-key": KEYS[0][:-1]}, 401),  # a prefix
        ({"x-api-key": KEYS[0] + "x"}, 401),
        ({"x-api-key": KEYS[0].upper()}, 401),
        ({"x-api-key": ",".join(KEYS)}, 401),  # the whole API_KEY list is not a key
        ({"Authorization": f"Basic {KEYS[0]}"}, 401),
        ({"Authorization": KEYS[0]}, 401),
        ({"Authorization": "Bearer "}, 401),
        ({"x-api-key": WRONG, "Authorization": f"Bearer {KEYS[0]}"}, 401),  # x-api-key wins, as Anthropic's
    ],
)
async def test_keys(keyed: tuple[TestClient, FakeVLLM], headers: dict[str, str], status: int) -> None:
    client, _ = keyed
    for path in ("/v1/models", "/stats"):
        resp = await client.get(path, headers=headers)
        assert resp.status == status
        if status == 401:
            data = await resp.json()
            assert data["error"] == {"type": "authentication_error", "message": "invalid or missing API key"}
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": HELLO}, headers=headers)
    assert resp.status == status
    if status == 401:  # the OpenAI route refuses in OpenAI's shape
        assert (await resp.json())["error"]["type"] == "authentication_error"


async def test_key_that_is_not_utf8_is_a_401_not_a_500(keyed: tuple[TestClient, FakeVLLM]) -> None:
    client, _ = keyed
    for header in (b"x-api-key: \xff\xfe" + KEYS[0].encode(), b"Authorization: Bearer \xc3\x28"):
        reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
        writer.write(b"GET /stats HTTP/1.1\r\nHost: x\r\n" + header + b"\r\nConnection: close\r\n\r\n")
        answer = await reader.read()
        writer.close()
        assert answer.startswith(b"HTTP/1.1 401"), answer[:200]


@pytest.mark.parametrize("presented", [KEYS[0], KEYS[1], KEYS[2], WRONG, "x", KEYS[2] * 4])
def test_key_check_compares_against_every_key(monkeypatch: pytest.MonkeyPatch, presented: str) -> None:
    """No early exit: whichever key matches (or none), each key is compared once, with the constant-time
    ``hmac.compare_digest``; so the time taken tells nothing about which key, if any, was close."""
    calls: list[tuple[bytes, bytes]] = []
    compare = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return compare(a, b)

    monkeypatch.setattr(middleware.hmac, "compare_digest", counting)
    request = SimpleNamespace(headers={"x-api-key": presented})  # check_key reads only the headers
    label = middleware.check_key(request, KEYS)  # type: ignore[arg-type]
    assert [b for _, b in calls] == [k.encode() for k in KEYS]
    assert all(a == presented.encode() for a, _ in calls)
    assert label == (f"key{KEYS.index(presented)}" if presented in KEYS else None)


# --- nothing secret leaks -------------------------------------------------------------------------------


async def test_secrets_never_appear_in_logs_bodies_stats_or_metrics(
    keyed: tuple[TestClient, FakeVLLM], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full cycle at DEBUG: successes (plain and streamed), bad input, wrong keys, backend errors, a
    mid-stream failure, an internal error; then every log record, body and header, /stats, /metrics and
    /health is searched for any key."""
    client, fake = keyed
    caplog.set_level(logging.DEBUG)
    seen: list[bytes] = []

    async def call(method: str, path: str, key: str | None = KEYS[0], **kw: object) -> int:
        headers = {"x-api-key": key} if key else {}
        resp = await client.request(method, path, headers=headers, **kw)  # type: ignore[arg-type]
        seen.append(await resp.read())
        seen.append(repr(dict(resp.headers)).encode())
        return resp.status

    fake.script(
        Turn(text="fine"),
        Turn(text="fine streamed"),
        Turn(status=500, error="engine trouble"),
        Turn(text="a b c d", error_after=2, status=500),
        Turn(text="openai fine"),
    )
    assert await call("POST", "/v1/messages", json=message()) == 200
    assert await call("POST", "/v1/messages", json=message(stream=True)) == 200
    assert await call("POST", "/v1/messages", json=message()) == 500
    assert await call("POST", "/v1/messages", json=message(stream=True)) == 200
    assert await call("POST", "/v1/chat/completions", json={"model": "m", "messages": HELLO}) == 200
    assert await call("POST", "/v1/messages", json={"model": "m"}) == 400
    assert await call("POST", "/v1/messages", key=WRONG, json=message()) == 401
    assert await call("POST", "/v1/messages", key=None, json=message()) == 401
    assert await call("GET", "/v1/nowhere") == 404
    assert await call("POST", "/v1/messages/count_tokens", json=message()) == 200

    def explode(*_args: object, **_kw: object) -> dict:
        raise RuntimeError(f"internal detail {KEYS[0]} {BACKEND_KEY}")

    monkeypatch.setattr("router.handlers.messages.to_openai", explode)
    assert await call("POST", "/v1/messages", json=message()) == 500
    assert b"internal router error" in seen[-2] and b"internal detail" not in seen[-2]
    assert await call("GET", "/stats") == 200
    assert await call("GET", "/metrics", key=None) == 200
    assert await call("GET", "/health", key=None) == 200

    # The router's own traceback is logged (that is where it belongs) with the exception text; but the
    # secrets that test put in that text must be the only place a key could come from.
    records = [r for r in caplog.records if "internal detail" not in (r.exc_text or "")]
    assert any(r.name == "router.access" for r in records)
    logged = "\n".join(r.getMessage() + (r.exc_text or "") + repr(r.__dict__.get("request")) for r in records)
    everything = logged.encode() + b"\n".join(seen)
    for secret in (*KEYS, BACKEND_KEY, WRONG):
        assert secret.encode() not in everything, secret
    # Only key *labels* reach /stats.
    assert b'"key0"' in seen[-6]


async def test_backend_credentials_in_the_url_are_never_shown(
    router_factory: RouterFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """VLLM_URL=http://user:password@host works (aiohttp sends Basic auth), but errors, logs, /health,
    /metrics and /stats show the URL without its credentials."""
    caplog.set_level(logging.DEBUG)
    backend = RawBackend()
    await backend.start()
    try:
        host_port = backend.url.removeprefix("http://")
        url = f"http://router:{URL_PASSWORD}@{host_port}"
        client = await router_factory(url, IDLE_TIMEOUT="0.1", HEALTH_INTERVAL="60")
        assert backend.exchanges == []
        backend.script(stall(), reset_before_headers())
        bodies = []
        for _ in range(2):  # a timeout, then a reset
            resp = await client.post(
                "/v1/messages", json=message(), headers={"x-api-key": client_key(client)}
            )
            bodies.append(await resp.read())
            assert resp.status in (502, 504)
        backend.stop_listening()
        await backend.wait_closed(1)
        for path in ("/health", "/metrics", "/stats"):
            resp = await client.get(path, headers={"x-api-key": client_key(client)})
            bodies.append(await resp.read())
        resp = await client.post("/v1/messages", json=message(), headers={"x-api-key": client_key(client)})
        bodies.append(await resp.read())
        assert resp.status in (502, 529)
        assert backend.exchanges[0].headers["authorization"].startswith("Basic ")
        text = b"\n".join(bodies).decode() + "\n".join(r.getMessage() for r in caplog.records)
        assert URL_PASSWORD not in text
        assert host_port in text  # the errors still say where the request went
    finally:
        await backend.close()


@pytest.mark.parametrize(
    ("env", "var"),
    [
        ({"VLLM_URL": "http://u:p@h:8000", "VLLM_API_KEY": "k"}, "VLLM_URL"),
        ({"VISION_URL": "http://u:p@h:8000", "VISION_API_KEY": "k"}, "VISION_URL"),
        ({"BACKEND_SMALL_URL": "http://u:p@h:8000", "BACKEND_SMALL_API_KEY": "k"}, "BACKEND_SMALL_URL"),
    ],
)
def test_url_credentials_and_an_api_key_together_are_a_config_error(env: dict[str, str], var: str) -> None:
    """Both would be an Authorization header, which aiohttp refuses: the backend would never come up."""
    with pytest.raises(ConfigError, match=var) as info:
        load_settings(env, env_file=None)
    assert "p@" not in str(info.value)


def client_key(client: TestClient) -> str:
    return client.server.app[middleware.SETTINGS].api_keys[0]


# --- what reaches the backend ---------------------------------------------------------------------------

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


# --- start-up warning -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "keys", "warns"),
    [
        ("0.0.0.0", DEFAULT_API_KEY, True),
        ("::", DEFAULT_API_KEY, True),
        ("192.168.1.20", f"real-secret,{DEFAULT_API_KEY}", True),
        ("127.0.0.1", DEFAULT_API_KEY, False),
        ("::1", DEFAULT_API_KEY, False),
        ("localhost", DEFAULT_API_KEY, False),
        ("0.0.0.0", "a-real-secret-key", False),
    ],
)
def test_security_warning(host: str, keys: str, warns: bool) -> None:
    settings = load_settings({"HOST": host, "API_KEY": keys}, env_file=None)
    warning = security_warning(settings)
    assert (warning is not None) == warns
    if warning:
        assert "API_KEY" in warning and host in warning


async def test_public_host_with_the_default_key_logs_a_loud_warning(tmp_path: Path) -> None:
    backend = RawBackend()
    await backend.start()
    proc = await RouterProcess.start(tmp_path, backend.url, HOST="0.0.0.0", API_KEY=DEFAULT_API_KEY)
    try:
        await proc.wait_healthy()
        log = proc.log()
    finally:
        await proc.kill()
        await backend.close()
    warning = next(line for line in log.splitlines() if "API_KEY" in line)
    assert "WARNING" in warning and "!!!" in warning and "0.0.0.0" in warning


# --- URL media (SSRF) ----------------------------------------------------------------------------------

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
