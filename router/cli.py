"""The ``anthropic-router`` command: serve (default) and the helper sub-commands."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import sys
from collections.abc import Sequence

from . import __version__
from .config import ConfigError, Settings, load_settings

log = logging.getLogger("router")
EXIT_CONFIG = 2
EXIT_STARTUP_TIMEOUT = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anthropic-router",
        description="Anthropic Messages API in front of vLLM or any OpenAI-compatible server. "
        "Configured by environment variables and an optional .env file (see .env.example); flags override both.",
    )
    parser.add_argument("--version", action="version", version=f"anthropic-router {__version__}")
    parser.add_argument("--host", help="address to listen on (HOST, default 0.0.0.0)")
    parser.add_argument("--port", type=int, help="port to listen on (PORT, default 3456)")
    parser.add_argument("--env-file", default=".env", help="dotenv file to read (default: .env, if present)")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="LOG_LEVEL")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("serve", help="run the router (the default)")
    return parser


def load(args: argparse.Namespace) -> Settings:
    overrides = dict(os.environ)
    if args.host:
        overrides["HOST"] = args.host
    if args.port is not None:
        overrides["PORT"] = str(args.port)
    if args.log_level:
        overrides["LOG_LEVEL"] = args.log_level
    return load_settings(overrides, args.env_file)


def warn_insecure(settings: Settings) -> None:
    try:
        loopback = ipaddress.ip_address(settings.host).is_loopback
    except ValueError:
        loopback = settings.host == "localhost"
    if settings.uses_default_key and not loopback:
        log.warning(
            "!!! listening on %s with the well-known default API_KEY: anyone who can reach this port can use "
            "your GPU. Set API_KEY to a secret value. !!!",
            settings.host,
        )


def serve(settings: Settings) -> int:
    from aiohttp import web

    from .app import create_app
    from .keys import BACKENDS

    try:
        import uvloop  # optional extra: anthropic-router[speed]
    except ImportError:
        pass
    else:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    warn_insecure(settings)
    app = create_app(settings)
    log.info("anthropic-router %s listening on %s:%d", __version__, settings.host, settings.port)
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        handler_cancellation=True,
        access_log=None,
        print=None,
        shutdown_timeout=settings.shutdown_grace,
    )
    return EXIT_STARTUP_TIMEOUT if app[BACKENDS].startup_failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load(args)
    except ConfigError as exc:
        print(f"anthropic-router: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    from .logs import setup_logging

    setup_logging(settings.log_level, settings.log_format)
    return serve(settings)
