"""Reading recorded exchanges: the router's SSE answers and the clients' Anthropic requests."""

from __future__ import annotations

import json


def sse_events(text: str) -> list[tuple[str, dict]]:
    """``(event name, data)`` for each SSE frame; a frame without ``event:`` gets the name ``""``."""
    events: list[tuple[str, dict]] = []
    for frame in text.replace("\r\n", "\n").split("\n\n"):
        name, data = "", []
        for line in frame.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())
        if data:
            try:
                events.append((name, json.loads("\n".join(data))))
            except ValueError:
                events.append((name, {"_raw": "\n".join(data)}))
    return events


def assembled_content(text: str) -> list[dict]:
    """The content blocks a client builds from an SSE answer (tool input kept as the raw JSON string)."""
    blocks: dict[int, dict] = {}
    for name, data in sse_events(text):
        if name == "content_block_start":
            blocks[data["index"]] = dict(data["content_block"])
        elif name == "content_block_delta":
            block, delta = blocks[data["index"]], data["delta"]
            if delta["type"] == "text_delta":
                block["text"] = block.get("text", "") + delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] = block.get("signature", "") + delta["signature"]
            elif delta["type"] == "input_json_delta":
                block["partial_json"] = block.get("partial_json", "") + delta["partial_json"]
    return [blocks[i] for i in sorted(blocks)]


def response_content(exchange: dict) -> list[dict]:
    """Content blocks of a recorded /v1/messages answer, streamed or not."""
    if "text/event-stream" in exchange.get("response_headers", {}).get("Content-Type", ""):
        return assembled_content(exchange["response"])
    return json.loads(exchange["response"]).get("content", [])


def is_messages_call(exchange: dict) -> bool:
    return exchange["method"] == "POST" and exchange["path"].split("?")[0] == "/v1/messages"


def mentions(exchange: dict, needle: str) -> bool:
    return needle in json.dumps(exchange.get("body"))


def blocks_of(message: dict) -> list[dict]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content or [])
