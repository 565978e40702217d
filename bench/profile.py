"""Where the router's time goes under one scenario's load (S3 by default): py-spy samples, summarised.

py-spy (``pip install py-spy``, not a project dependency) attaches to the running router with
``--nonblocking`` (it reads memory without pausing the process) and runs on the load
generator's core, so the router's own core is not disturbed. The summary lists the hottest
functions by self time and by inclusive time, and self time per source file; the collapsed
stacks are kept next to it for a flame graph (``flamegraph.pl`` or speedscope).
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.scenarios import Scenario, Target


def find_pyspy() -> str | None:
    return shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")


def summarize(collapsed: str, top: int = 25) -> tuple[str, dict[str, Any]]:
    """Self/inclusive sample counts from py-spy's raw (collapsed) output: ``f1;f2;...;fN count``."""
    own: Counter[str] = Counter()
    own_lines: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    files: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        lines = stack.split(";")
        frames = [_function_of(f) for f in lines]
        total += n
        own_lines[lines[-1]] += n
        own[frames[-1]] += n
        files[_file_of(lines[-1])] += n
        for f in set(frames):
            incl[f] += n
    if not total:
        return "no samples (is the router a Python process?)\n", {"samples": 0}

    def section(title: str, c: Counter[str]) -> list[str]:
        rows = [f"{title}"]
        rows += [f"  {100.0 * n / total:5.1f}%  {name}" for name, n in c.most_common(top)]
        return rows

    lines = [
        f"{total} samples (py-spy, idle excluded; self time in the event loop's own frame is C code:"
        " uvloop/asyncio callbacks and socket syscalls)"
    ]
    lines += section("self time by function:", own)
    lines += section("self time by line:", own_lines)
    lines += section("self time by file:", files)
    lines += section("inclusive time by function:", incl)
    data = {
        "samples": total,
        "self_by_file": {k: round(100.0 * v / total, 1) for k, v in files.most_common(top)},
        "self_by_function": {k: round(100.0 * v / total, 1) for k, v in own.most_common(top)},
    }
    return "\n".join(lines) + "\n", data


def _function_of(frame: str) -> str:
    """``name (file.py:123)`` -> ``name (file.py)``: one function's lines add up."""
    head, sep, tail = frame.rpartition(":")
    return f"{head})" if sep and tail.rstrip(")").isdigit() else frame


def _file_of(frame: str) -> str:
    # py-spy frames look like "feed (router/transcoder.py:123)"
    start, end = frame.rfind("("), frame.rfind(")")
    if start < 0 or end < start:
        return frame
    loc = frame[start + 1 : end]
    return loc.rsplit(":", 1)[0]


async def profile_router(
    pid: int, target: Target, scenario: Scenario, out: Path, seconds: float
) -> dict[str, Any]:
    """Sample the router for ``seconds`` while rounds of ``scenario`` run against it."""
    pyspy = find_pyspy()
    if pyspy is None:
        return {"error": "py-spy not found: pip install py-spy into the venv"}
    out.parent.mkdir(parents=True, exist_ok=True)
    raw = out.with_suffix(".collapsed")
    proc = await asyncio.create_subprocess_exec(
        pyspy,
        "record",
        "--pid",
        str(pid),
        "--rate",
        "200",
        "--nonblocking",
        "--format",
        "raw",
        "--duration",
        str(max(1, round(seconds))),
        "--output",
        str(raw),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    await asyncio.sleep(0.5)  # let py-spy attach before the load starts
    rounds = 0
    while proc.returncode is None and rounds < 10_000:
        await scenario.one_round(target)
        rounds += 1
        await asyncio.sleep(0)
    _, err = await proc.communicate()
    if proc.returncode != 0 or not raw.exists():
        return {"error": f"py-spy failed ({proc.returncode}): {err.decode(errors='replace')[-500:]}"}
    text, data = summarize(raw.read_text(errors="replace"))
    out.write_text(text)
    return {**data, "scenario": scenario.name, "rounds": rounds, "summary": str(out), "collapsed": str(raw)}
