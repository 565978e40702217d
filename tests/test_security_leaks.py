"""What never leaks (docs/security.md): secrets (client keys, the backend's key, credentials in a
backend URL) never show in logs, error bodies, ``/stats``, ``/metrics`` or ``/health``.
"""

from __future__ import annotations

import logging

import pytest
from aiohttp.test_utils import TestClient
from conftest import RouterFactory
from fake_vllm import FakeVLLM, Turn
from raw_backend import RawBackend, reset_before_headers, stall
from security_harness import (  # noqa: F401  (keyed_fixture: the `keyed` fixture)
    BACKEND_KEY,
    HELLO,
    KEYS,
    WRONG,
    client_key,
    keyed_fixture,
    message,
)

from router.config import ConfigError, load_settings

URL_PASSWORD = "url-password-77"
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
