"""What one request did, filled in by the middleware and handlers, read by logging and telemetry.

A plain mutable record rather than many ``request[...]`` keys, so the per-request log line, ``/stats``
and ``/metrics`` all read the same numbers the client saw.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(slots=True)
class RequestInfo:
    request_id: str
    method: str
    path: str
    route: str = ""  # "messages", "count_tokens", "chat_completions", "models", ...
    started: float = field(default_factory=time.monotonic)
    wall_time: float = field(default_factory=time.time)
    key_label: str | None = None  # "key0", never the key itself
    client_model: str | None = None
    backend: str | None = None
    backend_model: str | None = None
    replica: str | None = None
    stream: bool = False
    status: int = 0
    error_type: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    stop_reason: str | None = None
    first_token_at: float | None = None  # time.monotonic()
    finished: float | None = None
    route_rule: str | None = None  # which routing rule chose the backend
    client_aborted: bool = False

    @property
    def duration(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def ttft(self) -> float | None:
        return None if self.first_token_at is None else self.first_token_at - self.started

    def set_usage(self, usage: dict) -> None:
        """Take Anthropic-shaped usage (input excludes cached, as Anthropic counts)."""
        self.input_tokens = int(usage.get("input_tokens") or 0)
        self.output_tokens = int(usage.get("output_tokens") or 0)
        self.cached_tokens = int(usage.get("cache_read_input_tokens") or 0)
