"""Per-request token telemetry: in-memory totals for ``/stats``, Prometheus metrics, the usage log.

``Telemetry.record`` runs in the middleware's ``finally`` for every routed request, on the event loop,
after the response was produced: it must never wait. It does a fixed amount of dict arithmetic and
appends one pre-serialised line to a buffer; the file is written by a background task on its own
thread. Percentiles come from log-bucketed histograms (bounded memory whatever the uptime, within 1 %
of the exact value), so nothing grows with the number of requests except the bounded ``recent`` list.

Which requests count: every routed request goes to ``/metrics``. ``/stats`` and the usage log leave out
the monitoring routes (``/``, ``/health``, ``/metrics``, ``/stats``): a load balancer probing every few
seconds would otherwise drown the requests people made; they only get a per-route count.

Token counts are Anthropic's: ``input_tokens`` excludes prefix-cache hits, which are ``cached_tokens``.
``count_tokens`` requests are recorded but consume no tokens, so they add nothing to the token totals.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter, deque
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

import orjson
from aiohttp import web

from .config import Settings
from .keys import TELEMETRY
from .metrics import METRICS, Metrics, public_url, time_to_first_token
from .request_info import RequestInfo
from .usage_log import UsageLog

log = logging.getLogger("router.telemetry")

MONITORING_ROUTES = frozenset({"root", "health", "metrics", "stats"})
NONE = "(none)"  # group name for a request that never got that far (e.g. no backend chosen)


class LogHistogram:
    """Counts per log-spaced bucket (2 % wide): p50/p95 within 1 %, in bounded memory."""

    __slots__ = ("counts", "hi", "lo", "n")
    FLOOR = 0.01  # ms; everything faster lands in bucket 0
    STEP = math.log(1.02)

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.n = 0
        self.lo = math.inf
        self.hi = 0.0

    @classmethod
    def bucket(cls, value: float) -> int:
        return 0 if value <= cls.FLOOR else int(math.log(value / cls.FLOOR) / cls.STEP) + 1

    def add(self, value: float, bucket: int | None = None) -> None:
        i = self.bucket(value) if bucket is None else bucket
        self.counts[i] = self.counts.get(i, 0) + 1
        self.n += 1
        if value < self.lo:
            self.lo = value
        if value > self.hi:
            self.hi = value

    def quantile(self, q: float) -> float | None:
        if not self.n:
            return None
        rank = max(1, math.ceil(q * self.n))  # nearest rank
        seen = 0
        for i in sorted(self.counts):
            seen += self.counts[i]
            if seen >= rank:
                mid = self.lo if i == 0 else self.FLOOR * math.exp((i - 0.5) * self.STEP)
                return min(max(mid, self.lo), self.hi)
        return self.hi


class Aggregate:
    """Totals of one group of requests (all of them, one model, one backend, one key...)."""

    __slots__ = ("aborted", "cached", "duration", "duration_sum", "errors", "input", "output", "requests",
                 "ttft", "ttft_sum")  # fmt: skip

    def __init__(self) -> None:
        self.requests = self.errors = self.aborted = 0
        self.input = self.output = self.cached = 0
        self.duration_sum = self.ttft_sum = 0.0
        self.duration = LogHistogram()
        self.ttft = LogHistogram()

    def add(self, s: Sample) -> None:
        self.requests += 1
        self.errors += s.failed
        self.aborted += s.aborted
        self.input += s.input
        self.output += s.output
        self.cached += s.cached
        if s.duration is not None:
            self.duration_sum += s.duration
            self.duration.add(s.duration, s.duration_bucket)
        if s.ttft is not None:
            self.ttft_sum += s.ttft
            self.ttft.add(s.ttft, s.ttft_bucket)

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "aborted": self.aborted,
            "input_tokens": self.input,
            "output_tokens": self.output,
            "cached_tokens": self.cached,
            "duration_ms": _summary(self.duration, self.duration_sum),
            "ttft_ms": _summary(self.ttft, self.ttft_sum),
        }


class Sample(NamedTuple):
    """One record's numbers, checked and bucketed once for all the groups it counts in."""

    failed: bool
    aborted: bool
    input: int
    output: int
    cached: int
    duration: float | None
    duration_bucket: int
    ttft: float | None
    ttft_bucket: int

    @classmethod
    def of(cls, rec: dict[str, Any]) -> Sample:
        duration, ttft = _ms(rec.get("duration_ms")), _ms(rec.get("ttft_ms"))
        return cls(
            is_error(rec),
            rec.get("aborted") is True,
            _count(rec.get("input_tokens")),
            _count(rec.get("output_tokens")),
            _count(rec.get("cached_tokens")),
            duration,
            0 if duration is None else LogHistogram.bucket(duration),
            ttft,
            0 if ttft is None else LogHistogram.bucket(ttft),
        )


def _ms(value: Any) -> float | None:
    return (
        float(value)
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
        else None
    )


