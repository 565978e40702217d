"""A raw asyncio HTTP/1.1 backend: the faults aiohttp's server cannot produce, and a light, fast backend.

aiohttp's web server only ever writes well-formed HTTP, while a crashing engine, a proxy in front of vLLM
or a host under pressure do not. Here each chat request runs a *behaviour* (tests/raw_behaviours.py): an
async function that writes whatever bytes it likes (a reset before the status line, an HTML page,
garbage SSE, headers that never end) and may sit silent until the router gives up. Each chat request is
recorded as an :class:`Exchange` (headers and body received, bytes sent, and when its connection ended
and which side ended it), so a test can assert that the router closed a request it abandoned: closing is
what makes vLLM abort a generation.

It is built on a bare ``asyncio.Protocol``, so the end of a connection is seen the moment it happens
(``eof_received``/``connection_lost``), and it is far lighter than FakeVLLM (no aiohttp server, no
validation), which the load test and the soak need.

    backend = RawBackend()
    url = await backend.start()
    backend.script(reset_before_headers())
    ... the router POSTs to url + "/v1/chat/completions" ...
    exchange = await backend.wait_closed(0)      # exchange.closed_by == "router" or "backend"

The behaviours and wire shapes are importable from here too, so a test that scripts a backend needs
one import.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import struct
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson
from raw_behaviours import (
    DONE,
    LAST_CHUNK,
    Behaviour,
    chunk,
    close_before_headers,
    completion,
    endless_headers,
    firehose,
    http_chunk,
    ok,
    openai_frames,
    reply,
    reset_before_headers,
    response_head,
    sse,
    stall,
    truncated,
    usage,
)

__all__ = [
    "DONE",
    "LAST_CHUNK",
    "Behaviour",
    "Exchange",
    "PeerGone",
    "RawBackend",
    "chunk",
    "close_before_headers",
    "completion",
    "endless_headers",
    "firehose",
    "http_chunk",
    "ok",
    "openai_frames",
    "reply",
    "reset_before_headers",
    "response_head",
    "sse",
    "stall",
    "truncated",
    "usage",
]

CHAT_PATH = "/v1/chat/completions"
MAX_HEAD = 65536


class PeerGone(Exception):
    """The router closed the connection while a behaviour was writing or waiting."""


# --- one request on the wire ------------------------------------------------------------------------------


@dataclass(eq=False)
class Exchange:
    """One chat request and what became of its connection."""

    index: int
    headers: dict[str, str]  # names lower-cased
    body: bytes
    started: float
    conn: _Connection = field(repr=False)
    sent: int = 0  # bytes the behaviour wrote
    answered: float | None = None  # the behaviour wrote a whole answer and the connection stayed usable

    @property
    def json(self) -> dict:
        return orjson.loads(self.body)

    @property
    def stream(self) -> bool:
        return self.json.get("stream") is True

    @property
    def closed_at(self) -> float | None:
        return self.conn.closed_at

    @property
    def closed_by(self) -> str | None:
        """Who ended the connection: "router" (closed or reset it) or "backend" (the behaviour did)."""
        return self.conn.closed_by

    @property
    def ended(self) -> bool:
        return self.closed_at is not None or self.answered is not None

    async def write(self, data: bytes) -> None:
        """Write and wait while the router does not read (TCP back-pressure reaches us here)."""
        await self.conn.write(data)
        self.sent += len(data)

    async def sleep(self, seconds: float) -> None:
        """Sleep, raising :class:`PeerGone` as soon as the router leaves."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.conn.gone.wait(), None if math.isinf(seconds) else seconds)
            raise PeerGone

    def head(self, status: int, headers: Iterable[tuple[str, str]] = ()) -> bytes:
        """The status line and headers; ``Connection: close`` unless the backend keeps connections alive,
        so the router never pools a connection the backend is about to close."""
        extra = [] if self.conn.backend.keep_alive else [("Connection", "close")]
        return response_head(status, [*headers, *extra])

    def close(self) -> None:
        """FIN: the backend ends the connection (without finishing the body, if there is one)."""
        self.conn.end("backend")

    def reset(self) -> None:
        """RST: SO_LINGER 0 makes close() reset the connection instead of a polite FIN."""
        sock = self.conn.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.conn.end("backend", abort=True)


# --- the server -------------------------------------------------------------------------------------------


