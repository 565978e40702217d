"""``anthropic-router claude-env``: the shell lines that point Claude Code at this router.

Claude Code assumes a 200k-token window for a model it does not know, so with a 32k vLLM model it
would overflow the context long before it compacts. The window therefore comes from the backend's real
``max_model_len``: asked of the running router's ``/v1/models`` (what clients will actually see), or,
when no router answers, of the default backend directly.

A real client key is never printed (only the public default, which is no secret); the model for
Claude Code's background (haiku-class) requests follows the routing rules, so those requests land on
the backend the configuration meant for them.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import TextIO

import aiohttp
import orjson

from .config import DEFAULT_API_KEY, DEFAULT_BACKEND, Settings
from .health import probe_replica, served_entry
from .metrics import public_url
from .routing import choose_backend

# What Claude Code sends for background work when ANTHROPIC_SMALL_FAST_MODEL is not set.
CLAUDE_HAIKU = "claude-haiku-4-5"
# Claude Code's own system prompt and tools take about 20k tokens: below this window little is left for work.
SMALL_WINDOW = 65536
KEY_PLACEHOLDER = "<your API_KEY>"


@dataclass
class ModelInfo:
    model: str
    max_model_len: int | None
    source: str


def router_url(settings: Settings) -> str:
    host = settings.host
    if host in ("", "0.0.0.0", "::"):
        host = "localhost"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


async def from_router(session: aiohttp.ClientSession, base: str, settings: Settings) -> ModelInfo | None:
    """The default backend's model as the running router lists it; ``None`` if it cannot say yet."""
    try:
        async with session.get(
            base + "/v1/models",
            headers={"x-api-key": settings.api_keys[0]},
            timeout=aiohttp.ClientTimeout(total=settings.connect_timeout),
        ) as resp:
            if resp.status != 200:
                return None
            data = orjson.loads(await resp.read()).get("data") or []
    except (aiohttp.ClientError, TimeoutError, OSError, orjson.JSONDecodeError, AttributeError):
        return None
    owner = f"anthropic-router:{DEFAULT_BACKEND}"
    for entry in data:
        if isinstance(entry, dict) and entry.get("owned_by") == owner and isinstance(entry.get("id"), str):
            if entry["id"] == "default":  # still starting: the backend's model is not known yet
                return None
            window = entry.get("max_model_len") or entry.get("max_input_tokens")
            return ModelInfo(
                entry["id"], window if isinstance(window, int) else None, f"the router at {base}"
            )
    return None


async def from_backends(session: aiohttp.ClientSession, settings: Settings) -> ModelInfo | None:
    """The default backend's model, asked of its replicas directly (first one that answers)."""
    config = settings.default_backend
    for url in config.urls:
        result = await probe_replica(session, url, config.api_key, settings.connect_timeout)
        entry = served_entry(config, result.models) if result.ok else None
        if entry is not None:
            window = entry.get("max_model_len")
            return ModelInfo(
                entry["id"], window if isinstance(window, int) else None, f"vLLM at {public_url(url)}"
            )
    if not config.discover_model:
        return ModelInfo(config.model, None, "VLLM_MODEL (no backend answered)")
    return None


def _routes_to(settings: Settings, model: str) -> str:
    return choose_backend(settings, {"model": model}, has_image=False, body_size=0)[0]


def background_model(settings: Settings, main_model: str) -> str:
    """The model name for Claude Code's haiku-class requests that routes where the config wants them."""
    backend = _routes_to(settings, CLAUDE_HAIKU)
    if backend == DEFAULT_BACKEND:
        return main_model
    for rule in settings.model_map:
        literal = not any(c in rule.pattern for c in "*?[")
        # A literal MODEL_MAP name reads better in Claude Code than a backend name, if it routes there.
        if rule.backend == backend and literal and _routes_to(settings, rule.pattern) == backend:
            return rule.pattern
    return backend  # a backend's name is always a model alias for it


def env_lines(settings: Settings, base: str, info: ModelInfo) -> list[tuple[str, str]]:
    key = DEFAULT_API_KEY if settings.api_keys == (DEFAULT_API_KEY,) else KEY_PLACEHOLDER
    small = background_model(settings, info.model)
    lines = [
        ("ANTHROPIC_BASE_URL", base),
        ("ANTHROPIC_API_KEY", key),
        ("ANTHROPIC_MODEL", info.model),
        ("ANTHROPIC_SMALL_FAST_MODEL", small),
        ("ANTHROPIC_DEFAULT_HAIKU_MODEL", small),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
        ("CLAUDE_CODE_ATTRIBUTION_HEADER", "0"),
    ]
    if info.max_model_len:
        lines.append(("CLAUDE_CODE_AUTO_COMPACT_WINDOW", str(info.max_model_len)))
    return lines


def render(lines: list[tuple[str, str]], function: str | None) -> str:
    if function:
        body = "".join(f"  {name}={shlex.quote(value)} \\\n" for name, value in lines)
        return f'function {function}() {{\n{body}  claude "$@"\n}}\n'
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in lines)


async def run_claude_env(
    settings: Settings, out: TextIO, err: TextIO, *, url: str | None = None, function: str | None = None
) -> int:
    base = (url or router_url(settings)).rstrip("/")
    async with aiohttp.ClientSession() as session:
        info = await from_router(session, base, settings)
        if info is None and (info := await from_backends(session, settings)) is not None:
            info.source += f" (the router at {base} did not list it)"
    if info is None:
        print(
            f"claude-env: neither the router at {base} nor the backend "
            f"({', '.join(map(public_url, settings.default_backend.urls))})"
            " said which model it serves; run `anthropic-router check`",
            file=err,
        )
        return 1
    lines = env_lines(settings, base, info)
    print(f"# Claude Code through anthropic-router; model and window from {info.source}.", file=out)
    if dict(lines)["ANTHROPIC_API_KEY"] == KEY_PLACEHOLDER:
        print(
            "# Replace the ANTHROPIC_API_KEY placeholder with one of the router's API_KEY values.", file=out
        )
    if info.max_model_len is None:
        print(
            "# The backend did not report max_model_len: set CLAUDE_CODE_AUTO_COMPACT_WINDOW yourself.",
            file=out,
        )
    elif info.max_model_len < SMALL_WINDOW:
        print(
            f"# Note: {info.max_model_len} tokens is small for Claude Code (its prompt and tools take ~20k);"
            " consider a larger vLLM --max-model-len.",
            file=out,
        )
    out.write(render(lines, function))
    return 0
