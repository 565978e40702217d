"""A scripted OpenAI-compatible backend that speaks like vLLM 0.32, for the e2e run.

The router is tested end to end against this server instead of a real model: the answers follow the
scenario script in ``script.py``, and the wire shapes (chunk fields, the role chunk first, tool-call
deltas with the id only in the first one, arguments in fragments, the usage chunk with ``choices: []``
after the finish chunk, error chunks followed by ``[DONE]``) copy the recorded vLLM traffic in
``shared/fixtures/vllm-0.32``. Every request is kept so the tests can check what the router sent.

    python e2e/scripted_backend.py --port 0 --model e2e-model   # prints "LISTENING <port>"
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))

from script import Failure, Script, Turn, count_tokens

MAX_MODEL_LEN = 131072
CHUNK_DELAY = 0.003  # real gaps between chunks, so the router sees them in separate reads

REQUESTS = web.AppKey("requests", list)
SCRIPT = web.AppKey("script", Script)
MODEL = web.AppKey("model", str)


def _chunk(cid: str, model: str, delta: dict | None, finish: str | None = None, **extra: object) -> dict:
    choice: dict = {"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish}
    if finish is not None:
        choice["stop_reason"] = None
    choice["token_ids"] = None
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        **extra,
    }


def _deltas(turn: Turn) -> list[dict]:
    out: list[dict] = [{"reasoning": r} for r in turn.reasoning]
    out += [{"content": t} for t in turn.text]
    for i, call in enumerate(turn.calls):
        head = {"id": call.id, "type": "function", "index": i, "function": {"name": call.name}}
        out.append({"content": None, "tool_calls": [head]})
        out += [
            {"content": None, "tool_calls": [{"index": i, "function": {"arguments": a}}]} for a in call.args
        ]
    return out


def _completion(turn: Turn, model: str, prompt_tokens: int) -> dict:
    """The non-streaming answer (Claude Code 2.1.197 falls back to it after a failed stream)."""
    message: dict = {"role": "assistant", "content": "".join(turn.text) or None, "refusal": None}
    message["reasoning"] = "".join(turn.reasoning) or None
    if turn.calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": "".join(c.args)}}
            for c in turn.calls
        ]
    completion_tokens = len(_deltas(turn))
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:16]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": turn.finish_reason}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "completion_tokens": completion_tokens,
        },
    }


async def _stream(
    request: web.Request, req: dict, plan: Turn | Failure, prompt_tokens: int
) -> web.StreamResponse:
    model = request.app[MODEL]
    opts = req.get("stream_options") or {}
    continuous = bool(opts.get("continuous_usage_stats"))
    cid = f"chatcmpl-{uuid.uuid4().hex[:16]}"
    resp = web.StreamResponse(headers={"content-type": "text/event-stream; charset=utf-8"})
    await resp.prepare(request)
    turn = plan.partial if isinstance(plan, Failure) else plan
    produced = 0

    def usage() -> dict:
        return {
            "prompt_tokens": prompt_tokens,
            "total_tokens": prompt_tokens + produced,
            "completion_tokens": produced,
        }

    async def send(obj: dict) -> None:
        await resp.write(b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n")
        await asyncio.sleep(CHUNK_DELAY)

    first = _chunk(cid, model, {"role": "assistant", "content": ""})
    first["choices"][0].pop("token_ids")
    await send({**first, **({"usage": usage()} if continuous else {})})
    for delta in _deltas(turn or Turn()):
        produced += 1
        await send({**_chunk(cid, model, delta), **({"usage": usage()} if continuous else {})})
    if isinstance(plan, Failure) and plan.drop:
        assert request.transport is not None
        request.transport.close()
        return resp
    if isinstance(plan, Failure):
        await send(plan.body())
    else:
        await send(
            {**_chunk(cid, model, {}, plan.finish_reason), **({"usage": usage()} if continuous else {})}
        )
        if opts.get("include_usage"):
            await send(
                {
                    "id": cid,
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [],
                    "usage": usage(),
                }
            )
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


async def chat_completions(request: web.Request) -> web.StreamResponse:
    try:
        req = await request.json()
    except json.JSONDecodeError:
        return web.json_response(Failure(400, "JSON decode error").body(), status=400)
    plan = request.app[SCRIPT].answer(req)
    prompt_tokens = count_tokens(req)
    entry = {"path": request.path, "body": req, "time": time.time(), "plan": type(plan).__name__}
    if isinstance(plan, Turn) and plan.calls:
        entry["tool_ids"] = [c.id for c in plan.calls]
    request.app[REQUESTS].append(entry)
    if isinstance(plan, Failure) and not plan.mid_stream:
        return web.json_response(plan.body(), status=plan.status)
    if req.get("stream"):
        return await _stream(request, req, plan, prompt_tokens)
    if isinstance(plan, Failure):  # a mid-stream failure asked for without streaming: the plain error
        return web.json_response(plan.body(), status=plan.status)
    return web.json_response(_completion(plan, request.app[MODEL], prompt_tokens))


async def tokenize(request: web.Request) -> web.Response:
    req = await request.json()
    request.app[REQUESTS].append({"path": request.path, "body": req, "time": time.time(), "plan": "tokenize"})
    n = count_tokens(req)
    return web.json_response(
        {"count": n, "max_model_len": MAX_MODEL_LEN, "tokens": list(range(n)), "token_strs": None}
    )


async def models(request: web.Request) -> web.Response:
    card = {
        "id": request.app[MODEL],
        "object": "model",
        "created": int(time.time()),
        "owned_by": "vllm",
        "root": "/models/e2e",
        "parent": None,
        "max_model_len": MAX_MODEL_LEN,
        "permission": [],
    }
    return web.json_response({"object": "list", "data": [card]})


async def health(request: web.Request) -> web.Response:
    return web.Response(status=200)


async def recorded(request: web.Request) -> web.Response:
    """The requests seen so far (test hook, not part of vLLM's API)."""
    return web.json_response(request.app[REQUESTS])


async def not_found(request: web.Request) -> web.Response:
    request.app[REQUESTS].append({"path": request.path, "body": None, "time": time.time(), "plan": "404"})
    return web.json_response({"detail": "Not Found"}, status=404)


def make_app(model: str) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[REQUESTS] = []
    app[SCRIPT] = Script()
    app[MODEL] = model
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/tokenize", tokenize)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", health)
    app.router.add_get("/_e2e/requests", recorded)
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app


async def _serve(host: str, port: int, model: str) -> None:
    runner = web.AppRunner(make_app(model), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    print(f"LISTENING {bound}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--model", default="e2e-model")
    args = ap.parse_args()
    asyncio.run(_serve(args.host, args.port, args.model))


if __name__ == "__main__":
    main()
