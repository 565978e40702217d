"""OpenAI chat-completion stream (vLLM) → Anthropic Messages stream, one backend token at a time.

The output must satisfy the strictest client, Claude Code, whose accumulator throws on a delta for an
unknown block index, a delta whose type does not match its block, or a stop before ``message_start``
(see docs/protocol-notes.md B1). The rules that follow from that, and from what vLLM really sends:

* ``message_start`` goes out with the first backend chunk (or earlier through :meth:`begin`), carrying
  the prompt size when that chunk has usage (``continuous_usage_stats``).
* A content block opens on the first *non-empty* delta of its kind. vLLM's first chunk has
  ``content: ""``; an empty text block would be stored by the client and rejected by Anthropic
  backends on every later turn.
* Nor does whitespace alone open a text or thinking block: Anthropic rejects whitespace-only text
  blocks too, and Qwen-style models emit ``"\n\n"`` before a ``<tool_call>``. While no block of its kind
  is open, whitespace is held back; the first delta with anything else opens the block and carries the
  held whitespace in front of it (one delta, so the block's text is exactly what the backend sent).
  Whitespace still held when another block opens, or at the end, is dropped, as
  ``translate_response.to_anthropic`` drops whitespace-only text and thinking. So the only text that
  can go missing is whitespace before a block of another kind or the end of the message. Inside an open
  block whitespace passes straight through: ``str.isspace`` runs only while no block of the delta's
  kind is open, so the per-token path of an open block is unchanged.
* Exactly one block is open at a time; a block of another kind, or another tool call, closes it (held
  whitespace opens nothing, so it closes nothing either).
  Thinking blocks close with a synthetic ``signature_delta`` because clients replay the signature.
* Tool-call arguments go out only as ``input_json_delta`` fragments as they arrive (the arguments of a
  call's first delta included), never buffered until the JSON parses.
* ``message_delta`` waits for the usage chunk vLLM sends after ``finish_reason`` (or ``[DONE]``/EOF),
  so its counts are final; the stream always ends with ``message_stop`` or ``event: error``.

Tool calls are expected in order, as vLLM emits them: arguments for a call whose block was already
closed cannot be delivered any more (the client has parsed that block's input at its stop), so such a
stream ends with a retryable ``overloaded_error`` rather than a silently corrupted tool input.
A chunk that is not JSON ends the stream the same way: nothing after it can be trusted, and
``overloaded_error`` is the one mid-stream error type Claude Code retries.

Per token the work is one ``orjson.loads``, a few dict lookups and one ``orjson.dumps`` of the text
between precomputed byte templates; frames of one :meth:`feed` call leave as a single ``bytes``.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from router.errors import error_event, from_stream_error
from router.sse import SSEParser, frame
from router.translate_response import (
    ABORTED,
    anthropic_usage,
    map_stop_reason,
    new_message_id,
    sanitize_tool_id,
    thinking_signature,
)

_TEXT = "text"
_THINKING = "thinking"
_TOOL = "tool_use"

# (delta type, field carrying the fragment) of each block kind
_DELTA_FIELDS: dict[str, tuple[bytes, bytes]] = {
    _TEXT: (b"text_delta", b"text"),
    _THINKING: (b"thinking_delta", b"thinking"),
    _TOOL: (b"input_json_delta", b"partial_json"),
}
_DELTA_HEAD = (
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,"delta":{"type":"%s","%s":'
)
_DELTA_TAIL = b"}}\n\n"
_BLOCK_STOP = b'event: content_block_stop\ndata: {"type":"content_block_stop","index":%d}\n\n'
_MESSAGE_STOP = frame(b"message_stop", b'{"type":"message_stop"}')


class _StreamFault(Exception):
    """The backend stream cannot be translated any further; ends it with a retryable error."""


class StreamTranscoder:
    """Feeds on raw backend bytes, returns Anthropic SSE bytes; see the module docstring for the rules."""

    def __init__(self, model: str, message_id: str | None = None) -> None:
        self.model = model
        self.message_id = message_id or new_message_id()
        self.done = False
        self.stop_reason: str | None = None
        self.error_type: str | None = None  # set when the stream ended with ``event: error``
        self.first_token_at: float | None = None

        self._parser = SSEParser()
        self._started = False
        self._usage_raw: dict | None = None  # latest OpenAI usage object seen
        self._fragments = 0  # content deltas sent: the output count when the backend gives none
        self._finish_reason: str | None = None
        self._vllm_stop: Any = None  # vLLM's ``stop_reason``: the stop string that matched, if any

        self._next_index = 0
        self._open: str | None = None  # kind of the open block
        self._open_index = -1
        self._delta_head = b""  # _DELTA_HEAD filled in for the open block
        self._thinking: list[str] = []  # text of the open thinking block, for its signature
        self._held: dict[str, list[str]] = {}  # whitespace-only deltas waiting for a block of their kind
        self._tool_key: int | None = None  # backend index of the open tool call
        self._tool_has_args = False
        self._tool_keys: set[int] = set()  # backend indexes that got a block, open or closed
        self._nameless: dict[int, tuple[str | None, str]] = {}  # calls waiting for their name: id, args

    # --- public API -------------------------------------------------------------------------------

    @property
    def usage(self) -> dict:
        """Anthropic usage so far; output counted from the deltas when the backend sends no usage."""
        usage = anthropic_usage(self._usage_raw)
        if not usage.get("output_tokens"):
            usage["output_tokens"] = self._fragments
        return usage

    def begin(self) -> bytes:
        """``message_start`` now, so that keep-alive pings during a long prefill follow it."""
        if self._started or self.done:
            return b""
        return self._message_start()

    def feed(self, data: bytes) -> bytes:
        """Everything the complete frames in ``data`` (plus what was buffered) translate to."""
        if self.done:
            return b""
        out: list[bytes] = []
        for payload in self._parser.feed(data):
            self._payload(payload, out)
            if self.done:
                break
        return b"".join(out)

    def close(self) -> bytes:
        """Backend EOF. A stream cut before any ``finish_reason`` is an incomplete answer: it ends with a
        retryable error rather than a ``message_stop`` that would make it look complete."""
        if self.done:
            return b""
        out: list[bytes] = []
        for payload in self._parser.flush():
            self._payload(payload, out)
            if self.done:
                return b"".join(out)
        if self._finish_reason is None:
            out.append(self.fail("overloaded_error", "backend stream ended early"))
        else:
            self._finish(out)
        return b"".join(out)

    def fail(self, type: str, message: str) -> bytes:
        """End the stream with ``event: error`` (open blocks stay open: the message is void anyway)."""
        if self.done:
            return b""
        head = b"" if self._started else self._message_start()
        self.done = True
        self.error_type = type
        return head + error_event(type, message)

    # --- backend chunks ---------------------------------------------------------------------------

    def _payload(self, payload: bytes, out: list[bytes]) -> None:
        if payload == b"[DONE]":
            self._finish(out)
            return
        try:
            chunk = orjson.loads(payload)
            if "error" in chunk or chunk.get("object") == "error":
                out.append(self.fail(*from_stream_error(chunk)))
                return
            self._chunk(chunk, out)
        except _StreamFault as exc:
            out.append(self.fail("overloaded_error", str(exc)))
        except (ValueError, TypeError, AttributeError, KeyError):
            # not JSON, or JSON of the wrong shape (a list, a string where a dict belongs, ...)
            out.append(self.fail("overloaded_error", "backend sent a malformed stream chunk"))

    def _chunk(self, chunk: dict, out: list[bytes]) -> None:
        usage = chunk.get("usage")
        if usage:
            self._usage_raw = usage
        if not self._started:
            out.append(self._message_start())
        choices = chunk.get("choices")
        if not choices:
            if usage and self._finish_reason is not None:
                self._finish(out)  # the usage chunk after finish_reason: the counts are final now
            return
        choice = choices[0]
        if choice.get("index", 0) != 0:  # n > 1: only the first choice is answered
            choice = next((c for c in choices if c.get("index", 0) == 0), None)
            if choice is None:
                return
        delta = choice.get("delta")
        if delta:
            reasoning = delta.get("reasoning") or delta.get("reasoning_content")
            if reasoning:
                self._fragment(_THINKING, reasoning, out)
            text = delta.get("content")
            if text:
                self._fragment(_TEXT, text, out)
            calls = delta.get("tool_calls")
            if calls:
                for call in calls:
                    self._tool_call(call, out)
        finish = choice.get("finish_reason")
        if finish:
            self._finish_reason = finish
            self._vllm_stop = choice.get("stop_reason")

    def _fragment(self, kind: str, text: str, out: list[bytes]) -> None:
        if not isinstance(text, str):
            raise _StreamFault(f"backend sent a non-string {kind} delta")
        if self._open is not kind:
            if text.isspace():  # no block for whitespace alone (see the module docstring)
                self._held.setdefault(kind, []).append(text)
                self._fragments += 1  # generated tokens all the same
                if self.first_token_at is None:
                    self.first_token_at = time.monotonic()
                return
            held = self._held.pop(kind, None)
            if held:
                text = "".join(held) + text
            block = {"type": "text", "text": ""} if kind is _TEXT else _thinking_block()
            self._open_block(kind, block, out)
        out += (self._delta_head, orjson.dumps(text), _DELTA_TAIL)
        self._fragments += 1
        if kind is _THINKING:
            self._thinking.append(text)

    def _tool_call(self, call: dict, out: list[bytes]) -> None:
        function = call.get("function") or {}
        name = function.get("name")
        args = function.get("arguments")
        if args is not None and not isinstance(args, str):
            raise _StreamFault("backend sent tool-call arguments that are not a string")
        key = call.get("index")
        if not isinstance(key, int):
            # Some servers omit the index and send calls one after another: a name starts the next call.
            key = self._tool_key if self._open is _TOOL and not name else -1 - len(self._tool_keys)

        if self._open is _TOOL and key == self._tool_key:
            if args:
                self._tool_args(args, out)
            return
        if key in self._tool_keys:
            if args:
                raise _StreamFault("backend sent arguments for a tool call it had already moved past")
            return

        call_id = call.get("id")
        if key in self._nameless:
            earlier_id, earlier_args = self._nameless.pop(key)
            call_id = call_id or earlier_id
            args = earlier_args + (args or "")
        if not name or not isinstance(name, str):
            self._nameless[key] = (call_id, args or "")  # a block cannot open without its tool name
            return
        self._tool_keys.add(key)
        if isinstance(call_id, str) and call_id:
            block_id = sanitize_tool_id(call_id)
        else:  # derived from the message id, so a replayed stream gives the same id
            block_id = sanitize_tool_id(f"toolu_{self.message_id}_{self._next_index}")
        self._open_block(_TOOL, {"type": "tool_use", "id": block_id, "name": name, "input": {}}, out)
        self._tool_key = key
        self._tool_has_args = False
        if args:
            self._tool_args(args, out)

    def _tool_args(self, args: str, out: list[bytes]) -> None:
        out += (self._delta_head, orjson.dumps(args), _DELTA_TAIL)
        self._tool_has_args = True
        self._fragments += 1

    # --- blocks and message framing ---------------------------------------------------------------

    def _open_block(self, kind: str, content_block: dict, out: list[bytes]) -> None:
        self._close_block(out)
        if self._held:
            self._held.clear()  # whitespace before a block of another kind: dropped
        index = self._next_index
        self._next_index += 1
        start = {"type": "content_block_start", "index": index, "content_block": content_block}
        out.append(frame(b"content_block_start", orjson.dumps(start)))
        self._open = kind
        self._open_index = index
        self._delta_head = _DELTA_HEAD % ((index, *_DELTA_FIELDS[kind]))
        if self.first_token_at is None:
            self.first_token_at = time.monotonic()

    def _close_block(self, out: list[bytes]) -> None:
        kind = self._open
        if kind is None:
            return
        if kind is _THINKING:
            signature = _DELTA_HEAD % (self._open_index, b"signature_delta", b"signature")
            # Clients require a signature and send it back; local backends never check it.
            out += (signature, orjson.dumps(thinking_signature("".join(self._thinking))), _DELTA_TAIL)
            self._thinking.clear()
        elif kind is _TOOL:
            if not self._tool_has_args:
                # A call with no argument text means no arguments; say so, since clients parse the
                # concatenated fragments at the block's stop and "" is not JSON.
                out += (self._delta_head, b'"{}"', _DELTA_TAIL)
            self._tool_key = None
        out.append(_BLOCK_STOP % self._open_index)
        self._open = None

    def _message_start(self) -> bytes:
        self._started = True
        usage = anthropic_usage(self._usage_raw)
        usage["output_tokens"] = 0
        message = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": self.model,
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        return frame(b"message_start", orjson.dumps({"type": "message_start", "message": message}))

    def _finish(self, out: list[bytes]) -> None:
        if self.done:
            return
        if self._finish_reason in ABORTED:
            # vLLM aborted the request (preempted, engine error, shutting down): the answer is
            # incomplete, and a retry is what the client should do.
            out.append(
                self.fail("overloaded_error", f"backend aborted the generation ({self._finish_reason})")
            )
            return
        if not self._started:
            out.append(self._message_start())
        self._close_block(out)
        self._nameless.clear()  # a call that never got a name cannot be run; it is dropped
        has_tool_use = bool(self._tool_keys)
        stop_reason, stop_sequence = map_stop_reason(self._finish_reason, self._vllm_stop, has_tool_use)
        self.stop_reason = stop_reason
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
            "usage": self.usage,
        }
        out += (frame(b"message_delta", orjson.dumps(delta)), _MESSAGE_STOP)
        self.done = True


def _thinking_block() -> dict:
    # "signature" is part of ThinkingBlock in the SDK types; strict validators reject a block without it.
    return {"type": "thinking", "thinking": "", "signature": ""}
