"""Runtime state of the configured backends: which replicas are up, what model they serve, and which
replica a request goes to.

Kept apart from the HTTP plumbing so the choice logic (health, least outstanding requests, conversation
affinity for vLLM's prefix cache) is plain code that tests can drive directly.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .config import DEFAULT_BACKEND, BackendConfig
from .errors import RouterError


@dataclass
class Replica:
    url: str
    healthy: bool = False
    outstanding: int = 0
    latency_ms: float | None = None
    last_error: str | None = None
    last_check: float | None = None  # time.time() of the last probe

    def mark_up(self, latency_ms: float) -> None:
        self.healthy, self.latency_ms, self.last_error, self.last_check = True, latency_ms, None, time.time()

    def mark_down(self, error: str) -> None:
        self.healthy, self.last_error, self.last_check = False, error, time.time()


@dataclass
class Backend:
    """A named backend: one model, served by one or more replicas."""

    config: BackendConfig
    replicas: list[Replica] = field(default_factory=list)
    served_model: str | None = None  # learned from /v1/models
    max_model_len: int | None = None
    ready: bool = False  # passed the start-up check once

    @classmethod
    def from_config(cls, config: BackendConfig) -> Backend:
        return cls(config, [Replica(u) for u in config.urls])

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def model(self) -> str:
        """The model name sent to the backend."""
        if not self.config.discover_model:
            return self.config.model
        return self.served_model or self.config.model

    @property
    def healthy(self) -> bool:
        return any(r.healthy for r in self.replicas)

    def pick(self, affinity: str | None = None, exclude: Iterable[Replica] = ()) -> Replica:
        """Choose a replica: sticky per conversation when possible, else the least busy healthy one.

        Affinity uses rendezvous hashing over the healthy replicas, so a conversation keeps hitting the
        replica that holds its prefix cache, and only the conversations of a replica that goes down move.
        """
        excluded = set(map(id, exclude))
        candidates = [r for r in self.replicas if r.healthy and id(r) not in excluded]
        if not candidates:
            if not self.ready and not excluded:
                raise RouterError(529, "overloaded_error", f"backend {self.name!r} is starting", retry=True)
            raise RouterError(529, "overloaded_error", f"backend {self.name!r} is unavailable", retry=True)
        if len(candidates) == 1:
            return candidates[0]
        if affinity:
            return max(candidates, key=lambda r: _score(affinity, r.url))
        return min(candidates, key=lambda r: r.outstanding)


def _score(key: str, url: str) -> bytes:
    return hashlib.blake2b(f"{key}|{url}".encode(), digest_size=8).digest()


class BackendPool:
    """All backends by name; ``default`` always exists."""

    def __init__(self, configs: Mapping[str, BackendConfig]) -> None:
        self.backends: dict[str, Backend] = {name: Backend.from_config(c) for name, c in configs.items()}
        # Set when the start-up check gave up (STARTUP_TIMEOUT); the CLI exits non-zero so systemd or
        # Docker restarts the router.
        self.startup_failed = False

    def __getitem__(self, name: str) -> Backend:
        return self.backends[name]

    def __iter__(self):
        return iter(self.backends.values())

    @property
    def default(self) -> Backend:
        return self.backends[DEFAULT_BACKEND]

    @property
    def ready(self) -> bool:
        return all(b.ready for b in self.backends.values())