class _Connection(asyncio.Protocol):
    """One TCP connection: buffers what the router sends, tracks flow control and who closed it."""

    def __init__(self, backend: RawBackend) -> None:
        self.backend = backend
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.buffer = bytearray()
        self.arrived = asyncio.Event()  # new bytes (or the end) since the reader last looked
        self.gone = asyncio.Event()
        self.writable = asyncio.Event()
        self.writable.set()
        self.closed_at: float | None = None
        self.closed_by: str | None = None
        self.task: asyncio.Task | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.backend._connections.add(self)
        self.task = asyncio.create_task(self.backend._serve(self))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.arrived.set()

    def eof_received(self) -> bool:
        self._lost("router")
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost("router")
        self.backend._connections.discard(self)

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def _lost(self, by: str) -> None:
        if self.closed_at is None:
            self.closed_at, self.closed_by = time.monotonic(), by
        self.gone.set()
        self.arrived.set()
        self.writable.set()

    def end(self, by: str, *, abort: bool = False) -> None:
        self._lost(by)
        if abort:
            self.transport.abort()
        else:
            self.transport.close()

    async def write(self, data: bytes) -> None:
        if self.gone.is_set():
            raise PeerGone
        self.transport.write(data)
        if not self.writable.is_set():
            await self.writable.wait()
            if self.gone.is_set():
                raise PeerGone

    async def read_request(self) -> tuple[str, str, dict[str, str], bytes] | None:
        """The next request (method, path, headers, body), or None when the connection ends first."""
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            if self.gone.is_set() or len(self.buffer) > MAX_HEAD:
                return None
            self.arrived.clear()
            await self.arrived.wait()
        head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        method, path, _ = head[0].split(" ", 2)
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < end + 4 + length:
            if self.gone.is_set():
                return None
            self.arrived.clear()
            await self.arrived.wait()
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        return method, path, headers, body


class RawBackend:
    """Answers ``GET /health`` and ``GET /v1/models`` (``Connection: close``, so the router's pool keeps
    nothing from its probes) and runs one behaviour per ``POST /v1/chat/completions``: the scripted ones
    in order, then ``default``. With ``keep_alive`` False every chat connection is closed after its
    answer, so a test can expect every backend connection gone once a request is over."""

    def __init__(self, model: str = "tiny", max_model_len: int = 8192, *, keep_alive: bool = False) -> None:
        self.model = model
        self.max_model_len = max_model_len
        self.keep_alive = keep_alive
        self.default: Behaviour = ok()
        self.exchanges: list[Exchange] = []
        self.errors: list[BaseException] = []  # behaviours that failed other than by the router leaving
        self._turns: deque[Behaviour] = deque()
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self.url = ""

    def script(self, *behaviours: Behaviour) -> None:
        self._turns.extend(behaviours)

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    @property
    def in_flight(self) -> int:
        return sum(not ex.ended for ex in self.exchanges)

    async def start(self, host: str = "127.0.0.1", port: int = 0, backlog: int = 1024) -> str:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), host, port, backlog=backlog)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://{host}:{port}"
        return self.url

    def stop_listening(self) -> None:
        """Close the listening socket: from now on connections are refused (open ones carry on)."""
        if self._server is not None:
            self._server.close()

    async def close(self) -> None:
        self.stop_listening()
        for conn in list(self._connections):
            conn.transport.abort()
        tasks = [c.task for c in self._connections if c.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def wait_closed(self, index: int = 0, timeout: float = 5.0) -> Exchange:
        """Exchange ``index`` once its connection has ended."""
        deadline = time.monotonic() + timeout
        while len(self.exchanges) <= index or self.exchanges[index].closed_at is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"exchange {index} not closed after {timeout}s: {self.exchanges[index:]}")
            await asyncio.sleep(0.002)
        return self.exchanges[index]

    async def _serve(self, conn: _Connection) -> None:
        while True:
            request = await conn.read_request()
            if request is None:
                if not conn.gone.is_set():
                    conn.end("backend")
                return
            method, path, headers, body = request
            if method == "GET" and path in ("/health", "/v1/models"):
                payload = b"" if path == "/health" else self._models()
                head = [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
                conn.transport.write(response_head(200, [*head, ("Connection", "close")]) + payload)
                conn.end("backend")
                return
            if method != "POST" or path != CHAT_PATH:
                conn.transport.write(response_head(404, [("Content-Length", "0"), ("Connection", "close")]))
                conn.end("backend")
                return
            ex = Exchange(len(self.exchanges), headers, body, time.monotonic(), conn)
            self.exchanges.append(ex)
            behaviour = self._turns.popleft() if self._turns else self.default
            try:
                await behaviour(ex)
            except PeerGone:
                return
            except Exception as exc:
                self.errors.append(exc)
                conn.end("backend", abort=True)
                return
            if conn.gone.is_set():
                return
            ex.answered = time.monotonic()
            if not self.keep_alive:
                conn.end("backend")
                return

    def _models(self) -> bytes:
        card = {"id": self.model, "object": "model", "owned_by": "raw", "max_model_len": self.max_model_len}
        return orjson.dumps({"object": "list", "data": [card]})
