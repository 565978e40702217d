"""A strict checker for Anthropic Messages SSE streams, and the official SDK's view of one.

``check_stream`` enforces the grammar of docs/protocol-notes.md B1 as the strictest client (Claude Code)
needs it, stricter than the SDK: it fails on the framing mistakes that broke other proxies (a delta for an
unknown index, a delta of the wrong type for its block, an empty text block, a double stop, a stream that
just stops). ``sdk_message`` replays the same bytes through the SDK's own SSE decoder, pydantic event
types and ``accumulate_event``, so a stream that passes both is what a real client reconstructs.
"""

from __future__ import annotations

import json
import re
from typing import Any

from anthropic import types as anthropic_types
from anthropic._streaming import SSEDecoder
from anthropic.lib.streaming._messages import accumulate_event
from pydantic import TypeAdapter

STOP_REASONS = {
    "end_turn",
    "max_tokens",
    "stop_sequence",
    "tool_use",
    "pause_turn",
    "refusal",
    "model_context_window_exceeded",
}
ERROR_TYPES = {
    "invalid_request_error",
    "authentication_error",
    "billing_error",
    "permission_error",
    "not_found_error",
    "request_too_large",
    "rate_limit_error",
    "api_error",
    "timeout_error",
    "overloaded_error",
}
# block type -> delta types allowed inside it
DELTAS_FOR_BLOCK = {
    "text": {"text_delta"},
    "thinking": {"thinking_delta", "signature_delta"},
    "tool_use": {"input_json_delta"},
}
TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
_FRAME_LINE = re.compile(r"^(event|data): ?(.*)$")


class StreamError(AssertionError):
    """The stream breaks the Anthropic SSE grammar."""


class SDKStreamError(Exception):
    """The stream ended with ``event: error``, which the SDK raises as an API error."""

    def __init__(self, body: dict) -> None:
        super().__init__(json.dumps(body))
        self.body = body


def parse_frames(raw: bytes) -> list[tuple[str | None, dict]]:
    """(event name, data JSON) per frame; comment lines (keep-alives) are allowed and skipped."""
    text = raw.decode("utf-8")
    if "\r" in text:
        raise StreamError("the router writes LF line endings only")
    if text and not text.endswith("\n\n"):
        raise StreamError(f"stream does not end with a complete frame: {text[-80:]!r}")
    frames: list[tuple[str | None, dict]] = []
    for block in text.split("\n\n"):
        if not block:
            continue
        event: str | None = None
        data: str | None = None
        for line in block.split("\n"):
            if line.startswith(":"):
                continue
            match = _FRAME_LINE.match(line)
            if match is None:
                raise StreamError(f"unexpected line {line!r}")
            field, value = match.groups()
            if field == "event":
                if event is not None:
                    raise StreamError(f"two event lines in one frame: {block!r}")
                event = value
            else:
                if data is not None:
                    raise StreamError(f"multi-line data (never produced by the router): {block!r}")
                data = value
        if data is None:
            if event is not None:
                raise StreamError(f"frame without data: {block!r}")
            continue  # a frame of comments only
        try:
            payload = json.loads(data)
        except ValueError as exc:
            raise StreamError(f"data is not JSON: {data[:120]!r}") from exc
        if not isinstance(payload, dict):
            raise StreamError(f"data is not a JSON object: {data[:120]!r}")
        frames.append((event, payload))
    return frames


def check_stream(raw: bytes, *, require_signature: bool = True) -> list[dict]:
    """Assert that ``raw`` is one complete, well-formed Anthropic stream; returns its events' data.

    ``require_signature``: thinking blocks must carry a non-empty ``signature_delta`` before their stop
    (Claude Code replays it). Pings are allowed anywhere and are included in the result.
    """
    frames = parse_frames(raw)
    if not frames:
        raise StreamError("empty stream")
    events: list[dict] = []
    state = _State(require_signature)
    for position, (event, data) in enumerate(frames):
        if event is None:
            raise StreamError(f"frame {position} has no event line (SDKs drop it): {data}")
        if data.get("type") != event:
            raise StreamError(f"frame {position}: event {event!r} but data.type {data.get('type')!r}")
        if state.ended:
            raise StreamError(f"frame {position} ({event}) after the stream ended")
        state.event(event, data, position)
        events.append(data)
    if not state.ended:
        raise StreamError("stream ended without message_stop or error")
    return events


