"""Prometheus metrics: how several router replicas are watched and added up.

Each app has its own ``CollectorRegistry`` (never the process-global one), so any number of apps can
live in one process (tests, embedding) without "Duplicated timeseries" errors. Every label value comes
from a bounded set: routes, configured backend names, the models those backends serve, HTTP statuses.
What a client sends (its model name, its key, the path) never becomes a label, so the series count
stays fixed and ``/metrics`` never shows a key. Replica URLs lose any user-info and query string.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.process_collector import ProcessCollector

from .request_info import RequestInfo

if TYPE_CHECKING:
    from .backends import Backend

PREFIX = "anthropic_router"
LABELS = ("route", "backend", "model")
# Whole requests: from a count_tokens round trip to a long agentic generation.
DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
# Prefill time: milliseconds on a warm prefix cache, minutes for a cold 100k-token prompt.
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120)


class Metrics:
    """The router's metric families, updated once per finished request and read at scrape time."""

    def __init__(self, process: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # A plain int the middleware bumps (no lock, no label lookup); the gauge reads it when scraped.
        self.in_flight = 0
        reg = self.registry
        self.requests = Counter(
            f"{PREFIX}_requests", "Requests answered, by route, backend, backend model and HTTP status "
            "(499: the client went away).", [*LABELS, "status"], registry=reg,
        )  # fmt: skip
        self.tokens = Counter(
            f"{PREFIX}_tokens", "Tokens by type: input (not served from the prefix cache), output, "
            "cached (prefix-cache hits).", ["type", *LABELS], registry=reg,
        )  # fmt: skip
        self.duration = Histogram(
            f"{PREFIX}_request_duration_seconds", "Time from request received to last byte written.",
            LABELS, buckets=DURATION_BUCKETS, registry=reg,
        )  # fmt: skip
        self.ttft = Histogram(
            f"{PREFIX}_time_to_first_token_seconds", "Time from request received to the first generated "
            "token (text, thinking or tool call).", LABELS, buckets=TTFT_BUCKETS, registry=reg,
        )  # fmt: skip
        in_flight = Gauge(f"{PREFIX}_in_flight_requests", "Requests being answered now.", registry=reg)
        in_flight.set_function(lambda: self.in_flight)
        self.backend_up = Gauge(
            f"{PREFIX}_backend_up", "1 while the replica passes its health check, else 0.",
            ["backend", "replica"], registry=reg,
        )  # fmt: skip
        if process:
            ProcessCollector(registry=reg)
        self._children: dict[tuple, Any] = {}

    def observe(self, info: RequestInfo) -> None:
        """Count one finished request; a handful of dict lookups, no I/O."""
        labels = (info.route, info.backend or "", info.backend_model or "")
        self._child(self.requests, *labels, str(info.status)).inc()
        if info.input_tokens:
            self._child(self.tokens, "input", *labels).inc(info.input_tokens)
        if info.output_tokens:
            self._child(self.tokens, "output", *labels).inc(info.output_tokens)
        if info.cached_tokens:
            self._child(self.tokens, "cached", *labels).inc(info.cached_tokens)
        self._child(self.duration, *labels).observe(info.duration)
        ttft = time_to_first_token(info)
        if ttft is not None:
            self._child(self.ttft, *labels).observe(ttft)

    def _child(self, metric: Any, *labels: str) -> Any:
        # prometheus-client's labels() costs several microseconds per call; the label sets are few and
        # fixed by configuration, so each child is looked up once and kept (series still appear only
        # once observed).
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def update_backends(self, backends: Iterable[Backend]) -> None:
        """Health is read at scrape time, so the gauge is never staler than the last probe."""
        for backend in backends:
            for replica in backend.replicas:
                self.backend_up.labels(backend.name, public_url(replica.url)).set(1 if replica.healthy else 0)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def time_to_first_token(info: RequestInfo) -> float | None:
    """Seconds until the first generated token, as far as the handler marked it.

    A non-streaming answer the handler did not mark delivers its first token with its last, so its TTFT
    is its duration; a request that generated nothing has none.
    """
    ttft = info.ttft
    if ttft is not None:
        return max(ttft, 0.0)
    if not info.stream and info.output_tokens > 0 and info.status < 400:
        return info.duration
    return None


def public_url(url: str) -> str:
    """A URL fit for a label or a log line: scheme, host, port and path; no credentials, no query."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.scheme}://{host}{f':{port}' if port else ''}{parts.path}"


METRICS = web.AppKey("metrics", Metrics)
# The classic text format every Prometheus (2.x and 3.x), VictoriaMetrics and Grafana Agent accepts.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
