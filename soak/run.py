"""Soak: minutes of mixed traffic through a real router process, and how its memory grows (``make soak``).

A leak that costs a few kilobytes per request is invisible in a test and fatal after a week, so this
runs the router (``python -m router``, as deployed) against tests/raw_backend.py for N minutes with a
steady mix of what production sees: streams and plain answers on both routes, clients that leave
mid-stream, backend resets, HTML error pages, mid-stream error frames, stalls that time out, and bad
input. Every outcome is checked against what that kind of request must get. The router's RSS is
sampled throughout; the report compares it after a warm-up (pools, caches and allocator arenas
filled) with the end, and fits a trend line. Not part of CI.

    python soak/run.py --minutes 3 [--clients 64] [--max-growth-mib 20]

Exit status: 0 when every request got what it should and growth stayed under ``--max-growth-mib``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from raw_backend import (  # noqa: E402  (tests/ is not a package)
    DONE,
    Exchange,
    RawBackend,
    ok,
    openai_frames,
    reply,
    sse,
    stall,
)

KEY = "soak-key-0123456789"
TEXTS = [f" word{i}" for i in range(30)]
FRAMES = openai_frames(TEXTS)
ERROR_FRAME = b'data: {"error": {"message": "engine died", "type": "InternalServerError", "code": 500}}\n\n'
HTML = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
# kind of request -> weight in the mix
MIX = {
    "stream": 50,
    "plain": 15,
    "chat": 10,
    "leave": 8,
    "reset": 5,
    "html": 4,
    "error_frame": 4,
    "bad_input": 3,
    "stall": 1,
}
BEHAVIOURS = {
    "stream": ok(TEXTS, delay=0.001),
    "plain": ok(TEXTS),
    "chat": ok(TEXTS, delay=0.001),
    "leave": ok([" slow"] * 200, delay=0.005),
    "reset": sse(FRAMES[:3], end="reset"),
    "html": reply(502, HTML, "text/html"),
    "error_frame": sse([*FRAMES[:3], ERROR_FRAME, DONE]),
    "stall": stall(),
}


async def by_kind(ex: Exchange) -> None:
    """The backend plays whatever the client's message asked for ("soak:<kind>")."""
    kind = str(ex.json["messages"][-1]["content"]).removeprefix("soak:")
    await BEHAVIOURS[kind](ex)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Load:
    def __init__(self, url: str, seed: int) -> None:
        self.url = url
        self.rng = random.Random(seed)
        self.outcomes: Counter[str] = Counter()
        self.unexpected: list[str] = []
        kinds, weights = zip(*MIX.items(), strict=True)
        self.kinds, self.weights = list(kinds), list(weights)

    async def one(self, session: aiohttp.ClientSession) -> None:
        kind = self.rng.choices(self.kinds, self.weights)[0]
        chat = kind == "chat"
        path = "/v1/chat/completions" if chat else "/v1/messages"
        body: dict = {"model": "m", "messages": [{"role": "user", "content": f"soak:{kind}"}]}
        body |= {"stream": kind != "plain"} | ({} if chat else {"max_tokens": 1000})
        data = b"{not json" if kind == "bad_input" else orjson.dumps(body)
        headers = {"x-api-key": KEY, "Content-Type": "application/json"}
        async with session.post(self.url + path, data=data, headers=headers) as resp:
            if kind == "leave":
                await resp.content.readuntil(b"\n\n")
                await resp.content.readuntil(b"\n\n")
                resp.close()  # the client goes away mid-stream
                self.outcomes[kind] += 1
                return
            raw = await resp.read()
        got = self.check(kind, resp.status, raw)
        self.outcomes[kind if got is None else "unexpected"] += 1
        if got is not None and len(self.unexpected) < 20:
            self.unexpected.append(f"{kind}: {got}")

    @staticmethod
    def check(kind: str, status: int, raw: bytes) -> str | None:
        """None when the answer is what this kind of request must get, else what was wrong."""
        tail = raw[-200:]
        expected = {"html": 500, "bad_input": 400, "stall": 504}.get(kind, 200)
        if status != expected:
            return f"status {status}: {raw[:200]!r}"
        if kind in ("stream",):
            ok_end = tail.endswith(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
        elif kind in ("reset", "error_frame"):
            ok_end = b"event: error\n" in tail and b"overloaded_error" in tail
        elif kind == "chat":
            ok_end = tail.endswith(b"data: [DONE]\n\n")
        elif kind == "plain":
            ok_end = orjson.loads(raw)["stop_reason"] == "end_turn"
        else:
            ok_end = orjson.loads(raw)["type"] == "error"
        return None if ok_end else f"bad ending: {tail!r}"

    async def worker(self, session: aiohttp.ClientSession, deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                await self.one(session)
            except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
                self.outcomes["unexpected"] += 1
                if len(self.unexpected) < 20:
                    self.unexpected.append(f"exception {type(exc).__name__}: {exc}")


def trend_mib_per_min(samples: list[tuple[float, int]]) -> float:
    """Least-squares slope of RSS over time, in MiB per minute."""
    if len(samples) < 3:
        return 0.0
    slope = statistics.linear_regression([t for t, _ in samples], [kib for _, kib in samples]).slope
    return slope * 60 / 1024


async def soak(minutes: float, clients: int, sample_every: float, seed: int) -> tuple[bool, float]:
    backend = RawBackend(keep_alive=True)
    backend.default = by_kind
    await backend.start()
    port = free_port()
    env = {
        **os.environ,
        "API_KEY": KEY,
        "VLLM_URL": backend.url,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "LOG_LEVEL": "warning",
        "IDLE_TIMEOUT": "1",
        "HEALTH_INTERVAL": "2",
        "TELEMETRY_ENABLED": "true",
    }
    router = subprocess.Popen([sys.executable, "-m", "router"], cwd=ROOT / "soak", env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            await wait_healthy(session, url, router)
            load = Load(url, seed)
            duration = minutes * 60
            warmup = min(60.0, duration / 5)
            start = time.monotonic()
            first_rss, first_fds = rss_kib(router.pid), open_fds(router.pid)
            workers = [asyncio.create_task(load.worker(session, start + duration)) for _ in range(clients)]
            samples: list[tuple[float, int]] = []
            while not all(w.done() for w in workers):
                await asyncio.sleep(sample_every)
                elapsed = time.monotonic() - start
                kib = rss_kib(router.pid)
                samples.append((elapsed, kib))
                done = sum(load.outcomes.values())
                print(f"  {elapsed:6.0f}s  rss {kib / 1024:6.1f} MiB  requests {done}", flush=True)
            await asyncio.gather(*workers)
            async with session.get(url + "/stats", headers={"x-api-key": KEY}) as resp:
                stats = await resp.json()
        # The clients' keep-alive connections are closed now; the router's own pool to the backend
        # keeps its idle connections (up to one per client) for reuse.
        await asyncio.sleep(1.0)
        end_rss, end_fds = rss_kib(router.pid), open_fds(router.pid)
        pooled = backend.open_connections
    finally:
        router.terminate()
        router.wait(30)
        await backend.close()

    elapsed = time.monotonic() - start
    settled = [s for s in samples if s[0] >= warmup] or samples
    base = settled[0][1]
    growth = (end_rss - base) / 1024
    total = sum(load.outcomes.values())
    print(f"\nsoak: {elapsed / 60:.1f} min, {clients} clients, {total} requests ({total / elapsed:.0f}/s)")
    print("  outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(load.outcomes.items())))
    print(
        f"  router /stats counted {stats['totals']['requests']} requests, {stats['totals']['errors']} errors"
    )
    print(
        f"  router RSS: start {first_rss / 1024:.1f} MiB, after {warmup:.0f} s warm-up {base / 1024:.1f} MiB, "
        f"end {end_rss / 1024:.1f} MiB; growth after warm-up {growth:+.1f} MiB "
        f"({growth * 1024 / max(base, 1) * 100:+.1f}%), trend {trend_mib_per_min(settled):+.2f} MiB/min"
    )
    print(
        f"  router open fds: {first_fds} at start, {end_fds} at the end ({pooled} idle backend connections)"
    )
    for line in load.unexpected:
        print(f"  UNEXPECTED {line}")
    return not load.unexpected and load.outcomes["unexpected"] == 0, growth


async def wait_healthy(session: aiohttp.ClientSession, url: str, router: subprocess.Popen) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if router.poll() is not None:
            raise SystemExit(f"router exited with {router.returncode}")
        try:
            async with session.get(url + "/health") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit("router not healthy after 20 s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", 3)))
    parser.add_argument("--clients", type=int, default=64, help="concurrent clients (default 64)")
    parser.add_argument("--sample-every", type=float, default=5.0, help="seconds between RSS samples")
    parser.add_argument("--max-growth-mib", type=float, default=None, help="fail above this RSS growth")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    clean, growth = asyncio.run(soak(args.minutes, args.clients, args.sample_every, args.seed))
    if args.max_growth_mib is not None and growth > args.max_growth_mib:
        print(f"FAIL: RSS grew {growth:.1f} MiB (limit {args.max_growth_mib} MiB)")
        return 1
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