class _State:
    def __init__(self, require_signature: bool) -> None:
        self.require_signature = require_signature
        self.started = False
        self.ended = False
        self.blocks: list[dict] = []  # content blocks so far, with accumulated text
        self.open: dict | None = None
        self.deltas_in_open = 0
        self.signed = False
        self.message_delta_seen = False

    def event(self, event: str, data: dict, position: int) -> None:
        handler = getattr(self, "_" + event, None)
        if handler is None:
            raise StreamError(f"frame {position}: unknown event type {event!r}")
        if event not in ("ping", "error", "message_start") and not self.started:
            raise StreamError(f"frame {position}: {event} before message_start")
        handler(data)

    def _ping(self, data: dict) -> None:
        _keys(data, {"type"})

    def _error(self, data: dict) -> None:
        _keys(data, {"type", "error"}, optional={"request_id"})
        error = data["error"]
        _keys(error, {"type", "message"})
        if error["type"] not in ERROR_TYPES:
            raise StreamError(f"unknown error type {error['type']!r}")
        if not isinstance(error["message"], str) or not error["message"]:
            raise StreamError("error message must be a non-empty string")
        self.ended = True

    def _message_start(self, data: dict) -> None:
        if self.started:
            raise StreamError("second message_start")
        self.started = True
        _keys(data, {"type", "message"})
        message = data["message"]
        _keys(message, {"id", "type", "role", "content", "model", "stop_reason", "stop_sequence", "usage"})
        if message["type"] != "message" or message["role"] != "assistant":
            raise StreamError(f"bad message header {message}")
        if message["content"] != [] or message["stop_reason"] is not None or message["stop_sequence"]:
            raise StreamError("message_start must have empty content and null stop fields")
        if not isinstance(message["id"], str) or not message["id"] or not isinstance(message["model"], str):
            raise StreamError("message id and model must be strings")
        _usage(message["usage"], need_input=True)

    def _content_block_start(self, data: dict) -> None:
        self._no_more_blocks("content_block_start")
        if self.open is not None:
            raise StreamError(f"content_block_start while block {self.open['index']} is open")
        _keys(data, {"type", "index", "content_block"})
        if data["index"] != len(self.blocks):
            raise StreamError(f"block index {data['index']}, expected {len(self.blocks)}")
        block = data["content_block"]
        kind = block.get("type")
        if kind == "text":
            _keys(block, {"type", "text"}, optional={"citations"})
            if block["text"] != "":
                raise StreamError("text block must start empty")
        elif kind == "thinking":
            _keys(block, {"type", "thinking"}, optional={"signature"})
            if block["thinking"] != "":
                raise StreamError("thinking block must start empty")
        elif kind == "tool_use":
            _keys(block, {"type", "id", "name", "input"})
            if not isinstance(block["id"], str) or not TOOL_ID.match(block["id"]):
                raise StreamError(f"tool_use id {block['id']!r} does not match {TOOL_ID.pattern}")
            if not isinstance(block["name"], str) or not block["name"]:
                raise StreamError("tool_use name must be a non-empty string")
            if block["input"] != {}:
                raise StreamError("tool_use input must start as {} (arguments come as input_json_delta)")
        else:
            raise StreamError(f"unexpected block type {kind!r}")
        self.open = {"index": data["index"], "type": kind, "text": "", "block": block}
        self.blocks.append(self.open)
        self.deltas_in_open = 0
        self.signed = False

    def _content_block_delta(self, data: dict) -> None:
        self._no_more_blocks("content_block_delta")
        _keys(data, {"type", "index", "delta"})
        block = self._open_block(data["index"], "content_block_delta")
        delta = data["delta"]
        kind = delta.get("type")
        if kind not in DELTAS_FOR_BLOCK[block["type"]]:
            raise StreamError(f"{kind} inside a {block['type']} block (index {block['index']})")
        field = {
            "text_delta": "text",
            "thinking_delta": "thinking",
            "signature_delta": "signature",
            "input_json_delta": "partial_json",
        }[kind]
        _keys(delta, {"type", field})
        if not isinstance(delta[field], str):
            raise StreamError(f"{kind}.{field} must be a string")
        if self.signed:
            raise StreamError("delta after the thinking block's signature")
        if kind == "signature_delta":
            if not delta[field]:
                raise StreamError("empty signature")
            self.signed = True
        else:
            block["text"] += delta[field]
        self.deltas_in_open += 1

    def _content_block_stop(self, data: dict) -> None:
        self._no_more_blocks("content_block_stop")
        _keys(data, {"type", "index"})
        block = self._open_block(data["index"], "content_block_stop")
        if self.deltas_in_open == 0:
            raise StreamError(f"block {block['index']} closed without any delta")
        if block["type"] in ("text", "thinking") and not block["text"].strip():
            raise StreamError(f"empty or whitespace-only {block['type']} block {block['index']}")
        if block["type"] == "thinking" and self.require_signature and not self.signed:
            raise StreamError(f"thinking block {block['index']} closed without a signature_delta")
        self.open = None

    def _message_delta(self, data: dict) -> None:
        if self.open is not None:
            raise StreamError(f"message_delta while block {self.open['index']} is open")
        _keys(data, {"type", "delta", "usage"})
        delta = data["delta"]
        _keys(delta, {"stop_reason", "stop_sequence"}, optional={"stop_details", "container"})
        if delta["stop_reason"] not in STOP_REASONS:
            raise StreamError(f"invalid stop_reason {delta['stop_reason']!r}")
        sequence = delta["stop_sequence"]
        if (delta["stop_reason"] == "stop_sequence") != isinstance(sequence, str):
            raise StreamError(f"stop_sequence {sequence!r} does not fit stop_reason {delta['stop_reason']}")
        _usage(data["usage"], need_input=False)
        self.message_delta_seen = True

    def _message_stop(self, data: dict) -> None:
        _keys(data, {"type"})
        if not self.message_delta_seen:
            raise StreamError("message_stop without message_delta")
        self.ended = True

    def _open_block(self, index: Any, event: str) -> dict:
        if self.open is None or self.open["index"] != index:
            raise StreamError(f"{event} for index {index}, which is not the open block")
        return self.open

    def _no_more_blocks(self, event: str) -> None:
        if self.message_delta_seen:
            raise StreamError(f"{event} after message_delta")


