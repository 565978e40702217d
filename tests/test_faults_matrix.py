"""The fault matrix: every way a backend can fail, through real sockets, on every route that can see it.

Each fault is played by tests/raw_backend.py (resets, HTML, garbage, silence, headers that never end).
Whatever happens, the client gets a well-formed error in its route's shape (a status while no byte was
sent, ``event: error`` or an error frame after), the router logs exactly one line, and nothing stays
behind: no new task, no connection open or in use in the upstream pool, and the backend's connection
ended (by the router, where the router is the one giving up: that is what makes vLLM abort).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson
import pytest
from anthropic_stream_check import check_stream
from conftest import AUTH, RouterFactory
from fault_harness import FAST, Leftovers, assert_nothing_left, backend_fixture, request_body  # noqa: F401
from raw_backend import (
    DONE,
    Behaviour,
    RawBackend,
    close_before_headers,
    completion,
    endless_headers,
    openai_frames,
    reply,
    reset_before_headers,
    sse,
    stall,
    truncated,
)

TEXTS = ["Hello", " there", ",", " friend", "."]
FRAMES = openai_frames(TEXTS)
BODY = completion("".join(TEXTS))
HTML = b"<html><head><title>502 Bad Gateway</title></head><body><center>nginx</center></body></html>"
ROUTES = {"messages": "/v1/messages", "chat": "/v1/chat/completions"}


@dataclass(frozen=True)
class Fault:
    """A backend failure: the behaviour for a streamed and for a plain request (None: refuse to connect)."""

    stream: Callable[[], Behaviour] | None
    plain: Callable[[], Behaviour] | None
    env: tuple[tuple[str, str], ...] = ()
    router_gives_up: bool = False  # the backend would wait forever: the router must close the request
    attempts: int = 1  # requests the router makes (a connection closed before any byte is tried twice)


FAULTS: dict[str, Fault] = {
    "refused": Fault(None, None),
    "reset_before_headers": Fault(reset_before_headers, reset_before_headers),
    "close_before_headers": Fault(close_before_headers, close_before_headers, attempts=2),
    "reset_mid_stream": Fault(
        lambda: sse(FRAMES[:3], end="reset"), lambda: truncated(BODY[:40], len(BODY), end="reset")
    ),
    "fin_mid_stream": Fault(
        lambda: sse(FRAMES[:3], end="fin"), lambda: truncated(BODY[:40], len(BODY), end="fin")
    ),
    "stall_before_headers": Fault(stall, stall, router_gives_up=True),
    "stall_before_first_token": Fault(
        lambda: sse([], end="hang"), lambda: truncated(b"", len(BODY), end="hang"), router_gives_up=True
    ),
    "stall_mid_stream": Fault(
        lambda: sse(FRAMES[:3], end="hang"),
        lambda: truncated(BODY[:40], len(BODY), end="hang"),
        router_gives_up=True,
    ),
    # Alive but slower than REQUEST_TIMEOUT allows: only the total timeout can end it.
    "request_timeout": Fault(
        lambda: sse(openai_frames(["tick"] * 1000), delay=0.02),
        lambda: reply(200, BODY, delay=10),
        env=(("IDLE_TIMEOUT", "5"), ("REQUEST_TIMEOUT", "0.2")),
        router_gives_up=True,
    ),
    "endless_headers": Fault(
        endless_headers,
        endless_headers,
        env=(("IDLE_TIMEOUT", "5"), ("REQUEST_TIMEOUT", "0.2")),
        router_gives_up=True,
    ),
    "non_json_200": Fault(
        lambda: reply(200, b"upstream says hi", "text/plain"),
        lambda: reply(200, b"upstream says hi", "text/plain"),
    ),
    "html_error_page": Fault(lambda: reply(502, HTML, "text/html"), lambda: reply(502, HTML, "text/html")),
    "sse_garbage_lines": Fault(
        lambda: sse(
            [
                FRAMES[0],
                b": a comment\n\n",
                b"event: surprise\nid: 7\nretry: 10\n\n",
                FRAMES[1],
                b"no colon on this line\n\n",
                *FRAMES[2:],
                DONE,
            ]
        ),
        None,
    ),
    "sse_garbage_data": Fault(lambda: sse([*FRAMES[:2], b"data: {not json\n\n", *FRAMES[2:], DONE]), None),
    "error_frame_mid_stream": Fault(
        lambda: sse(
            [
                *FRAMES[:3],
                b'data: {"error": {"message": "engine died", "type": "InternalServerError", '
                b'"code": 500}}\n\n',
                DONE,
            ]
        ),
        lambda: reply(200, b'{"error": {"message": "engine died", "code": 500}}'),
    ),
    "eof_without_done_after_finish": Fault(lambda: sse(FRAMES), None),
    "eof_without_done_or_finish": Fault(lambda: sse(FRAMES[:3]), lambda: reply(200, BODY[:40])),
}

# What the client sees, per (fault, route, stream): "<status> <type>" before any byte, "event <type>"
# (Anthropic stream ending in event: error), "frame <type>" (OpenAI stream ending in an error frame and
# [DONE]), "stop" (a complete Anthropic stream) or "done" (a complete OpenAI stream).
EXPECTED: dict[str, dict[tuple[str, bool], str]] = {
    "refused": dict.fromkeys(
        [("messages", True), ("messages", False), ("chat", True), ("chat", False)], "502 api_error"
    ),
    "reset_before_headers": dict.fromkeys(
        [("messages", True), ("messages", False), ("chat", True), ("chat", False)], "502 api_error"
    ),
    "close_before_headers": dict.fromkeys(
        [("messages", True), ("messages", False), ("chat", True), ("chat", False)], "502 api_error"
    ),
    "reset_mid_stream": {
        ("messages", True): "event overloaded_error",
        ("messages", False): "502 api_error",
        ("chat", True): "frame api_error",
        ("chat", False): "502 api_error",
    },
    "fin_mid_stream": {
        ("messages", True): "event overloaded_error",
        ("messages", False): "502 api_error",
        ("chat", True): "frame api_error",
        ("chat", False): "502 api_error",
    },
    "stall_before_headers": dict.fromkeys(
        [("messages", True), ("messages", False), ("chat", True), ("chat", False)], "504 timeout_error"
    ),
    "stall_before_first_token": {
        ("messages", True): "event overloaded_error",
        ("messages", False): "504 timeout_error",
        ("chat", True): "frame timeout_error",
        ("chat", False): "504 timeout_error",
    },
    "stall_mid_stream": {
        ("messages", True): "event overloaded_error",
        ("messages", False): "504 timeout_error",
        ("chat", True): "frame timeout_error",
        ("chat", False): "504 timeout_error",
    },
    "request_timeout": {
        ("messages", True): "event overloaded_error",
        ("messages", False): "504 timeout_error",
        ("chat", True): "frame timeout_error",
        ("chat", False): "504 timeout_error",
    },
    "endless_headers": dict.fromkeys(
        [("messages", True), ("messages", False), ("chat", True), ("chat", False)], "504 timeout_error"
    ),
    "non_json_200": {
        ("messages", True): "event overloaded_error",
        ("messages", False): "502 api_error",
        ("chat", True): "frame api_error",
        ("chat", False): "502 api_error",
    },
    "html_error_page": {
        ("messages", True): "500 api_error",
        ("messages", False): "500 api_error",
        ("chat", True): "502 api_error",
        ("chat", False): "502 api_error",
    },
    "sse_garbage_lines": {("messages", True): "stop", ("chat", True): "done"},
    "sse_garbage_data": {("messages", True): "event overloaded_error"},
    "error_frame_mid_stream": {
        ("messages", True): "event overloaded_error",
        ("messages", False): "500 api_error",
        ("chat", True): "done",  # the backend's own error frame and [DONE], passed through
    },
    "eof_without_done_after_finish": {("messages", True): "stop", ("chat", True): "frame api_error"},
    "eof_without_done_or_finish": {
        ("messages", True): "event overloaded_error",
        ("messages", False): "502 api_error",
        ("chat", True): "frame api_error",
        ("chat", False): "502 api_error",
    },
}

CASES = [
    pytest.param(fault, route, stream, expected, id=f"{fault}-{route}-{'stream' if stream else 'plain'}")
    for fault, table in EXPECTED.items()
    for (route, stream), expected in table.items()
]


def assert_error_body(route: str, status: int, body: bytes, expected_type: str) -> str:
    data = orjson.loads(body)
    if route == "messages":
        assert data["type"] == "error" and set(data["error"]) == {"type", "message"}
        error = data["error"]
    else:
        error = data["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["code"] == status
    assert error["type"] == expected_type
    assert isinstance(error["message"], str) and error["message"]
    assert "Traceback" not in error["message"] and "<html" not in error["message"].lower()
    return error["message"]


def openai_frames_of(body: bytes) -> list[dict | str]:
    """The data of each frame of an OpenAI stream ("[DONE]" as a string). Blocks without a data line
    (comments, other fields, a backend's garbage passed through) are skipped, as SSE clients skip them."""
    assert body.endswith(b"\n\n"), body[-80:]
    out: list[dict | str] = []
    for block in body[:-2].split(b"\n\n"):
        data = [line[6:] for line in block.split(b"\n") if line.startswith(b"data: ")]
        if not data:
            continue
        assert len(data) == 1, block
        out.append("[DONE]" if data[0] == b"[DONE]" else orjson.loads(data[0]))
    return out


@pytest.mark.parametrize(("fault", "route", "stream", "expected"), CASES)
async def test_fault(
    router_factory: RouterFactory,
    backend: RawBackend,
    caplog: pytest.LogCaptureFixture,
    fault: str,
    route: str,
    stream: bool,
    expected: str,
) -> None:
    spec = FAULTS[fault]
    client = await router_factory(backend.url, **{**FAST, **dict(spec.env)})
    behaviour = spec.stream if stream else spec.plain
    if behaviour is None:
        backend.stop_listening()
    else:
        backend.script(*(behaviour() for _ in range(spec.attempts)))
    caplog.set_level(logging.INFO, logger="router.access")
    caplog.clear()
    leftovers = Leftovers()
    path = ROUTES[route]
    headers = {**AUTH, "Content-Type": "application/json", "Connection": "close"}
    t0 = time.monotonic()
    resp = await client.post(path, data=request_body(route, stream), headers=headers)
    raw = await resp.read()
    elapsed = time.monotonic() - t0

    kind, _, error_type = expected.partition(" ")
    if kind.isdigit():
        assert resp.status == int(kind), raw
        assert resp.headers["Content-Type"].startswith("application/json")
        assert_error_body(route, resp.status, raw, error_type)
    elif kind in ("event", "stop"):
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
        events = check_stream(raw)
        if kind == "stop":
            assert events[-1]["type"] == "message_stop"
            text = "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")
            assert text == "".join(TEXTS)
        else:
            assert events[-1]["type"] == "error" and events[-1]["error"]["type"] == error_type
    else:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
        frames = openai_frames_of(raw)
        assert frames[-1] == "[DONE]" and "[DONE]" not in frames[:-1]
        if kind == "frame":
            error = frames[-2]["error"]
            assert error["type"] == error_type and error["message"]
        elif fault == "error_frame_mid_stream":
            assert frames[-2]["error"]["message"] == "engine died"

    assert len(backend.exchanges) == (0 if behaviour is None else spec.attempts)
    record = await assert_nothing_left(client, backend, leftovers, caplog, path)
    info = record.request
    assert info.status == resp.status
    assert (info.error_type is None) == (kind in ("stop", "done") and fault != "error_frame_mid_stream")
    if spec.router_gives_up:
        assert backend.exchanges[0].closed_by == "router"
        assert elapsed < 2.0  # the configured timeout, not the backend, ended it
