"""A transparent recording proxy between a client (Claude Code, an SDK) and the router.

What a real client sends is the one thing our own tests cannot invent, and what the router answers is
what the client judged; this proxy keeps both, byte for byte, without changing either. Responses are
passed through chunk by chunk (SSE timing and framing stay as the router made them), and each exchange
is kept as ``{method, path, headers, body, status, response_headers, response}``, served at
``/__recorder__/exchanges`` and appended to ``--log`` as JSON lines.

    python e2e/recorder.py --target http://127.0.0.1:PORT --port 0 --log exchanges.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import zlib

import aiohttp
from aiohttp import web

HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}
MAX_KEPT = 4 * 1024 * 1024  # response bytes kept per exchange (whole SSE streams are far smaller)

EXCHANGES = web.AppKey("exchanges", list)
TARGET = web.AppKey("target", str)
SESSION = web.AppKey("session", aiohttp.ClientSession)
LOG = web.AppKey("log", str)


def _decode(raw: bytes, encoding: str) -> str:
    """The response text for the log, whatever content encoding the router chose."""
    try:
        if encoding in ("gzip", "deflate"):
            raw = zlib.decompress(raw, 47)
    except zlib.error:
        pass
    return raw.decode("utf-8", "replace")


def _body(raw: bytes) -> object:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


async def proxy(request: web.Request) -> web.StreamResponse:
    raw = await request.read()
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
    entry: dict = {
        "time": time.time(),
        "method": request.method,
        "path": request.path_qs,
        "headers": dict(request.headers),
        "body": _body(raw),
    }
    url = request.app[TARGET] + request.path_qs
    kept = bytearray()
    try:
        async with request.app[SESSION].request(
            request.method, url, headers=headers, data=raw or None, allow_redirects=False
        ) as upstream:
            entry["status"] = upstream.status
            entry["response_headers"] = dict(upstream.headers)
            out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
            resp = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=out_headers)
            await resp.prepare(request)
            async for chunk in upstream.content.iter_any():
                if len(kept) < MAX_KEPT:
                    kept += chunk
                await resp.write(chunk)
            await resp.write_eof()
    except (TimeoutError, aiohttp.ClientError, ConnectionResetError) as exc:
        entry["error"] = repr(exc)
        if "status" not in entry:
            resp = web.Response(status=599, text=f"recorder: router unreachable: {exc!r}")
    finally:
        entry["response"] = _decode(
            bytes(kept), entry.get("response_headers", {}).get("Content-Encoding", "")
        )
        entry["duration"] = round(time.time() - entry["time"], 3)
        request.app[EXCHANGES].append(entry)
        if request.app[LOG]:
            with open(request.app[LOG], "a", encoding="utf-8") as fh:
                fh.write(json.dumps(entry) + "\n")
    return resp


async def exchanges(request: web.Request) -> web.Response:
    return web.json_response(request.app[EXCHANGES])


async def _session_ctx(app: web.Application):  # type: ignore[no-untyped-def]
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
    # auto_decompress off: the client gets the router's bytes unchanged, encoding and all.
    async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session:
        app[SESSION] = session
        yield


def make_app(target: str, log: str = "") -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[EXCHANGES] = []
    app[TARGET] = target.rstrip("/")
    app[LOG] = log
    app.cleanup_ctx.append(_session_ctx)
    app.router.add_get("/__recorder__/exchanges", exchanges)
    app.router.add_route("*", "/{tail:.*}", proxy)
    return app


async def _serve(host: str, port: int, target: str, log: str) -> None:
    runner = web.AppRunner(make_app(target, log), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    print(f"LISTENING {runner.addresses[0][1]}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", required=True, help="the router's base URL")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--log", default="", help="append every exchange to this JSON-lines file")
    args = ap.parse_args()
    asyncio.run(_serve(args.host, args.port, args.target, args.log))


if __name__ == "__main__":
    main()