def _keys(obj: Any, required: set[str], optional: frozenset[str] | set[str] = frozenset()) -> None:
    if not isinstance(obj, dict):
        raise StreamError(f"expected an object, got {obj!r}")
    missing = required - obj.keys()
    extra = obj.keys() - required - optional
    if missing or extra:
        raise StreamError(f"{obj.get('type', obj)!r}: missing {sorted(missing)}, unexpected {sorted(extra)}")


_USAGE_FIELDS = {"input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"}


def _usage(usage: Any, *, need_input: bool) -> None:
    _keys(usage, {"output_tokens", "input_tokens"} if need_input else {"output_tokens"}, _USAGE_FIELDS)
    for name, value in usage.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise StreamError(f"usage.{name} must be a non-negative int, got {value!r}")


# --- the official SDK's reading of a stream ------------------------------------------------------------

_EVENT = TypeAdapter(anthropic_types.RawMessageStreamEvent)


def sdk_message(raw: bytes) -> anthropic_types.Message:
    """The message the SDK's ``MessageStream`` accumulates from ``raw``.

    Frames are decoded by the SDK's ``SSEDecoder`` and dispatched on the ``event:`` name as its
    ``Stream`` does (pings skipped, ``error`` raised: here as :class:`SDKStreamError`); every event is
    *validated* against the SDK's pydantic types, stricter than the SDK's own lenient construction.
    """
    snapshot = None
    json_bufs: dict[int, bytes] = {}
    for sse in SSEDecoder().iter_bytes(iter([raw])):
        if sse.event is None or sse.event == "ping" or not sse.data:
            continue
        if sse.event == "error":
            raise SDKStreamError(sse.json())
        event = _EVENT.validate_python(sse.json())
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=json_bufs)
    if snapshot is None:
        raise StreamError("the SDK saw no message_start")
    return snapshot
