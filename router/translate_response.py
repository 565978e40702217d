"""OpenAI chat completion (vLLM, non-streaming) → Anthropic message, plus the pieces the streaming
transcoder shares with it (stop reason, usage, ids, tool arguments), so both paths answer alike.

Claude Code falls back to the non-streaming path whenever a stream breaks, so this path has to be
exactly as correct: ``tool_use`` whenever a tool block exists (else the client does not run the tool),
no empty text blocks (they are persisted and replayed, and real Anthropic backends then 400), ids that
match ``^[a-zA-Z0-9_-]+$``, and real token counts.
"""

from __future__ import annotations

import hashlib
import random
import re
from typing import Any

from router.errors import RouterError
from router.tool_args import RAW_ARGUMENTS_KEY, parse_tool_arguments

__all__ = [
    "ABORTED",
    "RAW_ARGUMENTS_KEY",
    "anthropic_usage",
    "map_stop_reason",
    "new_message_id",
    "new_tool_use_id",
    "parse_tool_arguments",
    "sanitize_tool_id",
    "thinking_signature",
    "to_anthropic",
]

_BAD_ID_CHARS = re.compile(r"[^a-zA-Z0-9_-]")


def to_anthropic(resp: dict, model: str) -> dict:
    """The Anthropic message for a chat.completion; ``model`` is the name the client asked for."""
    choices = resp.get("choices") if isinstance(resp, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise RouterError(502, "api_error", "backend response has no choices")
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        message = {}
    content: list[dict] = []
    # Whitespace-only text or thinking (the "\n\n" before a tool call, an empty <think></think>) is
    # noise the client would persist and replay; real Anthropic backends reject such text blocks.
    reasoning = message.get("reasoning") or message.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning.strip():
        content.append(
            {"type": "thinking", "thinking": reasoning, "signature": thinking_signature(reasoning)}
        )
    text = _text(message.get("content"))
    if text.strip():
        content.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or ():
        if isinstance(call, dict):
            content.append(_tool_use(call))
    if choice.get("finish_reason") in ABORTED:
        raise RouterError(529, "overloaded_error", "backend aborted the generation", retry=True)
    has_tool_use = any(block["type"] == "tool_use" for block in content)
    stop_reason, stop_sequence = map_stop_reason(
        choice.get("finish_reason"), choice.get("stop_reason"), has_tool_use
    )
    # An answer with nothing in it stays content: [] (valid for Anthropic; an empty text block is not).
    return {
        "id": new_message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": anthropic_usage(resp.get("usage")),
    }


# finish_reason values with which vLLM ends a generation it could not complete.
ABORTED = frozenset({"abort", "error"})


def map_stop_reason(
    finish_reason: str | None, vllm_stop_reason: object, has_tool_use: bool
) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence) from an OpenAI finish_reason and vLLM's ``stop_reason`` extension.

    vLLM reports a named tool_choice as ``finish_reason: "stop"``, so the presence of a tool block
    decides ``tool_use``, except after ``length``: a call cut by max_tokens has truncated arguments
    (a Bash command cut in half), and as on Anthropic's API ``max_tokens`` tells the client not to
    run it. vLLM's ``stop_reason`` is the matched stop string (an int for a stop token id, null for EOS).
    """
    if finish_reason == "length":
        return "max_tokens", None
    if has_tool_use:
        return "tool_use", None
    if finish_reason == "stop" and isinstance(vllm_stop_reason, str):
        return "stop_sequence", vllm_stop_reason
    if finish_reason == "content_filter":
        return "refusal", None
    return "end_turn", None


def anthropic_usage(usage: dict | None) -> dict:
    """Anthropic usage from OpenAI usage: prompt tokens served from vLLM's prefix cache are reported
    as cache reads and excluded from ``input_tokens``, as Anthropic counts them."""
    usage = usage if isinstance(usage, dict) else {}
    prompt = _count(usage.get("prompt_tokens"))
    details = usage.get("prompt_tokens_details")
    cached = _count(details.get("cached_tokens")) if isinstance(details, dict) else 0
    cached = min(cached, prompt)
    return {
        "input_tokens": prompt - cached,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
        "output_tokens": _count(usage.get("completion_tokens")),
    }


def new_message_id() -> str:
    return "msg_" + _random_id(24)


def new_tool_use_id() -> str:
    return "toolu_" + _random_id(24)


def sanitize_tool_id(raw: object) -> str:
    """A tool_use id matching ``^[a-zA-Z0-9_-]+$``, derived deterministically from the backend's id so
    the same id maps the same way in every turn; a fresh one if the backend sent none."""
    if not isinstance(raw, str) or not raw:
        return new_tool_use_id()
    return _BAD_ID_CHARS.sub("_", raw)


def thinking_signature(thinking: str) -> str:
    """A synthetic, non-empty signature for a thinking block.

    Clients require the field and replay it; local backends never check it (and the router drops it on
    the way back). Derived from the text so identical thinking always carries the same signature.
    """
    return "router-" + hashlib.sha256(thinking.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _random_id(length: int) -> str:
    # Ids must be unique, not secret: the module PRNG (seeded from os.urandom, reseeded after fork)
    # costs no syscall (secrets.choice made one getrandom() per character), and hex formatting of
    # one random integer is ~0.3 us where a base62 loop took ~10 (bench S1).
    return f"{random.getrandbits(4 * length):0{length}x}"


def _tool_use(call: dict) -> dict:
    function = call.get("function")
    if not isinstance(function, dict):
        function = {}
    name = function.get("name")
    return {
        "type": "tool_use",
        "id": sanitize_tool_id(call.get("id")),
        "name": name if isinstance(name, str) else "",
        "input": parse_tool_arguments(function.get("arguments")),
    }


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # some OpenAI-compatible servers answer with content parts
        return "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
