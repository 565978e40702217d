"""A tiny OpenAI-compatible backend for ``make demo``, so the router can be tried with no GPU.

It speaks the subset of vLLM's API the router uses (chat completions, streamed or not, with tool
calls and usage; ``/tokenize``; ``/health``; ``/v1/models``) in vLLM's shapes, and answers
predictably: it echoes the user, calls a tool when asked to (so Claude Code's agent loop can be
watched end to end), and quotes a tool's result back.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
import zlib
from typing import Any

from aiohttp import web

MODEL = "demo-model"
MAX_MODEL_LEN = 32768
TOKEN_DELAY = web.AppKey("token_delay", float)
_TOKEN_RE = re.compile(r"\s*\w+|\s*[^\w\s]|\s+")


def tokenize(text: str) -> list[str]:
    """Words and punctuation marks, each with the whitespace before it: joined, they give the text back."""
    return _TOKEN_RE.findall(text)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def _prompt_tokens(messages: Any, tools: Any) -> list[str]:
    return tokenize(json.dumps(tools or []) + json.dumps(messages))


def _mentions(text: str, name: str) -> bool:
    """Whole-word mention; "get_weather" also as "get weather". Capitalised names (Claude Code's "Read",
    "Bash") must be written as such, so that ordinary words do not trigger them."""
    flags = re.IGNORECASE if name.islower() else 0
    return any(re.search(rf"\b{re.escape(n)}\b", text, flags) for n in {name, name.replace("_", " ")})


def _pick_tool(tools: list[dict], text: str) -> dict | None:
    """The first tool the user names; "weather" or "use a tool" falls back to a weather tool or the first."""
    functions = [t["function"] for t in tools if isinstance(t, dict) and isinstance(t.get("function"), dict)]
    for function in functions:
        if function.get("name") and _mentions(text, function["name"]):
            return function
    if functions and ("use a tool" in text.lower() or "weather" in text.lower()):
        weather = [
            f for f in functions if "weather" in (f.get("name", "") + f.get("description", "")).lower()
        ]
        return (weather or functions)[0]
    return None


def _example_value(tool: str, name: str, schema: dict, text: str) -> Any:
    """A plausible argument from the schema: an enum's first value, a capitalised word for places..."""
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if kind in ("integer", "number", "boolean", "array", "object"):
        return {"integer": 1, "number": 1, "boolean": True, "array": [], "object": {}}[kind]
    if name in ("city", "location", "place"):
        places = re.findall(r"\b(?:in|for|at) ([A-Z][a-z]+)", text)
        return places[0] if places else "Paris"
    if "path" in name:  # read something that exists; never write over it
        return "demo-output.txt" if re.search("write|edit", tool, re.IGNORECASE) else "README.md"
    return {"command": "ls", "pattern": "*.md", "url": "https://example.com"}.get(name, text[:40] or "demo")


def _tool_arguments(function: dict, text: str) -> str:
    schema = function.get("parameters") or {}
    properties = schema.get("properties") or {}
    wanted = schema.get("required") or list(properties)
    tool = function["name"]
    return json.dumps({name: _example_value(tool, name, properties.get(name) or {}, text) for name in wanted})


def _latest(messages: list[dict]) -> tuple[str, str]:
    """("tool", result) or ("user", words) for the newest turn that says something. Claude Code's
    reminders are not the user's words, and may follow a tool result in the same turn."""
    for message in reversed(messages):
        content = message.get("content")
        if message.get("role") == "tool":
            return "tool", " ".join(_text(content).split())
        if message.get("role") == "user":
            parts = [content] if isinstance(content, str) else [_text([p]) for p in content or []]
            parts = [re.sub(r"<system-reminder>.*?</system-reminder>", "", p, flags=re.S) for p in parts]
            if words := next((p.strip() for p in reversed(parts) if p.strip()), ""):
                return "user", words
    return "user", ""


def compose(body: dict) -> tuple[str, list[tuple[str, str]]]:
    """What to say: (text, [(tool name, JSON arguments)])."""
    role, said = _latest(body.get("messages") or [])
    if role == "tool":
        result = said if len(said) <= 200 else said[:200] + "…"
        return f'The tool answered: "{result}". That is all this demo backend can do with it.', []
    tool = _pick_tool(body.get("tools") or [], said) if body.get("tool_choice") != "none" else None
    if tool is not None:
        return "", [(tool["name"], _tool_arguments(tool, said))]
    echo = " ".join(said.split())
    echo = f' You said: "{echo if len(echo) <= 80 else echo[:80] + "…"}".' if echo else ""
    return (
        f"Hello from the anthropic-router demo backend!{echo} I am not a real model: point VLLM_URL at a "
        "vLLM server for real answers. Mention a tool by name (or the weather) to see a tool call."
    ), []


def _cut(body: dict, text: str, calls: list[tuple[str, str]]) -> tuple[list[str], list, str, str | None]:
    """Apply ``stop`` and ``max_tokens`` as vLLM does: (tokens, calls, finish_reason, stop_reason)."""
    for stop in [body["stop"]] if isinstance(body.get("stop"), str) else body.get("stop") or []:
        if stop and stop in text:
            return tokenize(text[: text.index(stop)]), [], "stop", stop
    tokens = tokenize(text)
    limit = body.get("max_completion_tokens") or body.get("max_tokens") or MAX_MODEL_LEN
    if len(tokens) > limit:
        return tokens[:limit], [], "length", None
    return tokens, calls, "tool_calls" if calls else "stop", None


