"""The benchmark harness (bench/): its fake backend's wire format, its grammar checker, its report,
and a quick end-to-end run (tiny sizes, a few seconds) that must write a well-formed result JSON.
"""

from __future__ import annotations

import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from bench.backend import FakeBackend
from bench.frames import AnthropicFrames, tool_input_for
from bench.grammar import GrammarError, StreamValidator, validate_message
from bench.load import check_stream, request_body
from bench.report import build_rows, percentile
from bench.tokens import VOCAB, expected_text, token, tool_fragments

ROOT = Path(__file__).resolve().parent.parent


def _text_stream(n: int) -> list[bytes]:
    """A valid native stream, frame by frame, built from the backend's own frames."""
    a = AnthropicFrames(max_tokens=n)
    return [a.message_start, a.text_start, *a.text[:n], a.end(n, "max_tokens")]


def _events(frames: list[bytes]) -> list[bytes]:
    return [e + b"\n\n" for f in frames for e in f.split(b"\n\n") if e]


# --- tokens ------------------------------------------------------------------------------------


def test_token_stream_covers_the_vocabulary_and_escapes() -> None:
    n = len(VOCAB)
    assert {token(i) for i in range(n)} == set(VOCAB)
    text = expected_text(3 * n)
    assert '"' in text and "\\" in text and "\n" in text and any(ord(c) > 0xFFFF for c in text)


@pytest.mark.parametrize("n", [1, 2, 7, 256])
def test_tool_fragments_join_to_the_tool_input(n: int) -> None:
    frags = tool_fragments(n)
    assert all(frags)
    assert orjson.loads("".join(frags)) == {"path": "/tmp/bench.txt", "content": expected_text(n)}


# --- grammar -----------------------------------------------------------------------------------


def test_validator_accepts_the_native_stream_in_any_split() -> None:
    raw = b"".join(_text_stream(40))
    for size in (1, 7, len(raw)):
        v = StreamValidator()
        for i in range(0, len(raw), size):
            v.feed(raw[i : i + size])
        v.finish()
        check_stream(v, 40, tool=False)
        assert v.deltas == 40 and v.stop_reason == "max_tokens"


def _replace(events: list[bytes], i: int, new: bytes | None) -> list[bytes]:
    out = list(events)
    if new is None:
        del out[i]
    else:
        out[i] = new
    return out


BROKEN = {
    "no message_start": lambda ev: ev[1:],
    "delta before its block": lambda ev: [ev[0], ev[2], ev[1], *ev[3:]],
    "no message_stop": lambda ev: ev[:-1],
    "no message_delta": lambda ev: _replace(ev, len(ev) - 2, None),
    "event name differs from data.type": lambda ev: _replace(
        ev, 2, ev[2].replace(b"event: content_block_delta", b"event: content_block_stop")
    ),
    "delta on the wrong index": lambda ev: _replace(ev, 2, ev[2].replace(b'"index":0', b'"index":1')),
    "tool delta in a text block": lambda ev: _replace(
        ev,
        2,
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"input_json_delta","partial_json":"{"}}\n\n',
    ),
    "data-only frame": lambda ev: _replace(ev, 2, ev[2].split(b"\n", 1)[1]),
    "error event": lambda ev: [
        *ev[:3],
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"x"}}\n\n',
    ],
    "stop_reason outside the enum": lambda ev: [e.replace(b'"max_tokens"', b'"length"') for e in ev],
    "event after message_stop": lambda ev: [*ev, ev[2]],
    "half a frame at EOF": lambda ev: [*ev, b"event: ping\ndata: {"],
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_validator_rejects_broken_streams(case: str) -> None:
    events = _events(_text_stream(5))
    broken = b"".join(BROKEN[case](events))
    v = StreamValidator()
    with pytest.raises(GrammarError):
        v.feed(broken)
        v.finish()


def test_content_check_catches_a_dropped_token() -> None:
    events = _events(_text_stream(6))
    v = StreamValidator()
    v.feed(b"".join(_replace(events, 4, None)))  # grammatical, but one text delta is missing
    v.finish()
    with pytest.raises(GrammarError, match="text differs"):
        check_stream(v, 6, tool=False)


def test_validate_message_rejects_bad_bodies() -> None:
    with pytest.raises(GrammarError):
        validate_message(
            b'{"type":"message","role":"assistant","content":[],"stop_reason":"length","usage":{}}'
        )
    with pytest.raises(GrammarError):
        validate_message(b"not json")


# --- fake backend ------------------------------------------------------------------------------


def _sse_payloads(raw: bytes) -> list[bytes]:
    return [f.removeprefix(b"data: ") for f in raw.split(b"\n\n") if f]


