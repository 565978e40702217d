"""Who gets in (docs/security.md): every configured key works, by ``x-api-key`` or ``Bearer``; anything
else is a 401; the comparison runs against every key whatever matched (no early exit). A public host
with the default key gets a loud warning at start-up.
"""

from __future__ import annotations

import asyncio
import hmac
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiohttp.test_utils import TestClient
from fake_vllm import FakeVLLM
from raw_backend import RawBackend
from router_process import RouterProcess
from security_harness import HELLO, KEYS, WRONG, keyed_fixture  # noqa: F401  (the `keyed` fixture)

from router import middleware
from router.check import security_warning
from router.config import DEFAULT_API_KEY, load_settings


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
