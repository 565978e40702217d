"""Real vLLM versus our fake (tests/fake_vllm.py), request for request.

Every exchange the tap recorded between the router and the real vLLM is replayed against the fake,
scripted to say what the real server said (same text pieces, same tool calls and fragments, same
finish), so the only thing left to differ is the wire *shape*: which chunk carries what, key order,
null versus missing, error envelopes and texts. Shapes are compared per chunk class (role, content,
reasoning, tool start, tool arguments, finish, usage, error), with values reduced to their JSON type
except the few literals that carry meaning (``object``, ``finish_reason``, ``type``, ``role``).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from fake_vllm import FakeVLLM, Turn
from fake_vllm_wire import plan

LITERAL_KEYS = {"object", "finish_reason", "type", "role"}
REPLAYED = ("/v1/chat/completions", "/tokenize", "/v1/models")


def shape(obj: Any, prefix: str = "") -> set[str]:
    """Lines like ``choices[].delta{content,tool_calls}`` (key order kept) and ``usage.prompt_tokens: int``."""
    if isinstance(obj, dict):
        lines = {f"{prefix}{{{','.join(obj)}}}"}
        for key, value in obj.items():
            path = f"{prefix}.{key}" if prefix else key
            if key in LITERAL_KEYS and not isinstance(value, dict | list):
                lines.add(f"{path} = {json.dumps(value)}")
            else:
                lines |= shape(value, path)
        return lines
    if isinstance(obj, list):
        lines = {f"{prefix}[]: empty"} if not obj else set()
        for item in obj:
            lines |= shape(item, prefix + "[]")
        return lines
    kind = {bool: "bool", int: "int", float: "float", str: "str", type(None): "null"}[type(obj)]
    return {f"{prefix}: {kind}"}


def chunk_class(chunk: dict) -> str:
    if "error" in chunk:
        return "error frame"
    choices = chunk.get("choices")
    if not choices:
        return "usage chunk"
    choice = choices[0]
    delta = choice.get("delta") or {}
    if choice.get("finish_reason") is not None:
        return "finish chunk"
    if "role" in delta:
        return "role chunk"
    calls = delta.get("tool_calls")
    if calls:
        return "tool start chunk" if calls[0].get("id") else "tool args chunk"
    if delta.get("reasoning") or delta.get("reasoning_content"):
        return "reasoning chunk"
    return "content chunk"


def sse_chunks(text: str) -> tuple[list[dict], bool]:
    """The JSON chunks of an OpenAI stream, and whether it ended with ``data: [DONE]``."""
    chunks, done = [], False
    for line in text.split("\n"):
        if line.startswith("data: "):
            data = line[6:]
            if data == "[DONE]":
                done = True
            else:
                chunks.append(json.loads(data))
    return chunks, done


def mirror(body: dict, status: int, response: str) -> tuple[Turn | None, dict]:
    """The fake's script for one recorded exchange, and the body to send it (max_tokens adjusted so
    that a reply cut by "length" is cut at the same token)."""
    if status != 200:
        return None, body  # the fake must refuse the request by itself
    text: list[str] = []
    reasoning: list[str] = []
    calls: dict[int, list] = {}
    in_first = False
    if body.get("stream"):
        chunks, _ = sse_chunks(response)
        finish, stop_reason = None, None
        for chunk in chunks:
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                if isinstance(delta.get("content"), str) and delta["content"]:
                    text.append(delta["content"])
                if delta.get("reasoning"):
                    reasoning.append(delta["reasoning"])
                for call in delta.get("tool_calls") or []:
                    fn = call.get("function") or {}
                    entry = calls.setdefault(call["index"], [fn.get("name"), [], call.get("id")])
                    if fn.get("arguments"):
                        in_first |= bool(call.get("id"))
                        entry[1].append(fn["arguments"])
                if choice.get("finish_reason") is not None:
                    finish, stop_reason = choice["finish_reason"], choice.get("stop_reason")
    else:
        data = json.loads(response)
        choice = data["choices"][0]
        message = choice["message"]
        finish, stop_reason = choice["finish_reason"], choice.get("stop_reason")
        if message.get("content"):
            text = [message["content"]]
        if message.get("reasoning"):
            reasoning = [message["reasoning"]]
        for i, call in enumerate(message.get("tool_calls") or []):
            calls[i] = [call["function"]["name"], [call["function"]["arguments"]], call["id"]]
    tool_calls = [(name, frags, cid) for name, frags, cid in (calls[i] for i in sorted(calls))]
    if finish == "stop" and isinstance(stop_reason, str):
        # A stop string: vLLM cut the text inside the token that held it. Put it back, so that the
        # fake (which keeps the request's "stop") cuts at the same place, in the same chunk.
        text = [*text[:-1], (text[-1] if text else "") + stop_reason]
        stop_reason = None
    turn = Turn(
        text=text,
        reasoning=reasoning,
        tool_calls=tool_calls,
        args_in_first_delta=in_first,
        stop_reason=stop_reason if finish == "stop" else None,
    )
    if finish == "length":
        steps = plan(turn, None, 10**9)[0]
        body["max_tokens"] = len(steps) - 1  # every step but the final EOS
    return turn, body


@dataclass
class Difference:
    what: str  # e.g. "finish chunk (stream)"
    real_only: list[str] = field(default_factory=list)
    fake_only: list[str] = field(default_factory=list)
    exchanges: list[str] = field(default_factory=list)

    def render(self) -> str:
        out = [f"- **{self.what}** (in {', '.join(self.exchanges)})"]
        out += [f"  - real only: `{line}`" for line in self.real_only]
        out += [f"  - fake only: `{line}`" for line in self.fake_only]
        return "\n".join(out)


def _label(index: int, exchange: dict) -> str:
    body = exchange.get("body") if isinstance(exchange.get("body"), dict) else {}
    parts = [f"#{index} {exchange['method']} {exchange['path']} {exchange.get('status')}"]
    if body.get("stream"):
        parts.append("stream")
    if body.get("tools"):
        choice = body.get("tool_choice")
        parts.append(f"tool_choice={choice if isinstance(choice, str) else 'named'}")
    if body.get("stop"):
        parts.append("stop")
    return " ".join(parts)


def _compare(what: str, real: Any, fake: Any, found: dict[tuple, Difference], label: str) -> None:
    real_lines, fake_lines = shape(real), shape(fake)
    if real_lines == fake_lines:
        return
    key = (what, tuple(sorted(real_lines - fake_lines)), tuple(sorted(fake_lines - real_lines)))
    diff = found.setdefault(key, Difference(what, list(key[1]), list(key[2])))
    diff.exchanges.append(label)


def _by_class(chunks: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for chunk in chunks:
        out.setdefault(chunk_class(chunk), []).append(chunk)
    return out


def compare_exchange(
    index: int, exchange: dict, fake_status: int, fake_text: str, found: dict[tuple, Difference]
) -> None:
    label = _label(index, exchange)
    real_status, real_text = exchange.get("status"), exchange.get("response", "")
    if real_status != fake_status:
        diff = found.setdefault(
            ("status", label), Difference("HTTP status", [str(real_status)], [str(fake_status)])
        )
        diff.exchanges.append(f"{label}: real {real_text[:300]!r}, fake {fake_text[:300]!r}")
        return
    body = exchange.get("body") if isinstance(exchange.get("body"), dict) else {}
    if body.get("stream") and real_status == 200:
        real_chunks, real_done = sse_chunks(real_text)
        fake_chunks, fake_done = sse_chunks(fake_text)
        if real_done != fake_done:
            _compare("stream end", {"done": real_done}, {"done": fake_done}, found, label)
        real_classes, fake_classes = _by_class(real_chunks), _by_class(fake_chunks)
        for cls in sorted(real_classes.keys() | fake_classes.keys()):
            real_union = {"chunks": real_classes.get(cls, [])}
            fake_union = {"chunks": fake_classes.get(cls, [])}
            _compare(f"{cls} (stream)", real_union, fake_union, found, label)
        return
    try:
        real_json, fake_json = json.loads(real_text), json.loads(fake_text)
    except ValueError:
        if real_text != fake_text:
            diff = found.setdefault(("body", label), Difference("body", [real_text[:200]], [fake_text[:200]]))
            diff.exchanges.append(label)
        return
    what = "error body" if real_status >= 400 else f"{exchange['path']} body"
    _compare(what, real_json, fake_json, found, label)
    if real_status >= 400:
        real_message = (real_json.get("error") or {}).get("message")
        fake_message = (fake_json.get("error") or {}).get("message")
        if real_message != fake_message:
            diff = found.setdefault(
                ("error message", label),
                Difference("error message", [str(real_message)], [str(fake_message)]),
            )
            diff.exchanges.append(label)


async def _fake_answer(exchange: dict, path: str, reasoning: bool) -> tuple[int, str]:
    """What a fresh fake answers to one recorded request (fresh: a script the fake refused to use
    must not leak into the next exchange)."""
    fake = FakeVLLM(model="tiny", max_model_len=8192, reasoning_parser=reasoning)
    body = exchange.get("body")
    if path == "/v1/chat/completions" and isinstance(body, dict):
        turn, body = mirror(body, exchange["status"], exchange.get("response", ""))
        if turn is not None:
            fake.script(turn)
    runner = web.AppRunner(fake.app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}{path}"
    try:
        async with aiohttp.ClientSession() as session:
            if exchange["method"] == "GET":
                request = session.get(url)
            else:
                request = session.post(url, json=body)
            async with request as resp:
                return resp.status, await resp.text()
    finally:
        await runner.cleanup()


async def _replay(exchanges: list[dict], reasoning: bool) -> tuple[int, list[Difference]]:
    found: dict[tuple, Difference] = {}
    compared = 0
    for index, exchange in enumerate(exchanges):
        path = exchange["path"].split("?")[0]
        if path in REPLAYED and "status" in exchange:
            status, text = await _fake_answer(exchange, path, reasoning)
            compare_exchange(index, exchange, status, text, found)
            compared += 1
    return compared, list(found.values())


def compare(exchanges: list[dict], reasoning: bool = False) -> tuple[int, list[Difference]]:
    """Replay ``exchanges`` (the tap's records) against the fake: (exchanges compared, differences)."""
    return asyncio.run(_replay(exchanges, reasoning))


def report(title: str, compared: int, differences: list[Difference]) -> str:
    head = f"## {title}\n\n{compared} exchanges replayed against tests/fake_vllm.py.\n\n"
    if not differences:
        return head + "No differences: the fake's wire shapes match the real vLLM's.\n"
    return head + "\n".join(d.render() for d in differences) + "\n"