def _summary(hist: LogHistogram, total: float) -> dict[str, float | None]:
    def ms(v: float | None) -> float | None:
        return None if v is None else round(v, 1)

    avg = total / hist.n if hist.n else None
    return {"avg": ms(avg), "p50": ms(hist.quantile(0.5)), "p95": ms(hist.quantile(0.95))}


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def to_record(info: RequestInfo) -> dict[str, Any]:
    """One request as the usage log and ``/stats`` keep it; the API key appears only as its label."""
    ttft = time_to_first_token(info)
    wall = info.wall_time
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(wall)) + f".{int(wall % 1 * 1000):03d}Z",
        "request_id": info.request_id,
        "route": info.route,
        "key": info.key_label,
        "client_model": info.client_model,
        "backend": info.backend,
        "model": info.backend_model,
        "replica": public_url(info.replica) if info.replica else None,
        "rule": info.route_rule,
        "stream": info.stream,
        "status": info.status,
        "error": info.error_type,
        "aborted": info.client_aborted,
        "input_tokens": info.input_tokens,
        "output_tokens": info.output_tokens,
        "cached_tokens": info.cached_tokens,
        "ttft_ms": None if ttft is None else round(ttft * 1000, 1),
        "duration_ms": round(info.duration * 1000, 1),
        "stop_reason": info.stop_reason,
    }


def is_error(rec: dict[str, Any]) -> bool:
    """A failure the router or backend is answerable for; a client hanging up (499) is not one."""
    if rec.get("aborted") is True:
        return rec.get("error") is not None
    status = rec.get("status")
    return rec.get("error") is not None or (isinstance(status, int) and status >= 400)


class Stats:
    """Everything ``/stats`` shows, built from records (live ones, or lines of the usage log)."""

    GROUPS = (("models", "model"), ("backends", "backend"), ("keys", "key"), ("routes", "route"))

    def __init__(self, recent: int) -> None:
        self.totals = Aggregate()
        self.groups: dict[str, dict[str, Aggregate]] = {name: {} for name, _ in self.GROUPS}
        self.recent: deque[dict[str, Any]] = deque(maxlen=recent)
        self.monitoring: Counter[str] = Counter()
        self.since: str | None = None  # time of the first record counted

    def add(self, rec: dict[str, Any]) -> None:
        sample = Sample.of(rec)
        self.totals.add(sample)
        for name, field in self.GROUPS:
            value = rec.get(field)
            group = self.groups[name]
            key = value if isinstance(value, str) and value else NONE
            agg = group.get(key)
            if agg is None:
                agg = group[key] = Aggregate()
            agg.add(sample)
        self.recent.append(rec)
        if self.since is None and isinstance(rec.get("time"), str):
            self.since = rec["time"]

    def to_json(self, recent: int | None = None) -> dict[str, Any]:
        items = list(self.recent)[::-1]  # newest first
        out: dict[str, Any] = {"since": self.since, "totals": self.totals.to_json()}
        for name, _ in self.GROUPS:
            out[name] = {key: agg.to_json() for key, agg in sorted(self.groups[name].items())}
        out["monitoring"] = dict(self.monitoring)
        out["recent"] = items if recent is None else items[:recent]
        return out


class Telemetry:
    """The recorder the middleware calls; metrics always, ``/stats`` and the log when enabled."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.enabled = settings.telemetry_enabled
        self.metrics = metrics
        self.stats = Stats(settings.stats_recent)
        self.started = time.time()
        self.usage_log = (
            UsageLog(settings.telemetry_file) if self.enabled and settings.telemetry_file else None
        )

    def record(self, info: RequestInfo) -> None:
        try:
            if self.metrics is not None:
                self.metrics.observe(info)
            if not self.enabled:
                return
            if info.route in MONITORING_ROUTES:
                self.stats.monitoring[info.route] += 1
                return
            rec = to_record(info)
            self.stats.add(rec)
            if self.usage_log is not None:
                self.usage_log.append(orjson.dumps(rec) + b"\n")
        except Exception:  # telemetry must never turn an answered request into a failure
            log.exception("telemetry failed to record request %s", info.request_id)

    def to_json(self, recent: int | None = None) -> dict[str, Any]:
        if not self.enabled:
            return {
                "enabled": False,
                "message": "telemetry is off; set TELEMETRY_ENABLED=true to collect /stats",
            }
        out: dict[str, Any] = {"enabled": True, "started": _iso(self.started)}
        out.update(self.stats.to_json(recent))
        out["since"] = out["since"] or out["started"]  # the first counted request, else start-up
        out["usage_log"] = None if self.usage_log is None else self.usage_log.to_json()
        return out


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def install(app: web.Application, settings: Settings) -> None:
    """Put the metrics and the recorder on ``app``: metrics always (cheap), ``/stats`` when enabled."""
    metrics = Metrics()
    telemetry = Telemetry(settings, metrics)
    app[METRICS] = metrics
    app[TELEMETRY] = telemetry

    async def telemetry_ctx(_app: web.Application) -> AsyncIterator[None]:
        """Start-up: rebuild ``/stats`` from the usage log before serving; shutdown: flush the log."""
        if settings.telemetry_file and not settings.telemetry_enabled:
            log.warning("TELEMETRY_FILE is set but TELEMETRY_ENABLED is false: no usage log is written")
        if telemetry.usage_log is not None:
            await telemetry.usage_log.start(telemetry.stats.add)
        yield
        if telemetry.usage_log is not None:
            await telemetry.usage_log.close()

    app.cleanup_ctx.append(telemetry_ctx)