def _chunk(head: dict, choices: list[dict], **extra: Any) -> bytes:
    chunk = {"id": head["id"], "object": "chat.completion.chunk"} | head | {"choices": choices} | extra
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


async def _read_json(request: web.Request, valid: Any) -> dict | web.Response:
    try:
        body = await request.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and valid(body):
        return body
    error = {"message": "Invalid request: see the OpenAI chat API.", "type": "BadRequestError", "param": None}
    return web.json_response({"error": error | {"code": 400}}, status=400)


async def chat(request: web.Request) -> web.StreamResponse:
    body = await _read_json(request, lambda b: isinstance(b.get("messages"), list) and b["messages"])
    if isinstance(body, web.Response):
        return body
    tokens, calls, finish, stop_reason = _cut(body, *compose(body))
    prompt = len(_prompt_tokens(body["messages"], body.get("tools")))
    completion = len(tokens) + sum(1 + len(tokenize(args)) for _, args in calls) + (finish != "length")
    usage = {"prompt_tokens": prompt, "total_tokens": prompt + completion, "completion_tokens": completion}
    head = {"id": f"chatcmpl-{uuid.uuid4().hex[:16]}", "created": int(time.time())}
    head["model"] = body.get("model") or MODEL
    ids = [f"chatcmpl-tool-{uuid.uuid4().hex[:16]}" for _ in calls]
    if not body.get("stream"):
        tool_calls = [
            {"id": i, "type": "function", "function": {"name": n, "arguments": a}}
            for i, (n, a) in zip(ids, calls, strict=True)
        ]
        message = {"role": "assistant", "content": "".join(tokens) or (None if calls else "")}
        message |= {"tool_calls": tool_calls} if calls else {}
        choice = {"index": 0, "message": message, "finish_reason": finish, "stop_reason": stop_reason}
        return web.json_response(
            {"id": head["id"], "object": "chat.completion"} | head | {"choices": [choice], "usage": usage}
        )

    response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
    await response.prepare(request)
    delay = request.app[TOKEN_DELAY]
    deltas = [{"content": token} for token in tokens]
    for index, ((name, args), call_id) in enumerate(zip(calls, ids, strict=True)):
        start = {"id": call_id, "type": "function", "index": index, "function": {"name": name}}
        deltas.append({"content": None, "tool_calls": [start]})
        deltas += [
            {"content": None, "tool_calls": [{"index": index, "function": {"arguments": fragment}}]}
            for fragment in tokenize(args)
        ]
    # vLLM's continuous_usage_stats: running usage on every chunk (the router reads the prompt size
    # from the first one for message_start).
    continuous = bool((body.get("stream_options") or {}).get("continuous_usage_stats"))

    def running(done: int) -> dict:
        return {"usage": {"prompt_tokens": prompt, "total_tokens": prompt + done, "completion_tokens": done}}

    try:
        first = [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]
        await response.write(_chunk(head, first, **(running(0) if continuous else {})))
        for done, delta in enumerate(deltas, 1):
            await asyncio.sleep(delay)
            extra = running(done) if continuous else {}
            await response.write(_chunk(head, [{"index": 0, "delta": delta, "finish_reason": None}], **extra))
        end = {"index": 0, "delta": {}, "finish_reason": finish, "stop_reason": stop_reason}
        await response.write(_chunk(head, [end], **(running(completion) if continuous else {})))
        if (body.get("stream_options") or {}).get("include_usage"):
            await response.write(_chunk(head, [], usage=usage))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
    except ConnectionError:  # the client went away: nothing more to do
        pass
    return response


async def tokenize_endpoint(request: web.Request) -> web.Response:
    body = await _read_json(request, lambda b: "messages" in b or isinstance(b.get("prompt"), str))
    if isinstance(body, web.Response):
        return body
    if "messages" in body:
        tokens = _prompt_tokens(body["messages"], body.get("tools"))
    else:
        tokens = tokenize(body["prompt"])
    ids = [zlib.crc32(t.encode()) % 50_000 for t in tokens]
    return web.json_response(
        {"count": len(ids), "max_model_len": MAX_MODEL_LEN, "tokens": ids, "token_strs": None}
    )


async def health(_request: web.Request) -> web.Response:
    return web.Response()


async def models(_request: web.Request) -> web.Response:
    card = {"id": MODEL, "object": "model", "created": int(time.time()), "owned_by": "anthropic-router-demo"}
    card |= {"root": MODEL, "parent": None, "max_model_len": MAX_MODEL_LEN}
    return web.json_response({"object": "list", "data": [card]})


def create_demo_app(token_delay: float = 0.03) -> web.Application:
    """The demo backend; ``token_delay`` paces the stream so it can be watched (tests pass 0)."""
    app = web.Application()
    app[TOKEN_DELAY] = token_delay
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/tokenize", tokenize_endpoint)
    app.router.add_get("/health", health)
    app.router.add_get("/v1/models", models)
    return app
