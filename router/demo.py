"""``make demo``: the router in front of the built-in demo backend, so it can be tried with no GPU.

Both servers run in this one process; the router is configured exactly as in real use (through the
environment), only ``VLLM_URL`` points at the demo backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys

from aiohttp import web

from .app import create_app
from .config import DEFAULT_API_KEY, ConfigError, load_settings
from .demo_backend import create_demo_app
from .logs import setup_logging


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def instructions(port: int, key: str) -> str:
    base = f"http://localhost:{port}"
    return f"""
anthropic-router demo is up on {base} (demo backend, no GPU). Try:

  curl -s {base}/v1/messages -H 'x-api-key: {key}' -H 'content-type: application/json' \\
    -d '{{"model": "demo-model", "max_tokens": 100, "messages": [{{"role": "user", "content": "Hello!"}}]}}'

  curl -sN {base}/v1/messages -H 'x-api-key: {key}' -H 'content-type: application/json' \\
    -d '{{"model": "demo-model", "max_tokens": 100, "stream": true, "messages": [{{"role": "user", "content": "Hi"}}]}}'

  ANTHROPIC_BASE_URL={base} ANTHROPIC_API_KEY={key} ANTHROPIC_MODEL=demo-model claude

Press Ctrl-C to stop.
"""


async def run(host: str, port: str) -> None:
    backend_port = _free_port()
    backend = web.AppRunner(create_demo_app(), access_log=None)
    await backend.setup()
    await web.TCPSite(backend, "127.0.0.1", backend_port).start()
    env = {**os.environ, "VLLM_URL": f"http://127.0.0.1:{backend_port}", "HOST": host, "PORT": port}
    env.setdefault("VLLM_MODEL", "default")
    settings = load_settings(env, ".env")
    setup_logging(settings.log_level, settings.log_format)
    router = web.AppRunner(create_app(settings), access_log=None, handler_cancellation=True)
    await router.setup()
    await web.TCPSite(router, settings.host, settings.port).start()
    # Show the key only when it is the public default: a real key never goes to a terminal or a log.
    key = DEFAULT_API_KEY if settings.uses_default_key else "$API_KEY"
    print(instructions(settings.port, key), flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await router.cleanup()
        await backend.cleanup()


def main() -> int:
    host = os.environ.get("HOST", "127.0.0.1")
    port = os.environ.get("PORT", "3456")  # validated with everything else by load_settings
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run(host, port))
    except ConfigError as exc:
        print(f"anthropic-router: configuration error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
