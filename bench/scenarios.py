"""The scenarios S1-S5: what one round sends, and how rounds become figures.

Rounds of direct and router alternate (direct, router, router, direct, ...), so both sides
sample the same machine state; on a shared 2-core box one noisy moment then lands on one round
of each instead of on a whole side. Rates and per-round TTFT p99 are reduced with the median
over rounds; latency percentiles pool all requests; CPU sums over rounds.

"cpu_s" is the CPU time (utime + stime from /proc) of the process that produced the Anthropic
answer: the fake backend for direct rounds, the router for router rounds.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bench import procs
from bench.load import Client, Sample, concurrent, sequential
from bench.report import median, percentile


@dataclass(frozen=True)
class Sizes:
    s1_requests: int = 200
    s1_block: int = 20  # requests per round; rounds alternate between direct and router
    s1_tokens: int = 32
    s2_tokens: int = 1000
    s2_repeat: int = 20
    s3_streams: int = 64
    s3_tokens: int = 256
    s3_rounds: int = 6
    s4_streams: int = 64
    s4_tokens: int = 256
    s4_pace_ms: float = 5.0
    s4_rounds: int = 4
    s5_streams: int = 16
    s5_tokens: int = 256
    s5_rounds: int = 4
    warmup: int = 20


QUICK = Sizes(
    s1_requests=10,
    s1_block=5,
    s1_tokens=8,
    s2_tokens=100,
    s2_repeat=2,
    s3_streams=8,
    s3_tokens=32,
    s3_rounds=2,
    s4_streams=8,
    s4_tokens=16,
    s4_pace_ms=2.0,
    s4_rounds=2,
    s5_streams=4,
    s5_tokens=16,
    s5_rounds=2,
    warmup=4,
)


@dataclass
class Target:
    """One side of the comparison: where requests go and whose CPU is charged for them."""

    name: str
    client: Client
    pid: int
    backend_pid: int


@dataclass
class Round:
    samples: list[Sample]
    wall: float
    cpu: float
    backend_cpu: float


RoundFn = Callable[[Target], Awaitable[tuple[list[Sample], float]]]
Summary = Callable[[list[Round]], dict[str, Any]]


@dataclass(frozen=True)
class Scenario:
    name: str
    rounds: int
    one_round: RoundFn
    summarize: Summary
    pace_ms: float = 0.0


async def measure(target: Target, fn: RoundFn) -> Round:
    """One round with the garbage collector paused, bracketed by /proc CPU readings."""
    gc.collect()
    gc.disable()
    c0, b0 = procs.cpu_seconds(target.pid), procs.cpu_seconds(target.backend_pid)
    try:
        samples, wall = await fn(target)
    finally:
        gc.enable()
    await asyncio.sleep(0.01)  # let the last writes' accounting land before reading the counters
    c1, b1 = procs.cpu_seconds(target.pid), procs.cpu_seconds(target.backend_pid)
    return Round(samples, wall, c1 - c0, b1 - b0)


def _ms(values: list[float]) -> list[float]:
    return [v * 1000.0 for v in values]


def _ok(rounds: list[Round]) -> list[Sample]:
    return [s for r in rounds for s in r.samples if not s.error]


def _common(rounds: list[Round]) -> dict[str, Any]:
    tokens = sum(s.tokens for s in _ok(rounds))
    cpu = sum(r.cpu for r in rounds)
    return {
        "rounds": len(rounds),
        "requests": sum(len(r.samples) for r in rounds),
        "tokens": tokens,
        "cpu_s": round(cpu, 4),
        "backend_cpu_s": round(sum(r.backend_cpu for r in rounds), 4),
        "cpu_per_100k_s": cpu / tokens * 100_000 if tokens else None,
    }


def summarize_latency(rounds: list[Round]) -> dict[str, Any]:
    lat = _ms([s.latency for s in _ok(rounds)])
    return {
        **_common(rounds),
        "p50_ms": percentile(lat, 50),
        "p99_ms": percentile(lat, 99),
        "mean_ms": sum(lat) / len(lat) if lat else None,
    }


def summarize_single_stream(rounds: list[Round]) -> dict[str, Any]:
    ok = _ok(rounds)
    rates = [s.tokens / s.latency for s in ok if s.latency]
    return {
        **_common(rounds),
        "tokens_per_s": median(rates) if rates else None,
        "runs_tokens_per_s": rates,
        "ttft_ms": median(_ms([s.ttft for s in ok if s.ttft is not None])),
    }


def summarize_streams(rounds: list[Round]) -> dict[str, Any]:
    rates = [sum(s.tokens for s in r.samples if not s.error) / r.wall for r in rounds if r.wall]
    p99s = [percentile(_ms([s.ttft for s in r.samples if s.ttft is not None]), 99) for r in rounds]
    ok = _ok(rounds)
    ttft = _ms([s.ttft for s in ok if s.ttft is not None])
    return {
        **_common(rounds),
        "tokens_per_s": median(rates) if rates else None,
        "rounds_tokens_per_s": rates,
        "ttft_p50_ms": percentile(ttft, 50),
        "ttft_p99_ms": median(p99s) if p99s else None,
        "rounds_ttft_p99_ms": p99s,
        "ttft_p99_pooled_ms": percentile(ttft, 99),
        "latency_p99_ms": percentile(_ms([s.latency for s in ok]), 99),
    }


def build(sz: Sizes) -> list[Scenario]:
    def streams(n: int, tokens: int, tool: bool = False) -> RoundFn:
        return lambda t: concurrent(lambda: t.client.stream(tokens, tool), n)

    s1_rounds = max(1, -(-sz.s1_requests // sz.s1_block))
    return [
        Scenario(
            "S1",
            s1_rounds,
            lambda t: sequential(lambda: t.client.message(sz.s1_tokens), sz.s1_block),
            summarize_latency,
        ),
        Scenario(
            "S2",
            sz.s2_repeat,
            lambda t: sequential(lambda: t.client.stream(sz.s2_tokens), 1),
            summarize_single_stream,
        ),
        Scenario("S3", sz.s3_rounds, streams(sz.s3_streams, sz.s3_tokens), summarize_streams),
        Scenario("S4", sz.s4_rounds, streams(sz.s4_streams, sz.s4_tokens), summarize_streams, sz.s4_pace_ms),
        Scenario("S5", sz.s5_rounds, streams(sz.s5_streams, sz.s5_tokens, tool=True), summarize_streams),
    ]


async def run_scenario(
    sc: Scenario, direct: Target, router: Target
) -> dict[str, tuple[dict[str, Any], list[Sample]]]:
    """Alternate rounds (ABBA order cancels drift); returns each side's summary and samples."""
    rounds: dict[str, list[Round]] = {direct.name: [], router.name: []}
    for i in range(sc.rounds):
        order = (direct, router) if i % 2 == 0 else (router, direct)
        for t in order:
            rounds[t.name].append(await measure(t, sc.one_round))
    out = {}
    for name, rs in rounds.items():
        data = sc.summarize(rs)
        if sc.pace_ms:
            data["pace_ms"] = sc.pace_ms
        out[name] = (data, [s for r in rs for s in r.samples])
    return out


async def warm(t: Target, n: int) -> None:
    """First requests pay for connection set-up, imports and caches: keep them out of the figures."""
    for _ in range(n):
        for s in (await t.client.message(8), await t.client.stream(16)):
            if s.error:
                raise RuntimeError(f"warm-up against {t.name} failed: {s.error}")
    samples, _ = await concurrent(lambda: t.client.stream(16), 64)
    bad = [s.error for s in samples if s.error]
    if bad:
        raise RuntimeError(f"warm-up against {t.name} failed: {bad[0]}")