async def test_backend_streams_vllm_chunks_with_continuous_usage(aiohttp_client) -> None:
    client = await aiohttp_client(FakeBackend().app())
    n = 30
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": n,
        "stream": True,
        "stream_options": {"include_usage": True, "continuous_usage_stats": True},
    }
    resp = await client.post("/v1/chat/completions", data=orjson.dumps(body))
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    payloads = _sse_payloads(await resp.read())
    assert payloads[-1] == b"[DONE]"
    chunks = [orjson.loads(p) for p in payloads[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    tokens = chunks[1:-1]
    assert len(tokens) == n
    assert "".join(c["choices"][0]["delta"]["content"] for c in tokens) == expected_text(n)
    assert [c["usage"]["completion_tokens"] for c in tokens] == list(range(1, n + 1))
    assert [c["choices"][0]["finish_reason"] for c in tokens] == [None] * (n - 1) + ["length"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == n


async def test_backend_streams_tool_call_deltas(aiohttp_client) -> None:
    client = await aiohttp_client(FakeBackend().app())
    n = 12
    body = orjson.loads(request_body(n, True, tool=True))
    body["tools"] = [{"type": "function", "function": {"name": "write_file", "parameters": {}}}]
    body["tool_choice"] = "required"
    body["stream_options"] = {"include_usage": True}
    resp = await client.post("/v1/chat/completions", data=orjson.dumps(body))
    chunks = [orjson.loads(p) for p in _sse_payloads(await resp.read())[:-1]]
    calls = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in chunks
        if c["choices"] and "tool_calls" in c["choices"][0]["delta"]
    ]
    assert calls[0]["function"]["name"] == "write_file" and calls[0]["id"]
    assert orjson.loads("".join(c["function"].get("arguments", "") for c in calls)) == tool_input_for(n)
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert "usage" not in chunks[1]  # usage only in the final chunk without continuous_usage_stats


@pytest.mark.parametrize("tool", [False, True])
async def test_backend_native_endpoint_passes_the_grammar(aiohttp_client, tool: bool) -> None:
    client = await aiohttp_client(FakeBackend().app())
    resp = await client.post("/v1/messages", data=request_body(20, True, tool))
    v = StreamValidator()
    v.feed(await resp.read())
    v.finish()
    check_stream(v, 20, tool)
    resp = await client.post("/v1/messages", data=request_body(20, False, tool))
    msg = validate_message(await resp.read())
    assert msg["usage"]["output_tokens"] == 20


async def test_backend_pacing_spaces_tokens(aiohttp_client) -> None:
    backend = FakeBackend()
    client = await aiohttp_client(backend.app())
    await client.post("/_bench/config", data=b'{"pace_ms": 4}')
    assert backend.pace == pytest.approx(0.004)
    t0 = time.perf_counter()
    resp = await client.post("/v1/messages", data=request_body(10, True))
    await resp.read()
    assert time.perf_counter() - t0 >= 10 * 0.004


# --- report ------------------------------------------------------------------------------------


def test_percentile_matches_linear_interpolation() -> None:
    xs = [5.0, 1.0, 9.0, 3.0, 7.0, 2.0]
    qs = statistics.quantiles(xs, n=100, method="inclusive")
    assert percentile(xs, 50) == pytest.approx(statistics.median(xs))
    assert percentile(xs, 99) == pytest.approx(qs[98])
    assert math.isnan(percentile([], 50))


def _result(direct_tps: float, router_tps: float, errors: int = 0) -> dict:
    side = {"tokens_per_s": direct_tps, "errors": 0}
    return {"S2": {"direct": side, "router": {"tokens_per_s": router_tps, "errors": errors}}}


@pytest.mark.parametrize(
    ("router_tps", "errors", "status"), [(70.0, 0, "PASS"), (50.0, 0, "MISS"), (90.0, 1, "FAIL")]
)
def test_rows_judge_against_the_targets(router_tps: float, errors: int, status: str) -> None:
    row = next(r for r in build_rows(_result(100.0, router_tps, errors)) if r.key == "s2_tps_ratio")
    assert row.value == pytest.approx(router_tps / 100.0)
    assert row.status == status


def test_rows_of_scenarios_not_run_are_skipped_and_zero_baselines_not_judged() -> None:
    assert {r.status for r in build_rows({})} == {"skip"}
    row = next(r for r in build_rows(_result(0.0, 50.0)) if r.key == "s2_tps_ratio")
    assert row.value is None and row.status == "n/a"


# --- end to end --------------------------------------------------------------------------------


def _run_quick(tmp_path: Path, *extra: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path), *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "S4 added TTFT p99" in proc.stdout
    files = list(tmp_path.glob("*-quick.json"))
    assert len(files) == 1 and not (tmp_path / "latest.json").exists()
    return orjson.loads(files[0].read_bytes())


def _check_schema(doc: dict) -> None:
    assert doc["schema"] == 1 and doc["quick"] is True and doc["errors"] == []
    assert {"date", "host", "machine", "router_cmd", "sizes", "pinned", "wall_s"} <= doc.keys()
    for name in ("S1", "S2", "S3", "S4", "S5"):
        for side in ("direct", "router"):
            data = doc["scenarios"][name][side]
            assert data["errors"] == 0 and data["tokens"] > 0 and data["cpu_s"] >= 0
    for key in ("p50_ms", "p99_ms"):
        assert doc["scenarios"]["S1"]["router"][key] > 0
    for name in ("S3", "S4", "S5"):
        assert doc["scenarios"][name]["router"]["ttft_p99_ms"] > 0
    assert doc["rss_mb"]["after_S3"] > 1
    rows = {r["key"]: r for r in doc["rows"]}
    assert {
        "s1_added_p50_ms",
        "s2_tps_ratio",
        "s3_tps_ratio",
        "s4_added_ttft_p99_ms",
        "s4_cpu_ratio",
    } <= rows.keys()
    assert {"rss_after_burst_mb"} <= rows.keys()
    for row in rows.values():
        assert row["status"] in {"PASS", "MISS", "info", "n/a"}
        assert row["value"] is None or math.isfinite(row["value"])
    assert rows["s2_tps_ratio"]["target"] == ">= 0.6x"


def test_quick_run_against_the_router(tmp_path: Path) -> None:
    doc = _run_quick(tmp_path)
    _check_schema(doc)
    assert "anthropic-router" in doc["router_cmd"] or "router" in doc["router_cmd"]


def test_quick_run_with_another_router_command(tmp_path: Path) -> None:
    # The fake backend answers /v1/messages natively, so it can stand in as a zero-cost "router":
    # this pins the --router-cmd contract (PORT/HOST from the environment, /health polled).
    doc = _run_quick(tmp_path, "--router-cmd", f"{sys.executable} -m bench.backend")
    _check_schema(doc)
    assert doc["router_cmd"].endswith("-m bench.backend")
