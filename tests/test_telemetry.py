"""The telemetry recorder: aggregation and percentiles, what a record holds (a key label, never a key),
the usage log written off the event loop and flushed per line, and /stats rebuilt from it after a
restart."""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from pathlib import Path

import orjson
import pytest
from aiohttp.test_utils import TestServer
from conftest import AUTH, KEY, RouterFactory
from fake_vllm import FakeVLLM, Turn
from test_stats import get_stats, wait_stats

from router.config import Settings
from router.metrics import Metrics
from router.request_info import RequestInfo
from router.telemetry import LogHistogram, Stats, Telemetry, is_error, to_record
from router.usage_log import UsageLog, load_records

HELLO = [{"role": "user", "content": "hello"}]


def info(route: str = "messages", **kw: object) -> RequestInfo:
    i = RequestInfo(
        request_id=f"req_{random.getrandbits(32):08x}", method="POST", path="/v1/messages", route=route
    )
    i.status, i.key_label, i.backend, i.backend_model = 200, "key0", "default", "tiny"
    for k, v in kw.items():
        setattr(i, k, v)
    i.finished = i.started + 0.25
    return i


def settings(**kw: object) -> Settings:
    return Settings(**{"telemetry_enabled": True, "stats_recent": 10, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_percentiles_within_one_percent(seed: int) -> None:
    rng = random.Random(seed)
    values = [rng.lognormvariate(5, 1.5) for _ in range(5000)]
    hist = LogHistogram()
    for v in values:
        hist.add(v)
    ordered = sorted(values)
    for q in (0.5, 0.95, 0.99):
        exact = ordered[math.ceil(q * len(values)) - 1]
        assert hist.quantile(q) == pytest.approx(exact, rel=0.011)
    assert hist.quantile(1.0) == pytest.approx(max(values), rel=0.011)
    assert len(hist.counts) < 1000  # bounded, whatever the number of values


def test_histogram_edges() -> None:
    hist = LogHistogram()
    assert hist.quantile(0.5) is None
    hist.add(0.0)
    hist.add(0.0)
    assert hist.quantile(0.5) == 0.0
    hist.add(1000.0)
    assert hist.quantile(1.0) == 1000.0


def test_record_holds_the_label_not_the_key() -> None:
    i = info(input_tokens=10, output_tokens=5, cached_tokens=3, stream=True, stop_reason="end_turn",
             client_model="claude-x", replica="http://user:pw@gpu:8000")  # fmt: skip
    i.first_token_at = i.started + 0.1
    rec = to_record(i)
    assert rec["key"] == "key0" and rec["replica"] == "http://gpu:8000"
    assert (rec["input_tokens"], rec["output_tokens"], rec["cached_tokens"]) == (10, 5, 3)
    assert rec["ttft_ms"] == 100.0 and rec["duration_ms"] == 250.0
    assert rec["client_model"] == "claude-x" and rec["model"] == "tiny" and rec["stop_reason"] == "end_turn"
    assert rec["time"].endswith("Z") and rec["time"][:4].isdigit()
    assert b"pw" not in orjson.dumps(rec)


@pytest.mark.parametrize(
    ("status", "error", "aborted", "failed"),
    [(200, None, False, False), (400, "invalid_request_error", False, True), (529, None, False, True),
     (200, "overloaded_error", False, True), (499, None, True, False), (499, "overloaded_error", True, True)],
)  # fmt: skip
def test_what_counts_as_an_error(status: int, error: str | None, aborted: bool, failed: bool) -> None:
    assert is_error({"status": status, "error": error, "aborted": aborted}) is failed


def test_stats_group_and_sum() -> None:
    stats = Stats(recent=2)
    recs = [
        to_record(info(input_tokens=10, output_tokens=1, key_label="key0")),
        to_record(
            info(input_tokens=20, output_tokens=2, key_label="key1", backend="big", backend_model="llama")
        ),
        to_record(info(status=400, error_type="invalid_request_error", backend=None, backend_model=None)),
    ]
    for rec in recs:
        stats.add(rec)
    out = stats.to_json()
    assert out["totals"]["requests"] == 3 and out["totals"]["errors"] == 1
    assert out["totals"]["input_tokens"] == 30 and out["totals"]["output_tokens"] == 3
    assert out["models"]["tiny"]["input_tokens"] == 10 and out["models"]["llama"]["input_tokens"] == 20
    assert out["backends"]["(none)"]["errors"] == 1
    assert out["keys"]["key1"]["output_tokens"] == 2 and out["keys"]["key0"]["requests"] == 2
    assert [r["request_id"] for r in out["recent"]] == [recs[2]["request_id"], recs[1]["request_id"]]
    assert out["totals"]["duration_ms"] == {"avg": 250.0, "p50": 250.0, "p95": 250.0}
    assert out["since"] == recs[0]["time"]


def test_load_records_skips_torn_and_foreign_lines() -> None:
    good = orjson.dumps(to_record(info(input_tokens=7)))
    stats = Stats(recent=5)
    restored, skipped = load_records(
        [good + b"\n", b"\n", b"[1, 2]\n", b'{"no": "route"}\n', good[:20]], stats.add
    )
    assert (restored, skipped) == (1, 3)
    assert stats.totals.input == 7


def test_monitoring_routes_and_disabled_recorder() -> None:
    metrics = Metrics(process=False)
    t = Telemetry(settings(), metrics)
    t.record(info(route="health"))
    t.record(info(route="messages", input_tokens=3))
    assert t.stats.totals.requests == 1 and t.stats.monitoring["health"] == 1
    count = metrics.registry.get_sample_value
    assert count("anthropic_router_requests_total", {"route": "health", "backend": "default", "model": "tiny",
                                                     "status": "200"}) == 1  # fmt: skip
    off = Telemetry(settings(telemetry_enabled=False), metrics)
    off.record(info(input_tokens=5))
    assert off.stats.totals.requests == 0 and off.to_json()["enabled"] is False
    assert count("anthropic_router_tokens_total", {"type": "input", "route": "messages", "backend": "default",
                                                   "model": "tiny"}) == 8  # fmt: skip


def test_record_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(Metrics):
        def observe(self, info: RequestInfo) -> None:
            raise RuntimeError("boom")

    t = Telemetry(settings(), Broken(process=False))
    t.record(info())
    assert "telemetry failed" in caplog.text


# --- the usage log --------------------------------------------------------------------------------


async def wait_lines(path: Path, n: int, timeout: float = 2.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_bytes().splitlines() if path.exists() else []
        if len(lines) >= n or time.monotonic() > deadline:
            return [orjson.loads(line) for line in lines]
        await asyncio.sleep(0.005)


async def test_lines_are_flushed_promptly_and_restored(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "usage.jsonl"
    t = Telemetry(settings(telemetry_file=str(path)))
    assert t.usage_log is not None
    await t.usage_log.start(t.stats.add)
    t.record(info(input_tokens=11, output_tokens=2))
    t.record(info(input_tokens=13, output_tokens=4, stream=True))
    lines = await wait_lines(path, 2)  # written and flushed while the log is still open
    assert [line["input_tokens"] for line in lines] == [11, 13]
    t.record(info(input_tokens=17))
    await t.usage_log.close()  # what is queued is written before the file closes
    assert len(path.read_bytes().splitlines()) == 3

    again = Telemetry(settings(telemetry_file=str(path)))
    assert again.usage_log is not None
    await again.usage_log.start(again.stats.add)
    assert again.stats.to_json() == t.stats.to_json()
    await again.usage_log.close()


async def test_torn_last_line_is_not_glued_to_the_next(tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"
    path.write_bytes(
        orjson.dumps(to_record(info(input_tokens=5))) + b'\n{"route": "mess'
    )  # crashed mid-write
    t = Telemetry(settings(telemetry_file=str(path)))
    assert t.usage_log is not None
    await t.usage_log.start(t.stats.add)
    assert t.stats.totals.input == 5
    t.record(info(input_tokens=6))
    await t.usage_log.close()
    restored, skipped = load_records(path.read_bytes().splitlines(), Stats(recent=1).add)
    assert (restored, skipped) == (2, 1)


async def test_slow_disk_never_blocks_the_loop(tmp_path: Path) -> None:
    log = UsageLog(str(tmp_path / "usage.jsonl"), max_pending=5)
    await log.start(Stats(recent=1).add)
    release = threading.Event()
    real_write = log._write

    def stalled(batch: list[bytes]) -> None:
        release.wait(5)  # a disk (or NFS mount) that hangs
        real_write(batch)

    log._write = stalled  # type: ignore[method-assign]
    t0 = time.perf_counter()
    for i in range(20):
        log.append(b'{"route": "messages", "n": %d}\n' % i)
        await asyncio.sleep(0)  # the writer task picks up the first line and blocks in its thread
    spent = time.perf_counter() - t0
    assert spent < 0.5  # appends returned at once although the writer is stuck
    assert log.dropped > 0 and len(log._pending) <= 5  # bounded while stuck
    release.set()
    await log.close()
    lines = (tmp_path / "usage.jsonl").read_bytes().splitlines()
    assert len(lines) == log.written == 20 - log.dropped


async def test_usage_log_survives_a_restart(
    router_factory: RouterFactory, vllm_server: TestServer, vllm: FakeVLLM, tmp_path: Path
) -> None:
    path = tmp_path / "usage.jsonl"
    env = {"TELEMETRY_ENABLED": "true", "TELEMETRY_FILE": str(path)}
    first = await router_factory(vllm_server, **env)
    vllm.script(Turn(text="one two"), Turn(text="three four five"))
    body = {"model": "m", "max_tokens": 20, "messages": HELLO}
    await (await first.post("/v1/messages", json=body, headers=AUTH)).read()
    await (await first.post("/v1/messages", json={**body, "stream": True}, headers=AUTH)).read()
    await (await first.post("/v1/messages/count_tokens", json={"model": "m", "messages": HELLO},
                            headers=AUTH)).read()  # fmt: skip
    before = await wait_stats(first, 3)
    assert len(await wait_lines(path, 3)) == 3  # on disk before any shutdown
    await first.close()

    second = await router_factory(vllm_server, **env)
    after = await get_stats(second)
    for part in ("since", "totals", "models", "backends", "keys", "routes", "recent"):
        assert after[part] == before[part], part
    assert after["totals"]["input_tokens"] > 0 and after["totals"]["requests"] == 3
    await (await second.post("/v1/messages", json=body, headers=AUTH)).read()
    grown = await wait_stats(second, 4)
    assert grown["totals"]["output_tokens"] > before["totals"]["output_tokens"]
    assert KEY not in path.read_text()
