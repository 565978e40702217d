"""``anthropic-router check``: load the configuration, probe every backend replica once, print a report.

The first thing to run when something is wrong, so it says what it found in words (which variable to
change, which vLLM flag is missing) and exits 1 when a request would fail. It probes exactly the way
the router does at start-up (:func:`router.health.probe_replica`), then asks a few more cheap questions
the router's behaviour depends on: the vLLM version, whether ``/tokenize`` works (exact
``count_tokens``), and, only when asked with ``--tools`` because it generates a token, whether
``tool_choice: "auto"`` is enabled.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass, field
from typing import TextIO

import aiohttp
import orjson

from . import __version__
from .config import DEFAULT_API_KEY, DEFAULT_BACKEND, VISION_BACKEND, BackendConfig, Settings
from .health import probe_replica, served_entry
from .metrics import public_url

TOOL_FLAGS = "--enable-auto-tool-choice --tool-call-parser <parser for your model>"
_PROBE_TOOL = {
    "type": "function",
    "function": {"name": "noop", "description": "Does nothing.", "parameters": {"type": "object"}},
}


def env_names(backend: str) -> tuple[str, str, str]:
    """The variables that configure a backend: URL, model, API key."""
    if backend == DEFAULT_BACKEND:
        return "VLLM_URL", "VLLM_MODEL", "VLLM_API_KEY"
    if backend == VISION_BACKEND:
        return "VISION_URL", "VISION_MODEL", "VISION_API_KEY"
    prefix = f"BACKEND_{backend.upper()}_"
    return prefix + "URL", prefix + "MODEL", prefix + "API_KEY"


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@dataclass
class ReplicaReport:
    url: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    summary: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems


async def _get_json(session: aiohttp.ClientSession, url: str, headers: dict, timeout: float) -> object:
    try:
        async with session.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            return orjson.loads(await resp.read()) if resp.status == 200 else None
    except (aiohttp.ClientError, TimeoutError, OSError, orjson.JSONDecodeError):
        return None


async def _post(
    session: aiohttp.ClientSession, url: str, body: dict, headers: dict, timeout: float
) -> tuple[int, str]:
    """POST a JSON body; the status and the error message if any (0 when there was no answer)."""
    try:
        async with session.post(
            url,
            data=orjson.dumps(body),
            headers={**headers, "Content-Type": "application/json"},
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as resp:
            raw = await resp.read()
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return 0, str(exc) or type(exc).__name__
    if resp.status == 200:
        return 200, ""
    try:
        error = orjson.loads(raw).get("error")
        message = error.get("message") if isinstance(error, dict) else error
    except (orjson.JSONDecodeError, AttributeError):
        message = None
    return resp.status, " ".join(str(message or raw[:300].decode(errors="replace")).split())


async def check_replica(
    session: aiohttp.ClientSession, config: BackendConfig, url: str, timeout: float, tools: bool
) -> ReplicaReport:
    report = ReplicaReport(public_url(url))  # the report may be pasted into an issue
    _, model_var, key_var = env_names(config.name)
    result = await probe_replica(session, url, config.api_key, timeout)
    if not result.ok:
        error = result.error or "no answer"
        if "API key" in error:
            error += f" (set {key_var} to the key vLLM was started with, --api-key)"
        report.problems.append(error)
        return report
    entry = served_entry(config, result.models)
    listed = ", ".join(m["id"] for m in result.models)
    if entry is None:
        report.problems.append(f"does not serve {config.model} ({model_var}); it lists: {listed}")
        return report
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    version = await _get_json(session, url + "/version", headers, timeout)
    server = f"vLLM {version['version']}" if isinstance(version, dict) and "version" in version else "up"
    report.summary = f"{server}, answered /health in {result.latency_ms or 0:.0f} ms"
    context = entry.get("max_model_len")
    report.notes.append(
        f"serves {entry['id']}, max_model_len {context}"
        if isinstance(context, int)
        else f"serves {entry['id']} (no max_model_len listed: max_tokens will not be capped)"
    )
    status, _ = await _post(
        session, url + "/tokenize", {"model": entry["id"], "prompt": "hi"}, headers, timeout
    )
    report.notes.append(
        "/tokenize works: count_tokens is exact"
        if status == 200
        else f"/tokenize answered {status or 'nothing'}: count_tokens will estimate"
    )
    if not tools:
        report.notes.append("tool calling: not checked (`check --tools` sends one request, 1 token)")
        return report
    body = {
        "model": entry["id"],
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [_PROBE_TOOL],
        "tool_choice": "auto",
        "max_tokens": 1,
    }
    status, message = await _post(session, url + "/v1/chat/completions", body, headers, timeout + 30)
    if status == 200:
        report.notes.append('tool calling: on (tool_choice "auto" accepted)')
    elif "auto" in message and "tool" in message:
        report.problems.append(f"tool calling is off, Claude Code needs it: start vLLM with {TOOL_FLAGS}")
    else:
        report.problems.append(f"a tool_choice auto request answered {status or 'nothing'}: {message}")
    return report


def _backend_line(config: BackendConfig) -> str:
    url_var, model_var, _ = env_names(config.name)
    model = "the first one the backend lists" if config.discover_model else config.model
    return f"backend {config.name} ({url_var}; model: {model}, {model_var})"


def _config_lines(settings: Settings) -> list[str]:
    keys = len(settings.api_keys)
    lines = [f"listening on {settings.host}:{settings.port}, {keys} client API key{'s' * (keys != 1)}"]
    for rule in settings.model_map:
        lines.append(f"route: model {rule.pattern} -> backend {rule.backend} (MODEL_MAP)")
    for var, target in (
        ("ROUTE_BACKGROUND", settings.route_background),
        ("ROUTE_THINK", settings.route_think),
        ("ROUTE_LONG_CONTEXT", settings.route_long_context),
    ):
        if target:
            lines.append(f"route: {var} -> backend {target}")
    return lines


def security_warning(settings: Settings) -> str | None:
    if settings.uses_default_key and not is_loopback(settings.host):
        return (
            f"API_KEY includes the public default {DEFAULT_API_KEY!r} and HOST is {settings.host}: anyone who "
            "can reach this port can use your GPU. Set API_KEY to a secret value."
        )
    return None


async def run_check(settings: Settings, out: TextIO, *, tools: bool = False) -> int:
    """Probe everything once and print the report; 0 when every replica works, else 1."""
    configs = list(settings.backends.values())
    replicas = sum(len(c.urls) for c in configs)
    print(f"anthropic-router {__version__} check: {len(configs)} backend(s), {replicas} replica(s)", file=out)
    for line in _config_lines(settings):
        print(line, file=out)
    timeout = settings.connect_timeout
    async with aiohttp.ClientSession() as session:
        jobs = [check_replica(session, c, u, timeout, tools) for c in configs for u in c.urls]
        reports = iter(await asyncio.gather(*jobs))
    problems = 0
    for config in configs:
        print(f"\n{_backend_line(config)}", file=out)
        for _ in config.urls:
            report = next(reports)
            problems += len(report.problems)
            status = "ok  " if report.ok else "FAIL"
            print(f"  {status}  {report.url}  {report.summary}".rstrip(), file=out)
            for problem in report.problems:
                print(f"        problem: {problem}", file=out)
            for note in report.notes:
                print(f"        {note}", file=out)
    warning = security_warning(settings)
    if warning:
        print(f"\nwarning: {warning}", file=out)
    if problems:
        print(f"\n{problems} problem(s) found.", file=out)
        return 1
    print(
        "\nEvery backend answers: the router is ready to serve (`anthropic-router claude-env` next).",
        file=out,
    )
    return 0
