"""systemd's notify protocol: datagrams on $NOTIFY_SOCKET, READY=1 only once the backends answer."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from fake_vllm import FakeVLLM
from router_process import RouterProcess, Spawner, free_port

from router import sdnotify

ServerFactory = Callable[..., Awaitable[TestServer]]


@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    # A short directory: unix socket paths are limited to 107 bytes, pytest's tmp_path can be longer.
    directory = tempfile.mkdtemp(prefix="sd")
    path = str(Path(directory) / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    yield sock, path
    sock.close()
    shutil.rmtree(directory)


def received(sock: socket.socket) -> list[str]:
    messages = []
    with contextlib.suppress(BlockingIOError):
        while True:
            messages.append(sock.recv(4096).decode())
    return messages


def test_without_notify_socket_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.notify("READY=1") is False


def test_datagram_reaches_the_socket(
    notify_socket: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert sdnotify.notify("READY=1\nSTATUS=ok") is True
    assert sdnotify.status("waiting\nfor  vLLM") is True
    assert received(sock) == ["READY=1\nSTATUS=ok", "STATUS=waiting for vLLM"]


def test_abstract_socket_address(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"anthropic-router-test-{free_port()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.setblocking(False)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sdnotify.notify("STOPPING=1") is True
        assert received(sock) == ["STOPPING=1"]


def test_unreachable_socket_is_not_fatal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    assert sdnotify.notify("READY=1") is False
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")  # a transport this module does not speak
    assert sdnotify.notify("READY=1") is False


@pytest.fixture
async def spawn(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[RouterProcess]]]:
    async with Spawner(tmp_path) as spawner:
        yield spawner.start


async def next_message(sock: socket.socket, prefix: str, timeout: float = 10.0) -> tuple[str, list[str]]:
    """Wait for the first datagram starting with ``prefix``; also returns those before it."""
    loop = asyncio.get_running_loop()
    before: list[str] = []
    async with asyncio.timeout(timeout):
        while True:
            message = (await loop.sock_recv(sock, 4096)).decode()
            if message.startswith(prefix):
                return message, before
            before.append(message)


async def test_router_is_ready_for_systemd_only_once_vllm_answers(
    aiohttp_server: ServerFactory,
    spawn: Callable[..., Awaitable[RouterProcess]],
    notify_socket: tuple[socket.socket, str],
) -> None:
    sock, path = notify_socket
    port = free_port()
    router = await spawn(f"http://127.0.0.1:{port}", NOTIFY_SOCKET=path)
    waiting, _ = await next_message(sock, "STATUS=waiting for vLLM")
    assert f"at http://127.0.0.1:{port}: attempt 1" in waiting
    await aiohttp_server(FakeVLLM(model="served").app, port=port)
    ready, before = await next_message(sock, "READY=1")
    assert not any("READY=1" in m for m in before)
    assert ready == "READY=1\nSTATUS=ready: default=served"
    await router.wait_healthy()
    router.send(signal.SIGTERM)
    stopping, _ = await next_message(sock, "STOPPING=1")
    assert stopping == "STOPPING=1"
    assert await router.wait(10) == 0
