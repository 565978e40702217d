"""Precomputed wire bytes for the fake backend: vLLM's OpenAI SSE and the native Anthropic SSE.

Every per-token frame is built once at start-up so the backend spends its time writing, never
encoding: the bench must measure the router, and the "direct" baseline must be as close to the
physical limit as a Python server gets. Shapes follow the recorded vLLM 0.32 traffic
(``13_chat_stream_continuous_usage``, ``32_tools_required_strict_stream``, ``81_messages_stream``).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import orjson

from bench.tokens import (
    MAX_TOKENS,
    MODEL,
    PROMPT_TOKENS,
    TOOL_ID,
    TOOL_NAME,
    expected_text,
    token,
    tool_fragments,
    tool_input,
)

CHAT_ID = "chatcmpl-bench00000000000001"
MSG_ID = "msg_bench00000000000001"
CREATED = 1795535584
DONE = b"data: [DONE]\n\n"


def _data(obj: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def _event(obj: dict[str, Any]) -> bytes:
    return b"event: " + obj["type"].encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


def _usage(completion: int, details: bool = True) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": PROMPT_TOKENS,
        "total_tokens": PROMPT_TOKENS + completion,
        "completion_tokens": completion,
    }
    if details:
        usage["completion_tokens_details"] = None
    return usage


def _chunk(choice: dict[str, Any] | None, completion: int | None, **extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": CHAT_ID,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
        "choices": [choice] if choice is not None else [],
    }
    if completion is not None:
        obj["usage"] = _usage(completion)
    obj.update(extra)
    return obj


def _choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    if finish is not None:
        choice["stop_reason"] = None
    choice["token_ids"] = None
    return choice


class OpenAIFrames:
    """vLLM ``chat.completion.chunk`` frames, with and without ``continuous_usage_stats``.

    ``text[u][i]`` is the frame carrying token ``i`` (usage on every chunk when ``u``),
    ``text_last[u][i]`` the same token as the final one (it carries ``finish_reason``).
    """

    def __init__(self, max_tokens: int = MAX_TOKENS) -> None:
        self.max_tokens = max_tokens
        self.role = [
            _data(
                _chunk(
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": ""},
                        "logprobs": None,
                        "finish_reason": None,
                    },
                    0 if u else None,
                    prompt_token_ids=None,
                    prompt_text=None,
                )
            )
            for u in (False, True)
        ]
        self.text: list[list[bytes]] = []
        self.text_last: list[list[bytes]] = []
        for u in (False, True):
            self.text.append(
                [
                    _data(_chunk(_choice({"content": token(i)}), i + 1 if u else None))
                    for i in range(max_tokens)
                ]
            )
            self.text_last.append(
                [
                    _data(_chunk(_choice({"content": token(i)}, "length"), i + 1 if u else None))
                    for i in range(max_tokens)
                ]
            )
        first_call = {"id": TOOL_ID, "type": "function", "index": 0, "function": {"name": TOOL_NAME}}
        self.tool_name = [
            _data(_chunk(_choice({"content": None, "tool_calls": [first_call]}), 1 if u else None))
            for u in (False, True)
        ]

    def usage(self, n: int) -> bytes:
        return _usage_frame(n)

    def tool_args(self, n: int, continuous: bool) -> list[bytes]:
        """Argument frames of an ``n``-token tool answer (its first token is the name frame)."""
        return list(_tool_arg_frames(n, continuous))


@lru_cache(maxsize=256)
def _usage_frame(n: int) -> bytes:
    return _data(_chunk(None, None, usage=_usage(n, details=False), system_fingerprint="vllm-0.32.0-bench"))


@lru_cache(maxsize=64)
def _tool_arg_frames(n: int, continuous: bool) -> tuple[bytes, ...]:
    frags = tool_fragments_for(n)
    out = []
    for k, frag in enumerate(frags):
        last = k == len(frags) - 1
        delta = {"content": None, "tool_calls": [{"index": 0, "function": {"arguments": frag}}]}
        out.append(
            _data(_chunk(_choice(delta, "tool_calls" if last else None), k + 2 if continuous else None))
        )
    return tuple(out)


def tool_fragments_for(n: int) -> tuple[str, ...]:
    """An ``n``-token tool answer: one name token, then ``n - 1`` argument fragments (at least one)."""
    return tool_fragments(max(1, n - 1))


def tool_input_for(n: int) -> dict[str, str]:
    return tool_input(max(1, n - 1))


class AnthropicFrames:
    """Native Anthropic SSE frames: what an ideal server would send for the same tokens."""

    def __init__(self, max_tokens: int = MAX_TOKENS) -> None:
        self.message_start = _event(
            {
                "type": "message_start",
                "message": {
                    "id": MSG_ID,
                    "type": "message",
                    "role": "assistant",
                    "content": [],
                    "model": MODEL,
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": 0},
                },
            }
        )
        self.text_start = _event(
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
        )
        self.tool_start = _event(
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "tool_use", "id": TOOL_ID, "name": TOOL_NAME, "input": {}},
            }
        )
        self.text = [
            _event(
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": token(i)}}
            )
            for i in range(max_tokens)
        ]
        self.block_stop = _event({"type": "content_block_stop", "index": 0})
        self.message_stop = _event({"type": "message_stop"})

    def tool_args(self, n: int) -> tuple[bytes, ...]:
        return _anthropic_tool_frames(n)

    def end(self, n: int, stop_reason: str) -> bytes:
        """Block stop, ``message_delta`` and ``message_stop`` in one write, as a server would flush them."""
        return self.block_stop + _message_delta(n, stop_reason) + self.message_stop


@lru_cache(maxsize=64)
def _anthropic_tool_frames(n: int) -> tuple[bytes, ...]:
    return tuple(
        _event(
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": f},
            }
        )
        for f in tool_fragments_for(n)
    )


@lru_cache(maxsize=256)
def _message_delta(n: int, stop_reason: str) -> bytes:
    return _event(
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": n},
        }
    )


@lru_cache(maxsize=256)
def openai_completion(n: int, tool: bool) -> bytes:
    """Non-streaming ``chat.completion`` body (shape of ``10_chat_basic``)."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": None if tool else expected_text(n),
        "refusal": None,
    }
    if tool:
        args = orjson.dumps(tool_input_for(n)).decode()
        message["tool_calls"] = [
            {"id": TOOL_ID, "type": "function", "function": {"name": TOOL_NAME, "arguments": args}}
        ]
    else:
        message["tool_calls"] = []
    message["reasoning"] = None
    body = {
        "id": CHAT_ID,
        "object": "chat.completion",
        "created": CREATED,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if tool else "length",
                "stop_reason": None,
                "token_ids": None,
            }
        ],
        "service_tier": None,
        "system_fingerprint": "vllm-0.32.0-bench",
        "usage": {**_usage(n, details=False), "prompt_tokens_details": None},
        "prompt_logprobs": None,
    }
    return orjson.dumps(body)


@lru_cache(maxsize=256)
def anthropic_message(n: int, tool: bool) -> bytes:
    """Non-streaming Anthropic ``message`` body (shape of ``80_messages_basic``)."""
    if tool:
        content: list[dict[str, Any]] = [
            {"type": "tool_use", "id": TOOL_ID, "name": TOOL_NAME, "input": tool_input_for(n)}
        ]
    else:
        content = [{"type": "text", "text": expected_text(n)}]
    body = {
        "id": MSG_ID,
        "type": "message",
        "role": "assistant",
        "content": content,
        "model": MODEL,
        "stop_reason": "tool_use" if tool else "max_tokens",
        "stop_sequence": None,
        "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": n},
    }
    return orjson.dumps(body)
