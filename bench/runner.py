"""Start the fake backend and the router under test, run the scenarios, collect the figures.

"direct" is the fake backend's native Anthropic endpoint; "router" is the router under test in
front of the same backend's OpenAI endpoint. Placement: the router gets the first usable CPU to
itself; the fake backend and this process (the load generator) share the second.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import procs
from bench.load import Client, Sample, post_json, wait_healthy
from bench.scenarios import QUICK, Sizes, Target, build, run_scenario, warm
from bench.tokens import MODEL

__all__ = ["QUICK", "Plan", "Results", "Sizes", "host", "run"]

API_KEY = "sk-bench-0123456789abcdef"


@dataclass
class Results:
    scenarios: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    rss_mb: dict[str, float | None] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def put(self, scenario: str, side: str, data: dict[str, Any], samples: list[Sample]) -> None:
        bad = [s.error for s in samples if s.error]
        data["errors"] = len(bad)
        self.errors.extend(f"{scenario}/{side}: {e}" for e in bad[:3])
        self.scenarios.setdefault(scenario, {})[side] = data

    def as_dict(self) -> dict[str, Any]:
        return {**self.scenarios, "rss_mb": self.rss_mb, "errors": self.errors}


@dataclass
class Plan:
    sizes: Sizes
    router_cmd: str | None
    pin: bool = True
    only: tuple[str, ...] = ("S1", "S2", "S3", "S4", "S5")
    profile: Path | None = None
    profile_scenario: str = "S3"
    profile_seconds: float = 8.0
    meta: dict[str, Any] = field(default_factory=dict)


async def _scenarios(plan: Plan, res: Results, direct: Target, routed: Target, backend_url: str) -> None:
    for sc in build(plan.sizes):
        if sc.name not in plan.only:
            continue
        if sc.pace_ms:
            await post_json(backend_url + "/_bench/config", {"pace_ms": sc.pace_ms})
        try:
            out = await run_scenario(sc, direct, routed)
        finally:
            if sc.pace_ms:
                await post_json(backend_url + "/_bench/config", {"pace_ms": 0})
        for side, (data, samples) in out.items():
            res.put(sc.name, side, data, samples)
        if sc.name in ("S3", "S4"):
            res.rss_mb[f"after_{sc.name}"] = procs.rss_mb(routed.pid)


def _noise(busy0: tuple[float, float], own0: float, t0: float, ncpu: int) -> dict[str, float]:
    """CPU that processes outside the bench (and the hypervisor: steal) took while it measured."""
    busy1 = procs.system_busy_seconds()
    other = max(0.0, (busy1[0] - busy0[0]) - (procs.cpu_seconds(os.getpid()) - own0))
    capacity = (time.monotonic() - t0) * ncpu
    return {
        "other_cpu_s": round(other, 2),
        "other_cpu_pct": round(other / capacity * 100, 1),
        "steal_pct": round((busy1[1] - busy0[1]) / capacity * 100, 1),
    }


async def _profile(plan: Plan, pid: int, routed: Target, backend_url: str) -> dict[str, Any]:
    from bench.profile import profile_router

    assert plan.profile is not None
    sc = next(s for s in build(plan.sizes) if s.name == plan.profile_scenario)
    if sc.pace_ms:
        await post_json(backend_url + "/_bench/config", {"pace_ms": sc.pace_ms})
    try:
        return await profile_router(pid, routed, sc, plan.profile, plan.profile_seconds)
    finally:
        if sc.pace_ms:
            await post_json(backend_url + "/_bench/config", {"pace_ms": 0})


async def run(plan: Plan) -> Results:
    cpus = procs.usable_cpus()
    pinned = plan.pin and len(cpus) >= 2
    router_cpu, side_cpu = (cpus[0], cpus[1]) if pinned else (None, None)
    plan.meta.update({"pinned": pinned, "router_cpu": router_cpu, "backend_and_load_cpu": side_cpu})
    logdir = procs.make_logdir()
    res = Results()
    backend = procs.start_backend(side_cpu, logdir)
    backend_url = f"http://127.0.0.1:{backend.port}"
    router_port = procs.free_port()
    env = procs.router_env(router_port, backend_url, API_KEY, MODEL)
    cwd = logdir if plan.router_cmd is None else None
    try:
        router = procs.start_router(plan.router_cmd, env, router_cpu, router_port, logdir, cwd)
    except OSError as exc:
        backend.stop()
        raise RuntimeError(f"cannot start the router: {exc}") from None
    router_url = f"http://127.0.0.1:{router_port}"
    procs.pin_self(side_cpu)
    try:
        await wait_healthy(backend_url + "/health", lambda: backend.proc.poll() is None, 15)
        try:
            await wait_healthy(router_url + "/health", lambda: router.proc.poll() is None, 30)
        except RuntimeError as exc:
            raise RuntimeError(f"router did not start ({exc}); its output:\n{router.tail()}") from None
        async with Client(backend_url, API_KEY) as dc, Client(router_url, API_KEY) as rc:
            direct = Target("direct", dc, backend.pid, backend.pid)
            routed = Target("router", rc, router.pid, backend.pid)
            for t in (direct, routed):
                await warm(t, plan.sizes.warmup)
            res.rss_mb["idle"] = procs.rss_mb(router.pid)
            busy0, own0, t0 = procs.system_busy_seconds(), procs.cpu_seconds(os.getpid()), time.monotonic()
            await _scenarios(plan, res, direct, routed, backend_url)
            plan.meta["noise"] = _noise(busy0, own0, t0, len(cpus))
            res.rss_mb["backend"] = procs.rss_mb(backend.pid)
            if plan.profile is not None:
                plan.meta["profile"] = await _profile(plan, router.pid, routed, backend_url)
        if router.proc.poll() is not None:
            res.errors.append(f"router exited with {router.proc.returncode}: {router.tail(500)}")
    finally:
        router.stop()
        backend.stop()
        if pinned:
            os.sched_setaffinity(0, set(cpus))
    plan.meta["router_log_tail"] = router.tail(1500) if res.errors else ""
    return res


def host() -> str:
    return socket.gethostname().split(".")[0] or "host"
