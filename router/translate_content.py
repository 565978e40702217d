"""Anthropic content blocks → OpenAI chat message parts, with validation that names the bad field.

Conventions (chosen once, so the same Anthropic message always renders to the same prompt and vLLM's
prefix cache keeps hitting across turns):
- Text is joined with ``"\\n"`` everywhere: system blocks, consecutive text blocks, tool_result text,
  thinking blocks. vLLM joins a list of text parts with ``"\\n"`` for string-content templates too, so
  collapsing all-text content to one string renders the same prompt either way.
- Content that is all text becomes a plain string; content with an image stays a list of parts.
- ``cache_control``, ``citations``, thinking ``signature`` and other annotations are never copied: every
  output dict is built from scratch.
"""

from __future__ import annotations

from typing import Any

import orjson

from router.errors import RouterError

BILLING_HEADER_PREFIX = "x-anthropic-billing-header"
# Shown to the model in place of Anthropic's is_error flag, which chat templates have no slot for.
TOOL_ERROR_PREFIX = "Error: "

# Blocks produced by Anthropic-hosted (server) tools. They only appear in a history that came from
# api.anthropic.com; their results cannot be replayed faithfully to a local model, and silently
# dropping them would leave dangling references, so they are refused with a clear message.
SERVER_TOOL_BLOCKS = frozenset(
    {
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
        "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result",
        "tool_search_tool_result",
        "mcp_tool_use",
        "mcp_tool_result",
        "container_upload",
    }
)


def invalid(where: str, problem: str) -> RouterError:
    return RouterError.invalid(f"{where}: {problem}")


