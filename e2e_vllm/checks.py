"""What every scenario asserts about an Anthropic answer, whoever produced it (router or vLLM native).

The stream grammar and the SDK's reading come from tests/anthropic_stream_check.py (the strict checker
the unit tests use), so a real vLLM is held to exactly the same standard as our fake.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from anthropic import types as anthropic_types
from anthropic_stream_check import ERROR_TYPES, check_stream, sdk_message
from pydantic import TypeAdapter
from vllm_stack import Response, Stack

# The fields the Anthropic API always sends in a non-streamed message (stop_sequence included, null or not).
MESSAGE_KEYS = {"id", "type", "role", "content", "model", "stop_reason", "stop_sequence", "usage"}
TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
_EVENT = TypeAdapter(anthropic_types.RawMessageStreamEvent)

# "strict": vLLM 0.32 constrains the arguments to the schema only for strict tools (xgrammar structural
# tag); without it a random-weight model writes endless numbers. The router passes the flag through.
TOOLS = [
    {
        "name": "get_time",
        "description": "Get the current time in a timezone",
        "input_schema": {
            "type": "object",
            "properties": {"tz": {"type": "string", "enum": ["UTC", "CET", "JST"]}},
            "required": ["tz"],
            "additionalProperties": False,
        },
        "strict": True,
    },
    {
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string", "enum": ["Paris", "London", "Tokyo"]}},
            "required": ["city"],
            "additionalProperties": False,
        },
        "strict": True,
    },
]


@contextlib.contextmanager
def judged(side: str) -> Iterator[None]:
    """Router: a failed check fails. Native: it is the difference we report (xfail with the reason).
    ValueError covers the SDK's pydantic validation of events and messages."""
    try:
        yield
    except (AssertionError, ValueError) as exc:
        if side == "native":
            pytest.xfail(" ".join(str(exc).split())[:300])
        raise


def save(stack: Stack, scenario: str, side: str, body: Any, resp: Response) -> None:
    """Keep the exchange (request and raw answer) for the report and for later fixture work."""
    folder: Path = stack.log_dir / "scenarios"
    folder.mkdir(exist_ok=True)
    request = body.decode() if isinstance(body, bytes) else json.dumps(body)
    text = f">>> {request}\n<<< {resp.status} {resp.headers.get('content-type')}\n\n"
    (folder / f"{scenario}.{side}.txt").write_text(text + resp.raw.decode("utf-8", "replace"))


def streamed(resp: Response) -> tuple[list[dict], anthropic_types.Message]:
    """The events (strictly checked) and the message the SDK accumulates from them."""
    assert resp.status == 200, f"HTTP {resp.status}: {resp.raw[:300]!r}"
    assert resp.headers.get("content-type", "").startswith("text/event-stream"), resp.headers
    events = check_stream(resp.raw)
    for event in events:  # name the event the SDK's types reject, rather than a 40-line union error
        try:
            _EVENT.validate_python(event)
        except ValueError as exc:
            count = exc.error_count() if hasattr(exc, "error_count") else "?"
            raise AssertionError(
                f"the SDK's event types reject {json.dumps(event)[:200]} ({count} errors)"
            ) from None
    return events, sdk_message(resp.raw)


def complete(resp: Response) -> anthropic_types.Message:
    """A non-streamed message valid for the SDK's pydantic type (see ``all_fields`` for the rest)."""
    assert resp.status == 200, f"HTTP {resp.status}: {resp.raw[:300]!r}"
    data = resp.json()
    assert data["type"] == "message" and data["role"] == "assistant", data
    usage = data["usage"]
    assert isinstance(usage.get("input_tokens"), int) and isinstance(usage.get("output_tokens"), int), usage
    for block in data["content"]:
        if block["type"] == "text":
            assert block["text"].strip(), "empty text block"
        if block["type"] == "tool_use":
            assert TOOL_ID.match(block["id"]), f"tool id {block['id']!r}"
    return anthropic_types.Message.model_validate(data)


def all_fields(resp: Response) -> None:
    """Every field the Anthropic API sends is there (the SDK defaults a missing ``stop_sequence``, other
    clients may not). Checked last, so that a missing field does not hide the scenario's own checks."""
    missing = MESSAGE_KEYS - resp.json().keys()
    assert not missing, f"message lacks {sorted(missing)}"


def final_usage(events: list[dict]) -> tuple[int, int]:
    """(input_tokens from message_start, output_tokens from the last message_delta)."""
    start = next(e for e in events if e["type"] == "message_start")
    delta = [e for e in events if e["type"] == "message_delta"][-1]
    return start["message"]["usage"]["input_tokens"], delta["usage"]["output_tokens"]


def text_of(message: anthropic_types.Message) -> str:
    return "".join(b.text for b in message.content if b.type == "text")


def check_tool_input(name: str, value: Any) -> None:
    """The input follows its tool's schema (enum, required, no extra keys), as strict decoding promises."""
    tool = next((t for t in TOOLS if t["name"] == name), None)
    assert tool is not None, f"unknown tool {name!r}"
    schema = tool["input_schema"]
    assert isinstance(value, dict), f"{name} input {value!r} is not an object"
    assert set(value) == set(schema["required"]), f"{name} input keys {sorted(value)}"
    for key, prop in schema["properties"].items():
        assert value[key] in prop["enum"], f"{name}.{key}={value[key]!r} not in {prop['enum']}"


def anthropic_error(resp: Response, status: int, error_type: str) -> str:
    """Asserts an Anthropic error body (JSON, not SSE) with that status and type; returns the message."""
    assert resp.status == status, f"HTTP {resp.status} (want {status}): {resp.raw[:300]!r}"
    assert resp.headers.get("content-type", "").startswith("application/json"), (
        f"content-type {resp.headers.get('content-type')!r}: {resp.raw[:200]!r}"
    )
    data = resp.json()
    assert data.get("type") == "error" and isinstance(data.get("error"), dict), (
        f"not the Anthropic shape: {data}"
    )
    err = data["error"]
    assert err.get("type") in ERROR_TYPES, f"error type {err.get('type')!r} is not an Anthropic error type"
    assert err["type"] == error_type, f"error type {err['type']!r}, want {error_type!r}"
    assert isinstance(err.get("message"), str) and err["message"], data
    return err["message"]


def last_chat_request(stack: Stack) -> dict:
    """The body the router sent vLLM for the scenario that just ran (tests run one at a time)."""
    # The client has its answer a moment before the router finishes its backend exchange (it reads the
    # chunked terminator after [DONE] to keep the connection pooled), and the tap records an exchange
    # when it ends: wait until the recording stops growing.
    exchanges = stack.backend_exchanges()
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        time.sleep(0.1)
        again = stack.backend_exchanges()
        if len(again) == len(exchanges):
            break
        exchanges = again
    chats = [e for e in exchanges if e["path"].startswith("/v1/chat/completions")]
    assert chats, "the router sent vLLM no chat request"
    return chats[-1]["body"]
