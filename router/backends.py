"""Runtime state of the configured backends: which replicas are up, what model they serve, and which
replica a request goes to.

Kept apart from the HTTP plumbing so the choice logic (health, conversation affinity for vLLM's prefix
cache, outstanding requests) is plain code that tests can drive directly.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from .config import DEFAULT_BACKEND, BackendConfig
from .errors import RouterError
from .metrics import public_url

# A conversation leaves its replica only when that replica is clearly the busier one: more than twice the
# outstanding requests of the least busy replica, and this many more. vLLM batches dozens of sequences,
# so a few extra requests cost far less than re-computing a 50k-token Claude Code prompt on a cold cache
# (vLLM's own cache-aware router balances at a similar, relative-and-absolute, threshold).
AFFINITY_SLACK = 16

log = logging.getLogger("router.backends")


@dataclass(eq=False)
class Replica:
    url: str
    healthy: bool = False
    outstanding: int = 0
    picks: int = 0  # requests ever sent here: the tie-break that spreads requests over idle replicas
    latency_ms: float | None = None
    last_error: str | None = None
    last_check: float | None = None  # time.time() of the last probe or failed request
    was_up: bool = False  # answered at least once (start-up waiting is not an outage)

    # Transitions are logged here, whoever noticed them: the health monitor or a request that failed.
    def mark_up(self, latency_ms: float) -> None:
        if not self.healthy and self.was_up:
            log.warning("replica %s is up again", public_url(self.url))
        self.healthy, self.latency_ms, self.last_error, self.last_check = True, latency_ms, None, time.time()
        self.was_up = True

    def mark_down(self, error: str) -> None:
        if self.healthy:
            log.warning("replica %s is down: %s", public_url(self.url), error)
        self.healthy, self.last_error, self.last_check = False, error, time.time()


@dataclass
class Backend:
    """A named backend: one model, served by one or more replicas."""

    config: BackendConfig
    replicas: list[Replica] = field(default_factory=list)
    served_model: str | None = None  # learned from /v1/models
    max_model_len: int | None = None
    listed_models: tuple[str, ...] = ()  # every id the last /v1/models listed
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
        """Choose a healthy replica not in ``exclude``, or raise a retryable 529.

        With an ``affinity`` key (one conversation), replicas are ranked by rendezvous hashing, so the
        conversation keeps hitting the replica that holds its prefix cache, and when a replica goes down
        only its own conversations move. The first ranked replica that is not clearly overloaded (see
        :data:`AFFINITY_SLACK`) wins; without a key, the one with the fewest outstanding requests.
        """
        excluded = set(map(id, exclude))
        candidates = [r for r in self.replicas if r.healthy and id(r) not in excluded]
        if not candidates:
            state = "starting" if not self.ready and not excluded else "unavailable"
            raise RouterError(529, "overloaded_error", f"backend {self.name!r} is {state}", retry=True)
        if len(candidates) == 1:
            chosen = candidates[0]
        else:
            least = min(candidates, key=lambda r: (r.outstanding, r.picks))
            chosen = least
            if affinity:
                limit = max(2 * least.outstanding, least.outstanding + AFFINITY_SLACK)
                ranked = sorted(candidates, key=lambda r: _score(affinity, r.url), reverse=True)
                chosen = next(r for r in ranked if r.outstanding <= limit)
        chosen.picks += 1
        return chosen


def _score(key: str, url: str) -> bytes:
    return hashlib.blake2b(f"{key}|{url}".encode(), digest_size=8).digest()


def affinity_order(key: str, urls: Iterable[str]) -> list[str]:
    """The replica URLs in the order a conversation with ``key`` prefers them (for tools and tests)."""
    return sorted(urls, key=lambda u: _score(key, u), reverse=True)


class BackendPool:
    """All backends by name; ``default`` always exists."""

    def __init__(self, configs: Mapping[str, BackendConfig]) -> None:
        self.backends: dict[str, Backend] = {name: Backend.from_config(c) for name, c in configs.items()}
        # Set when the start-up check gave up (STARTUP_TIMEOUT); the CLI exits non-zero so systemd or
        # Docker restarts the router.
        self.startup_failed = False

    def __getitem__(self, name: str) -> Backend:
        return self.backends[name]

    def __iter__(self) -> Iterator[Backend]:
        return iter(self.backends.values())

    @property
    def default(self) -> Backend:
        return self.backends[DEFAULT_BACKEND]

    @property
    def ready(self) -> bool:
        return all(b.ready for b in self.backends.values())
