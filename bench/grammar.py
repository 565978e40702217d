"""A light Anthropic SSE grammar checker for the load generator: order, types and content.

It is deliberately independent of the router's code and of the test suite's helpers, so a bug
shared by the router and its tests cannot hide here. It checks what clients enforce (see
protocol-notes B1): ``message_start`` first; blocks opened in index order, one at a time, with
deltas of the block's own type; ``message_delta`` with usage after the last block; ``message_stop``
last; the ``event:`` name equal to ``data.type``; ``ping`` anywhere; ``error`` is a failure.
The text (or tool input) accumulated is returned so the caller can compare it with what the
backend sent.
"""

from __future__ import annotations

from typing import Any

import orjson

DELTA_FOR_BLOCK = {
    "text": ("text_delta",),
    "tool_use": ("input_json_delta",),
    "thinking": ("thinking_delta", "signature_delta"),
}
STOP_REASONS = frozenset(
    {
        "end_turn",
        "max_tokens",
        "stop_sequence",
        "tool_use",
        "pause_turn",
        "refusal",
        "model_context_window_exceeded",
    }
)


class GrammarError(ValueError):
    """A stream or message a strict client (Claude Code, the Anthropic SDK) would reject."""


class StreamValidator:
    """Feed raw response bytes in any split; ``finish()`` at EOF returns the validated result.

    Results: ``text`` (all text deltas), ``tool_json`` (all input_json deltas), ``blocks`` (types),
    ``stop_reason``, ``output_tokens``, ``deltas`` (count) and ``first_delta_at`` (the index of
    the feed call that delivered the first content delta, so the caller can time TTFT).
    """

    def __init__(self) -> None:
        self._buf = b""
        self.started = False
        self.stopped = False
        self.blocks: list[str] = []
        self.open_index: int | None = None
        self.text_parts: list[str] = []
        self.json_parts: list[str] = []
        self.deltas = 0
        self.stop_reason: str | None = None
        self.output_tokens: int | None = None
        self.message_deltas = 0

    def feed(self, data: bytes) -> int:
        """Consume bytes; returns how many content deltas completed in them."""
        buf = self._buf + data if self._buf else data
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        frames = buf.split(b"\n\n")
        self._buf = frames.pop()
        before = self.deltas
        for frame in frames:
            if frame:
                self._frame(frame)
        return self.deltas - before

    def _frame(self, frame: bytes) -> None:
        event: str | None = None
        data: list[bytes] = []
        for line in frame.split(b"\n"):
            if line.startswith(b"event:"):
                event = line[6:].strip().decode()
            elif line.startswith(b"data:"):
                data.append(line[5:].removeprefix(b" "))
            elif line.startswith(b":") or not line:
                continue
        if not data and event is None:
            return  # a comment-only frame
        if event is None:
            raise GrammarError("frame without an event: line (clients drop it)")
        try:
            obj = orjson.loads(b"\n".join(data))
        except orjson.JSONDecodeError as exc:
            raise GrammarError(f"{event}: data is not JSON: {exc}") from None
        if not isinstance(obj, dict) or obj.get("type") != event:
            raise GrammarError(
                f"event {event!r} carries data.type {obj.get('type') if isinstance(obj, dict) else obj!r}"
            )
        self._event(event, obj)

    def _event(self, event: str, obj: dict[str, Any]) -> None:
        if event == "ping":
            return
        if event == "error":
            raise GrammarError(f"error event: {obj.get('error')}")
        if self.stopped:
            raise GrammarError(f"{event} after message_stop")
        if event == "message_start":
            if self.started:
                raise GrammarError("second message_start")
            msg = obj.get("message")
            if not isinstance(msg, dict) or msg.get("role") != "assistant" or msg.get("content") != []:
                raise GrammarError("message_start without an empty assistant message")
            self.started = True
            return
        if not self.started:
            raise GrammarError(f"{event} before message_start")
        index = obj.get("index")
        if event == "content_block_start":
            if self.open_index is not None:
                raise GrammarError(f"block {index} opened while block {self.open_index} is open")
            if self.message_deltas:
                raise GrammarError("content_block_start after message_delta")
            if index != len(self.blocks):
                raise GrammarError(f"block index {index}, expected {len(self.blocks)}")
            block = obj.get("content_block") or {}
            if block.get("type") not in DELTA_FOR_BLOCK:
                raise GrammarError(f"unknown block type {block.get('type')!r}")
            if block["type"] == "tool_use" and not (block.get("id") and block.get("name")):
                raise GrammarError("tool_use block without id or name")
            self.blocks.append(block["type"])
            self.open_index = index
        elif event == "content_block_delta":
            if index is None or index != self.open_index:
                raise GrammarError(f"delta for block {index}, open block is {self.open_index}")
            delta = obj.get("delta") or {}
            kind = delta.get("type")
            if kind not in DELTA_FOR_BLOCK[self.blocks[index]]:
                raise GrammarError(f"{kind} inside a {self.blocks[index]} block")
            if kind == "text_delta":
                self.text_parts.append(delta["text"])
            elif kind == "input_json_delta":
                self.json_parts.append(delta["partial_json"])
            self.deltas += 1
        elif event == "content_block_stop":
            if index is None or index != self.open_index:
                raise GrammarError(f"stop for block {index}, open block is {self.open_index}")
            self.open_index = None
        elif event == "message_delta":
            if self.open_index is not None:
                raise GrammarError("message_delta while a block is open")
            usage = obj.get("usage") or {}
            reason = (obj.get("delta") or {}).get("stop_reason")
            if not isinstance(usage.get("output_tokens"), int):
                raise GrammarError("message_delta without usage.output_tokens")
            if reason is not None and reason not in STOP_REASONS:
                raise GrammarError(f"invalid stop_reason {reason!r}")
            self.stop_reason = reason or self.stop_reason
            self.output_tokens = usage["output_tokens"]
            self.message_deltas += 1
        elif event == "message_stop":
            if self.open_index is not None or not self.message_deltas:
                raise GrammarError("message_stop before the block stop or message_delta")
            self.stopped = True
        # other event types are tolerated, as clients must

    def finish(self) -> None:
        """EOF: the stream must have ended with message_stop and nothing half-sent after it."""
        if self._buf.strip():
            raise GrammarError("trailing bytes after the last frame")
        if not self.stopped:
            raise GrammarError("stream ended without message_stop")

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    @property
    def tool_json(self) -> str:
        return "".join(self.json_parts)


def validate_message(body: bytes) -> dict[str, Any]:
    """A non-streaming Messages answer; returns it parsed."""
    try:
        msg = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise GrammarError(f"body is not JSON: {exc}") from None
    if not isinstance(msg, dict) or msg.get("type") != "message" or msg.get("role") != "assistant":
        raise GrammarError(f"not an assistant message: {str(msg)[:200]}")
    content = msg.get("content")
    if not isinstance(content, list):
        raise GrammarError("content is not a list")
    for block in content:
        if not isinstance(block, dict) or block.get("type") not in DELTA_FOR_BLOCK:
            raise GrammarError(f"bad content block {str(block)[:100]}")
    if msg.get("stop_reason") not in STOP_REASONS:
        raise GrammarError(f"invalid stop_reason {msg.get('stop_reason')!r}")
    usage = msg.get("usage") or {}
    if not isinstance(usage.get("output_tokens"), int) or not isinstance(usage.get("input_tokens"), int):
        raise GrammarError("usage without input_tokens/output_tokens")
    return msg