def blocks_of(content: Any, where: str) -> list[dict]:
    """Content as a list of blocks (a string is one text block); each block checked to be typed."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise invalid(where, "must be a string or a list of content blocks")
    for j, block in enumerate(content):
        if not isinstance(block, dict):
            raise invalid(f"{where}.{j}", "content block must be an object")
        if not isinstance(block.get("type"), str):
            raise invalid(f"{where}.{j}.type", "must be a string")
    return content


def text_of(block: dict, where: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise invalid(f"{where}.text", "must be a string")
    return text


def system_text(content: Any, where: str) -> str:
    """Text of a system prompt or inline system message, without Claude Code's billing header.

    The billing block carries a per-request hash; left in, it changes the very start of the prompt on
    every request and vLLM's prefix cache never hits.
    """
    texts = []
    for j, block in enumerate(blocks_of(content, where)):
        if block["type"] != "text":
            raise invalid(f"{where}.{j}.type", f"system content must be text blocks, got {block['type']!r}")
        text = text_of(block, f"{where}.{j}")
        if text and not text.startswith(BILLING_HEADER_PREFIX):
            texts.append(text)
    return "\n".join(texts)


def text_part(text: str) -> dict:
    return {"type": "text", "text": text}


def collapse(parts: list[dict]) -> str | list[dict]:
    """All-text content as one string; anything with an image keeps its parts."""
    if all(p["type"] == "text" for p in parts):
        return "\n".join(p["text"] for p in parts)
    return parts


def image_part(block: dict, where: str, allow_urls: bool) -> dict:
    source = block.get("source")
    if not isinstance(source, dict):
        raise invalid(f"{where}.source", "must be an object")
    kind = source.get("type")
    if kind == "base64":
        media_type, data = source.get("media_type"), source.get("data")
        if not isinstance(media_type, str) or not media_type:
            raise invalid(f"{where}.source.media_type", "must be a non-empty string")
        if not isinstance(data, str):
            raise invalid(f"{where}.source.data", "must be a string")
        url = f"data:{media_type};base64,{data}"
    elif kind == "url":
        if not allow_urls:
            raise invalid(where, "image URL sources are disabled on this router; send the image as base64")
        url = source.get("url")
        if not isinstance(url, str) or not url:
            raise invalid(f"{where}.source.url", "must be a non-empty string")
    else:
        raise invalid(f"{where}.source.type", f"image source type {kind!r} is not supported (base64 or url)")
    return {"type": "image_url", "image_url": {"url": url}}


def document_text(block: dict, where: str) -> str:
    """A plain-text document as text the model can read; its title, if any, on the first line."""
    source = block.get("source")
    if not isinstance(source, dict):
        raise invalid(f"{where}.source", "must be an object")
    if source.get("type") != "text":
        raise invalid(
            where, f"document source type {source.get('type')!r} is not supported (only plain-text documents)"
        )
    data = source.get("data")
    if not isinstance(data, str):
        raise invalid(f"{where}.source.data", "must be a string")
    title = block.get("title")
    if title is not None and not isinstance(title, str):
        raise invalid(f"{where}.title", "must be a string")
    return f"{title}\n{data}" if title else data


def tool_reference_text(block: dict, where: str) -> str:
    name = block.get("tool_name")
    if not isinstance(name, str) or not name:
        raise invalid(f"{where}.tool_name", "must be a non-empty string")
    return f"Tool loaded: {name}"


def unknown_block(kind: str, where: str, role: str) -> RouterError:
    if kind in SERVER_TOOL_BLOCKS:
        return invalid(where, f"server tool block {kind!r} cannot be replayed to this backend")
    return invalid(where, f"content block type {kind!r} is not supported in a {role} message")


def tool_result(block: dict, where: str, allow_urls: bool) -> tuple[dict, list[dict]]:
    """One ``role: tool`` message, plus the images it carried.

    Chat templates only take text in tool messages, so images move to a user message that follows the
    tool messages (what vLLM's own Anthropic endpoint does).
    """
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise invalid(f"{where}.tool_use_id", "must be a non-empty string")
    content = block.get("content")
    texts: list[str] = []
    images: list[dict] = []
    if content is not None:
        for k, inner in enumerate(blocks_of(content, f"{where}.content")):
            inner_where = f"{where}.content.{k}"
            kind = inner["type"]
            if kind == "text":
                text = text_of(inner, inner_where)
                if text:
                    texts.append(text)
            elif kind == "image":
                images.append(image_part(inner, inner_where, allow_urls))
            elif kind == "tool_reference":
                texts.append(tool_reference_text(inner, inner_where))
            elif kind == "document":
                texts.append(document_text(inner, inner_where))
            else:
                raise invalid(inner_where, f"content block type {kind!r} is not supported in a tool_result")
    is_error = block.get("is_error")
    if is_error is not None and not isinstance(is_error, bool):
        raise invalid(f"{where}.is_error", "must be a boolean")
    text = "\n".join(texts)
    if is_error:
        text = TOOL_ERROR_PREFIX + text if text else TOOL_ERROR_PREFIX.rstrip(": ")
    return {"role": "tool", "tool_call_id": call_id, "content": text}, images


def user_turn(content: Any, where: str, allow_urls: bool) -> tuple[list[dict], list[dict]]:
    """(tool messages, parts of the user message that follows them) for one Anthropic user message.

    Tool results come first, in order: OpenAI requires tool messages right after the assistant message
    with the calls. Images from tool results lead the user message, before the user's own content.
    """
    tools: list[dict] = []
    moved: list[dict] = []
    parts: list[dict] = []
    for j, block in enumerate(blocks_of(content, where)):
        block_where = f"{where}.{j}"
        kind = block["type"]
        if kind == "text":
            text = text_of(block, block_where)
            if text:
                parts.append(text_part(text))
        elif kind == "image":
            parts.append(image_part(block, block_where, allow_urls))
        elif kind == "tool_result":
            message, images = tool_result(block, block_where, allow_urls)
            tools.append(message)
            moved.extend(images)
        elif kind == "document":
            parts.append(text_part(document_text(block, block_where)))
        else:
            raise unknown_block(kind, block_where, "user")
    return tools, moved + parts


def assistant_message(content: Any, where: str) -> dict | None:
    """The OpenAI assistant message, or None when nothing is left to send.

    Thinking becomes vLLM's ``reasoning`` field (what its templates read back); signatures and
    redacted thinking cannot mean anything to a local model and are dropped. An assistant message
    with only tool calls gets ``content: null``, which vLLM 0.32 accepts (fixture 38_tools_history).
    """
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[dict] = []
    for j, block in enumerate(blocks_of(content, where)):
        block_where = f"{where}.{j}"
        kind = block["type"]
        if kind == "text":
            text = text_of(block, block_where)
            if text:
                texts.append(text)
        elif kind == "thinking":
            thinking = block.get("thinking")
            if not isinstance(thinking, str):
                raise invalid(f"{block_where}.thinking", "must be a string")
            if thinking:
                reasoning.append(thinking)
        elif kind == "redacted_thinking":
            continue
        elif kind == "tool_use":
            calls.append(tool_call(block, block_where))
        else:
            raise unknown_block(kind, block_where, "assistant")
    if not (texts or reasoning or calls):
        return None
    message: dict = {"role": "assistant", "content": "\n".join(texts) if texts or not calls else None}
    if reasoning:
        message["reasoning"] = "\n".join(reasoning)
    if calls:
        message["tool_calls"] = calls
    return message


def tool_call(block: dict, where: str) -> dict:
    call_id, name = block.get("id"), block.get("name")
    if not isinstance(call_id, str) or not call_id:
        raise invalid(f"{where}.id", "must be a non-empty string")
    if not isinstance(name, str) or not name:
        raise invalid(f"{where}.name", "must be a non-empty string")
    tool_input = block.get("input")
    if tool_input is None:
        tool_input = {}
    if not isinstance(tool_input, dict):
        raise invalid(f"{where}.input", "must be an object")
    # orjson keeps the client's key order: reordering would change the replayed prompt (Ollama ac83ac20c).
    arguments = orjson.dumps(tool_input).decode()
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def referenced_tools(messages: Any) -> set[str]:
    """Names of deferred tools a ``tool_reference`` block has loaded into the conversation."""
    names: set[str] = set()
    for block in _tool_result_blocks(messages):
        content = block.get("content")
        if isinstance(content, list):
            for inner in content:
                if isinstance(inner, dict) and inner.get("type") == "tool_reference":
                    name = inner.get("tool_name")
                    if isinstance(name, str):
                        names.add(name)
    return names


def contains_image(messages: Any) -> bool:
    for message in messages if isinstance(messages, list) else ():
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for block in content:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "image":
                return True
            inner = block.get("content") if block.get("type") == "tool_result" else None
            if isinstance(inner, list) and any(
                isinstance(b, dict) and b.get("type") == "image" for b in inner
            ):
                return True
    return False


def _tool_result_blocks(messages: Any) -> list[dict]:
    found = []
    for message in messages if isinstance(messages, list) else ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            found.extend(b for b in content if isinstance(b, dict) and b.get("type") == "tool_result")
    return found
