"""Anthropic Messages request → OpenAI chat completions request for vLLM, with validation.

Everything here is deterministic and keeps the client's order (messages, tools, JSON keys of tool
inputs): vLLM's prefix cache only hits when turn N+1 renders as an extension of turn N, and agent loops
like Claude Code's re-send the whole conversation every turn. Block-level conversion lives in
``router.translate_content``.

Validation errors name the field (``messages.3.content.1: ...``) and become a 400
``invalid_request_error``. Unknown top-level fields (``context_management``, ``output_config.effort``,
``container``...) are ignored, as a gateway must not reject what newer clients add.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from router import translate_content as tc
from router.errors import RouterError

_THINKING_ON = frozenset({"enabled", "adaptive"})
_TOOL_CHOICE = {"auto": "auto", "any": "required", "none": "none"}


@dataclass(frozen=True)
class TranslateOptions:
    # "fold": an inline role:system message is appended to the user turn right before it (as vLLM's
    # inline_system does), or prepended to the next user turn when none precedes it; never hoisted to
    # the top, which would change the prompt head every turn. Claude Code sends [user, system] and then
    # [user, system, assistant, tool_result]: appending to the preceding turn makes the second prompt an
    # exact extension of the first, so vLLM's prefix cache hits. "keep": sent as system messages where
    # they are (moved past tool results they would otherwise split from their calls).
    system_messages: str = "fold"
    # chat_template_kwargs key for the thinking switch (Qwen3: enable_thinking); "" sends none.
    thinking_kwarg: str = "enable_thinking"
    # False: an image with a url source is a 400 (the backend would fetch arbitrary URLs).
    allow_image_urls: bool = True

    def __post_init__(self) -> None:
        if self.system_messages not in ("fold", "keep"):
            raise ValueError(f"system_messages must be 'fold' or 'keep', not {self.system_messages!r}")


def to_openai(req: dict, model: str, options: TranslateOptions = TranslateOptions()) -> dict:
    """The chat completions body for backend model ``model``; raises RouterError (400) on bad input."""
    if not isinstance(req, dict):
        raise RouterError.invalid("request body must be a JSON object")
    client_model = req.get("model")
    if not isinstance(client_model, str) or not client_model:
        raise RouterError.invalid("model: required, must be a non-empty string")
    max_tokens = req.get("max_tokens")
    if not _is_int(max_tokens) or max_tokens < 1:
        raise RouterError.invalid("max_tokens: required, must be an integer >= 1")
    raw_messages = req.get("messages")
    if not isinstance(raw_messages, list):
        raise RouterError.invalid("messages: required, must be a list")
    if not raw_messages:
        raise RouterError.invalid("messages: must contain at least one message")

    tools, names = _tools(req.get("tools"), raw_messages, req.get("tool_choice"))
    messages = _messages(req.get("system"), raw_messages, options)

    out: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": max_tokens}
    _number(req, "temperature", out, "temperature")
    _number(req, "top_p", out, "top_p")
    top_k = req.get("top_k")
    if top_k is not None:
        if not _is_int(top_k):
            raise RouterError.invalid("top_k: must be an integer")
        out["top_k"] = top_k
    stop = _stop_sequences(req.get("stop_sequences"))
    if stop:
        out["stop"] = stop
    if tools:
        out["tools"] = tools
        _tool_choice(req.get("tool_choice"), names, out)
    else:
        _tool_choice(req.get("tool_choice"), names, {})  # still validated
    response_format = _response_format(req)
    if response_format is not None:
        out["response_format"] = response_format
    thinking = _thinking(req.get("thinking"))
    if thinking is not None and options.thinking_kwarg:
        out["chat_template_kwargs"] = {options.thinking_kwarg: thinking}
    last = messages[-1]
    if last["role"] == "assistant" and "tool_calls" not in last and last["content"]:
        # Anthropic "prefill": the reply continues the final assistant text instead of opening a turn.
        out["add_generation_prompt"] = False
        out["continue_final_message"] = True
    user = _user_id(req.get("metadata"))
    if user is not None:
        out["user"] = user
    stream = req.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise RouterError.invalid("stream: must be a boolean")
    if stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True, "continuous_usage_stats": True}
    return out


def has_image(req: dict) -> bool:
    """Whether any image is in the conversation (message content or tool results); never raises."""
    return isinstance(req, dict) and tc.contains_image(req.get("messages"))


# --- messages -------------------------------------------------------------------------------------


def _messages(system: Any, raw_messages: list, options: TranslateOptions) -> list[dict]:
    out: list[dict] = []
    if system is not None:
        text = tc.system_text(system, "system")
        if text:
            out.append({"role": "system", "content": text})
    fold = options.system_messages == "fold"
    pending: list[str] = []  # fold: inline system text waiting for the next user turn
    held: list[dict] = []  # keep: system messages that arrived between tool calls and their results
    awaiting_results = False
    for i, message in enumerate(raw_messages):
        where = f"messages.{i}"
        if not isinstance(message, dict):
            raise RouterError.invalid(f"{where}: must be an object")
        role = message.get("role")
        if "content" not in message:
            raise RouterError.invalid(f"{where}.content: required")
        content = message["content"]
        if role == "system":
            text = tc.system_text(content, f"{where}.content")
            if not text:
                continue
            if fold and out and out[-1]["role"] == "user":
                _append_text(out[-1], text)
            elif fold:
                pending.append(text)
            else:
                (held if awaiting_results else out).append({"role": "system", "content": text})
            continue
        if role == "user":
            _check_not_empty(content, where)
            tools, parts = tc.user_turn(content, f"{where}.content", options.allow_image_urls)
            out.extend(tools)
            parts = [tc.text_part(t) for t in pending] + parts
            pending.clear()
            if parts or not tools:
                out.append({"role": "user", "content": tc.collapse(parts)})
            out.extend(held)
            held.clear()
            awaiting_results = False
        elif role == "assistant":
            out.extend(held)
            held.clear()
            converted = tc.assistant_message(content, f"{where}.content")
            if converted is not None:
                out.append(converted)
            awaiting_results = converted is not None and "tool_calls" in converted
        else:
            raise RouterError.invalid(f"{where}.role: must be 'user', 'assistant' or 'system', got {role!r}")
    out.extend(held)
    if pending:
        out.append({"role": "user", "content": "\n".join(pending)})
    if not any(m["role"] != "system" for m in out):
        raise RouterError.invalid("messages: must contain at least one user or assistant message")
    return out


def _append_text(message: dict, text: str) -> None:
    content = message["content"]
    if isinstance(content, str):
        message["content"] = f"{content}\n{text}" if content else text
    else:
        message["content"] = [*content, tc.text_part(text)]


def _check_not_empty(content: Any, where: str) -> None:
    if isinstance(content, list) and not content:
        raise RouterError.invalid(f"{where}.content: must not be empty")


# --- tools ----------------------------------------------------------------------------------------


def _tools(raw: Any, messages: list, tool_choice: Any) -> tuple[list[dict], set[str]]:
    """OpenAI function tools and their names.

    Server tools (``web_search_20250305``, ``bash_20250124``...) run on Anthropic's side and have no
    local equivalent, so they are left out. A deferred tool (``defer_loading``) reaches the model only
    once a ``tool_reference`` has loaded it, as on Anthropic's API: Claude Code's ToolSearch lists
    every deferred tool but expects the model to see only the loaded ones.
    """
    if raw is None:
        return [], set()
    if not isinstance(raw, list):
        raise RouterError.invalid("tools: must be a list")
    loaded = tc.referenced_tools(messages)
    if isinstance(tool_choice, dict) and isinstance(tool_choice.get("name"), str):
        loaded.add(tool_choice["name"])  # forcing a tool loads it
    tools: list[dict] = []
    names: set[str] = set()
    for i, tool in enumerate(raw):
        where = f"tools.{i}"
        if not isinstance(tool, dict):
            raise RouterError.invalid(f"{where}: must be an object")
        kind = tool.get("type")
        if kind is not None and not isinstance(kind, str):
            raise RouterError.invalid(f"{where}.type: must be a string")
        if kind not in (None, "custom"):
            continue
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise RouterError.invalid(f"{where}.name: required, must be a non-empty string")
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise RouterError.invalid(f"{where}.input_schema: required, must be an object")
        description = tool.get("description")
        if description is not None and not isinstance(description, str):
            raise RouterError.invalid(f"{where}.description: must be a string")
        if tool.get("defer_loading") is True and name not in loaded:
            continue
        function: dict[str, Any] = {"name": name}
        if description is not None:
            function["description"] = description
        function["parameters"] = schema
        if isinstance(tool.get("strict"), bool):
            function["strict"] = tool["strict"]  # vLLM 0.32 only constrains arguments with strict
        tools.append({"type": "function", "function": function})
        names.add(name)
    return tools, names


def _tool_choice(raw: Any, names: set[str], out: dict) -> None:
    """Sets tool_choice / parallel_tool_calls in ``out`` (callers pass a scratch dict without tools:
    vLLM rejects tool_choice without tools)."""
    if raw is None:
        return
    if not isinstance(raw, dict):
        raise RouterError.invalid("tool_choice: must be an object")
    kind = raw.get("type")
    if kind == "tool":
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise RouterError.invalid("tool_choice.name: required when tool_choice.type is 'tool'")
        if name not in names:
            raise RouterError.invalid(f"tool_choice.name: no tool named {name!r} in tools")
        out["tool_choice"] = {"type": "function", "function": {"name": name}}
    elif isinstance(kind, str) and kind in _TOOL_CHOICE:
        out["tool_choice"] = _TOOL_CHOICE[kind]
    else:
        raise RouterError.invalid("tool_choice.type: must be one of 'auto', 'any', 'tool', 'none'")
    disable = raw.get("disable_parallel_tool_use")
    if disable is not None and not isinstance(disable, bool):
        raise RouterError.invalid("tool_choice.disable_parallel_tool_use: must be a boolean")
    if disable:
        out["parallel_tool_calls"] = False


# --- scalar fields --------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(req: dict, key: str, out: dict, out_key: str) -> None:
    value = req.get(key)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RouterError.invalid(f"{key}: must be a number")
    out[out_key] = value


def _stop_sequences(raw: Any) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
        raise RouterError.invalid("stop_sequences: must be a list of strings")
    return list(raw)


def _thinking(raw: Any) -> bool | None:
    """On/off for the template switch. ``budget_tokens`` is not forwarded: chat completions has no
    standard budget field, and vLLM's ``thinking_token_budget`` is version-dependent and reported to
    fail requests on servers without a reasoning configuration."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise RouterError.invalid("thinking: must be an object")
    kind = raw.get("type")
    if kind is not None and not isinstance(kind, str):
        raise RouterError.invalid("thinking.type: must be a string")
    if kind in _THINKING_ON:
        return True
    if kind == "disabled":
        return False
    return None  # unknown types from newer clients are ignored


def _response_format(req: dict) -> dict | None:
    """``output_config.format`` (or the older beta ``output_format``) as vLLM's json_schema format."""
    config = req.get("output_config")
    if config is not None and not isinstance(config, dict):
        raise RouterError.invalid("output_config: must be an object")
    fmt, where = (config or {}).get("format"), "output_config.format"
    if fmt is None:
        fmt, where = req.get("output_format"), "output_format"
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        raise RouterError.invalid(f"{where}: must be an object with type 'json_schema'")
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        raise RouterError.invalid(f"{where}.schema: must be an object")
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}


def _user_id(metadata: Any) -> str | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise RouterError.invalid("metadata: must be an object")
    user_id = metadata.get("user_id")
    if user_id is None:
        return None
    if not isinstance(user_id, str):
        raise RouterError.invalid("metadata.user_id: must be a string")
    return user_id
