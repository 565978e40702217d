"""The ``anthropic-router`` command: serve (the default), ``check`` and ``claude-env``.

Configuration comes from the environment and an optional dotenv file; the few flags (``--host``,
``--port``, ``--log-level``) override both, and may be given before or after the sub-command. Exit
status: 0 clean stop (SIGTERM/SIGINT included), 1 a ``check``/``claude-env`` that found a problem, 2 a
configuration error (one line naming the variable), 3 backends not ready within ``STARTUP_TIMEOUT``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .config import ConfigError, Settings, load_settings

log = logging.getLogger("router")
EXIT_PROBLEM = 1
EXIT_CONFIG = 2
EXIT_STARTUP_TIMEOUT = 3
DEFAULT_ENV_FILE = ".env"
# After the drain (SHUTDOWN_GRACE, see router.shutdown) every handler has returned: what is left for
# aiohttp's own shutdown is flushing the last bytes.
FLUSH_TIMEOUT = 5.0


def _common_flags() -> argparse.ArgumentParser:
    # SUPPRESS: a flag absent on one side of the sub-command must not reset it on the other.
    flags = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    flags.add_argument("--host", help="address to listen on (HOST, default 0.0.0.0)")
    flags.add_argument("--port", type=int, help="port to listen on (PORT, default 3456)")
    flags.add_argument(
        "--env-file", metavar="PATH", help=f"dotenv file to read (default: {DEFAULT_ENV_FILE}, if present)"
    )
    flags.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], help="LOG_LEVEL (default info)"
    )
    return flags


def build_parser() -> argparse.ArgumentParser:
    common = _common_flags()
    parser = argparse.ArgumentParser(
        prog="anthropic-router",
        parents=[common],
        description="Anthropic Messages API in front of vLLM or any OpenAI-compatible server. Configured by "
        "environment variables and an optional .env file (see .env.example); flags override both.",
        epilog="Exit status: 0 ok, 1 check found a problem, 2 configuration error, 3 backends not ready "
        "within STARTUP_TIMEOUT.",
    )
    parser.add_argument("--version", action="version", version=f"anthropic-router {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("serve", parents=[common], help="run the router (the default)")
    check = sub.add_parser(
        "check",
        parents=[common],
        help="probe every backend once and print a report (exit 1 on a problem)",
        description="Load the configuration, probe every backend replica once (/health, /v1/models, "
        "/version, /tokenize) and print what works and what to change.",
    )
    check.add_argument(
        "--tools",
        action="store_true",
        help='also check that tool_choice "auto" is enabled (sends one request that generates 1 token)',
    )
    env = sub.add_parser(
        "claude-env",
        parents=[common],
        help="print the shell lines that point Claude Code at this router",
        description="Ask the running router (else the backend) for its model and context window and "
        "print ready-to-paste shell lines for Claude Code.",
    )
    env.add_argument("--url", help="the router's base URL (default: http://localhost:PORT)")
    env.add_argument("--function", metavar="NAME", help="print a shell function NAME (e.g. claude-local)")
    return parser


def load(args: argparse.Namespace) -> Settings:
    """Settings from the environment over the env file, with the command-line flags over both."""
    env = dict(os.environ)
    for flag, var in (("host", "HOST"), ("port", "PORT"), ("log_level", "LOG_LEVEL")):
        value = getattr(args, flag, None)
        if value is not None:
            env[var] = str(value)
    env_file = getattr(args, "env_file", None)
    if env_file is not None and not Path(env_file).exists():
        raise ConfigError(f"--env-file {env_file}: no such file")
    return load_settings(env, env_file if env_file is not None else DEFAULT_ENV_FILE)


def serve(settings: Settings) -> int:
    from aiohttp import web

    from . import shutdown
    from .app import create_app
    from .check import security_warning
    from .keys import BACKENDS

    try:
        import uvloop  # optional extra: anthropic-router[speed]
    except ImportError:
        pass
    else:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    if warning := security_warning(settings):
        log.warning("!!! %s !!!", warning)
    app = create_app(settings)
    shutdown.install(app, settings.shutdown_grace)
    log.info("anthropic-router %s listening on %s:%d", __version__, settings.host, settings.port)
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        handler_cancellation=True,  # a client that leaves cancels its handler, which aborts the backend
        access_log=None,
        print=None,
        shutdown_timeout=FLUSH_TIMEOUT,
    )
    if app[BACKENDS].startup_failed:
        return EXIT_STARTUP_TIMEOUT
    log.info("stopped")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load(args)
    except ConfigError as exc:
        print(f"anthropic-router: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    from .logs import setup_logging

    setup_logging(settings.log_level, settings.log_format)
    if args.command == "check":
        from .check import run_check

        return asyncio.run(run_check(settings, sys.stdout, tools=args.tools))
    if args.command == "claude-env":
        from .claude_env import run_claude_env

        return asyncio.run(
            run_claude_env(settings, sys.stdout, sys.stderr, url=args.url, function=args.function)
        )
    return serve(settings)
