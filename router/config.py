"""Settings: one frozen, typed object read once at start-up from the environment and an optional ``.env``.

Everything configurable is an environment variable so the same build runs under systemd
(``EnvironmentFile=``), docker-compose (``environment:``) and a shell function. A bad value stops
start-up with one line naming the variable (exit code 2) instead of surfacing later as a 500.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import dotenv_values

DEFAULT_API_KEY = "sk-anthropic-router"  # the seed's well-known default: fine on loopback only
DEFAULT_BACKEND = "default"
VISION_BACKEND = "vision"
LOG_LEVELS = ("debug", "info", "warning", "warn", "error")


class ConfigError(Exception):
    """A configuration value that cannot work; the message names the variable."""


@dataclass(frozen=True)
class BackendConfig:
    """One OpenAI-compatible backend (possibly several replica URLs serving the same model)."""

    name: str
    urls: tuple[str, ...]
    model: str  # "default": ask the backend's /v1/models at start-up
    api_key: str | None = field(default=None, repr=False)

    @property
    def discover_model(self) -> bool:
        return self.model == "default"


@dataclass(frozen=True)
class ModelRule:
    """``MODEL_MAP`` entry: client model names matching ``pattern`` (a glob) go to ``backend``."""

    pattern: str
    backend: str


@dataclass(frozen=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = 3456
    api_keys: tuple[str, ...] = field(default=(DEFAULT_API_KEY,), repr=False)
    backends: Mapping[str, BackendConfig] = field(default_factory=dict)
    telemetry_enabled: bool = False
    telemetry_file: str | None = None
    stats_recent: int = 100
    log_level: str = "info"
    log_format: str = "text"
    max_body_mb: float = 32.0
    connect_timeout: float = 10.0
    request_timeout: float = 600.0  # whole backend request, first byte to last
    idle_timeout: float = 300.0  # silence from the backend mid-stream
    ping_interval: float = 10.0
    startup_timeout: float = 600.0  # 0 = wait forever
    health_interval: float = 10.0
    shutdown_grace: float = 30.0
    system_messages: str = "fold"
    thinking_kwarg: str = "enable_thinking"
    allow_image_urls: bool = True
    model_map: tuple[ModelRule, ...] = ()
    route_background: str | None = None
    route_think: str | None = None
    route_long_context: str | None = None
    long_context_tokens: int = 60000

    @property
    def default_backend(self) -> BackendConfig:
        return self.backends[DEFAULT_BACKEND]

    @property
    def vision_backend(self) -> BackendConfig | None:
        return self.backends.get(VISION_BACKEND)

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)

    @property
    def uses_default_key(self) -> bool:
        return DEFAULT_API_KEY in self.api_keys


# --- parsing helpers --------------------------------------------------------------------------------


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name}={value} is out of range ({lo}..{hi})")
    return value


def _float(env: Mapping[str, str], name: str, default: float, lo: float = 0.0) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not value >= lo or value != value:
        raise ConfigError(f"{name}={raw!r} must be >= {lo}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (use true or false)")


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in choices:
        raise ConfigError(f"{name}={raw!r} must be one of: {', '.join(choices)}")
    return raw


def _urls(name: str, raw: str) -> tuple[str, ...]:
    urls = tuple(u.strip().rstrip("/") for u in raw.split(",") if u.strip())
    if not urls:
        raise ConfigError(f"{name} is empty")
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"{name}={url!r} must be an http:// or https:// URL")
        if parts.path.endswith("/v1"):
            # The router appends /v1/... itself; a base ending in /v1 would yield /v1/v1/chat/completions.
            raise ConfigError(f"{name}={url!r} must be the server's base URL, without /v1")
    return urls


def _opt(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


_BACKEND_VAR = re.compile(r"^BACKEND_([A-Z0-9_]+?)_URL$")


def _backends(env: Mapping[str, str]) -> dict[str, BackendConfig]:
    backends = {
        DEFAULT_BACKEND: BackendConfig(
            DEFAULT_BACKEND,
            _urls("VLLM_URL", env.get("VLLM_URL", "http://localhost:8000")),
            env.get("VLLM_MODEL", "").strip() or "default",
            _opt(env, "VLLM_API_KEY"),
        )
    }
    if vision_url := _opt(env, "VISION_URL"):
        backends[VISION_BACKEND] = BackendConfig(
            VISION_BACKEND,
            _urls("VISION_URL", vision_url),
            env.get("VISION_MODEL", "").strip() or "gpt-4-vision",
            _opt(env, "VISION_API_KEY"),
        )
    for var in sorted(env):
        m = _BACKEND_VAR.match(var)
        if not m:
            continue
        name = m.group(1).lower()
        if name in backends:
            raise ConfigError(f"{var}: backend name {name!r} is reserved")
        prefix = f"BACKEND_{m.group(1)}_"
        backends[name] = BackendConfig(
            name,
            _urls(var, env[var]),
            env.get(prefix + "MODEL", "").strip() or "default",
            _opt(env, prefix + "API_KEY"),
        )
    for config in backends.values():
        if config.api_key and any(urlsplit(u).username is not None for u in config.urls):
            # aiohttp sends URL credentials as Basic auth and refuses a second Authorization header:
            # every probe and request would fail, leaving the router "starting" forever.
            prefix = {DEFAULT_BACKEND: "VLLM", VISION_BACKEND: "VISION"}.get(config.name)
            prefix = prefix or f"BACKEND_{config.name.upper()}"
            raise ConfigError(f"{prefix}_URL has user:password@ and {prefix}_API_KEY is set too: use one")
    return backends


def _model_map(raw: str, backends: Mapping[str, BackendConfig]) -> tuple[ModelRule, ...]:
    rules = []
    for item in raw.split(","):
        if not item.strip():
            continue
        pattern, sep, backend = item.partition("=")
        if not sep or not pattern.strip() or not backend.strip():
            raise ConfigError(f"MODEL_MAP entry {item.strip()!r} must look like pattern=backend")
        rules.append(ModelRule(pattern.strip(), _backend_ref("MODEL_MAP", backend.strip(), backends)))
    return tuple(rules)


def _backend_ref(var: str, name: str, backends: Mapping[str, BackendConfig]) -> str:
    name = name.lower()
    if name not in backends:
        known = ", ".join(sorted(backends))
        raise ConfigError(f"{var} names unknown backend {name!r} (configured: {known})")
    return name


def _route(env: Mapping[str, str], var: str, backends: Mapping[str, BackendConfig]) -> str | None:
    raw = _opt(env, var)
    return _backend_ref(var, raw, backends) if raw else None


def load_settings(
    environ: Mapping[str, str] | None = None, env_file: str | os.PathLike | None = ".env"
) -> Settings:
    """Build the settings from ``environ`` over ``env_file`` (the environment wins, as with docker/systemd)."""
    env: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        env.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    env.update(os.environ if environ is None else environ)

    keys = tuple(k.strip() for k in env.get("API_KEY", DEFAULT_API_KEY).split(",") if k.strip())
    if not keys:
        raise ConfigError("API_KEY is empty: set at least one key")
    backends = _backends(env)
    settings = Settings(
        host=env.get("HOST", "").strip() or "0.0.0.0",
        port=_int(env, "PORT", 3456, 0, 65535),
        api_keys=keys,
        backends=backends,
        telemetry_enabled=_bool(env, "TELEMETRY_ENABLED", False),
        telemetry_file=_opt(env, "TELEMETRY_FILE"),
        stats_recent=_int(env, "STATS_RECENT", 100, 0, 100_000),
        log_level={"warn": "warning"}.get(level := _choice(env, "LOG_LEVEL", "info", LOG_LEVELS), level),
        log_format=_choice(env, "LOG_FORMAT", "text", ("text", "json")),
        max_body_mb=_float(env, "MAX_BODY_MB", 32.0, 0.001),
        connect_timeout=_float(env, "CONNECT_TIMEOUT", 10.0, 0.01),
        request_timeout=_float(env, "REQUEST_TIMEOUT", 600.0, 0.01),
        idle_timeout=_float(env, "IDLE_TIMEOUT", 300.0, 0.01),
        ping_interval=_float(env, "PING_INTERVAL", 10.0, 0.01),
        startup_timeout=_float(env, "STARTUP_TIMEOUT", 600.0),
        health_interval=_float(env, "HEALTH_INTERVAL", 10.0, 0.05),
        shutdown_grace=_float(env, "SHUTDOWN_GRACE", 30.0),
        system_messages=_choice(env, "SYSTEM_MESSAGES", "fold", ("fold", "keep")),
        thinking_kwarg=env.get("THINKING_KWARG", "enable_thinking").strip(),
        allow_image_urls=_bool(env, "ALLOW_IMAGE_URLS", True),
        model_map=_model_map(env.get("MODEL_MAP", ""), backends),
        route_background=_route(env, "ROUTE_BACKGROUND", backends),
        route_think=_route(env, "ROUTE_THINK", backends),
        route_long_context=_route(env, "ROUTE_LONG_CONTEXT", backends),
        long_context_tokens=_int(env, "LONG_CONTEXT_TOKENS", 60000, 1, 100_000_000),
    )
    return settings
