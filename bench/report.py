"""Statistics, the issue's targets, the printed table and the result JSON.

Percentiles use linear interpolation between closest ranks (numpy's default), on milliseconds.
A row's status is PASS/MISS against its target, ``info`` when it has none, FAIL when a
scenario it depends on returned an invalid answer (a wrong stream is never "fast"), and
``skip`` when its scenario was not run, ``n/a`` when the figure could not be computed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

SCHEMA = 1


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return math.nan
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


@dataclass
class Row:
    """One line of the table. ``value`` is what the target is checked against."""

    key: str
    label: str
    direct: float | None
    router: float | None
    value: float | None
    unit: str
    op: str | None = None  # "<=" or ">="
    limit: float | None = None
    status: str = "info"

    @property
    def target(self) -> str:
        if self.op is None or self.limit is None:
            return ""
        return f"{self.op} {self.limit:g}{'x' if self.unit == 'x' else ' ' + self.unit}"


def _judge(row: Row, failed: bool) -> Row:
    if row.direct is None and row.router is None:
        row.status = "skip"  # the scenario was not run (--only)
        return row
    if failed:
        row.status = "FAIL"
        return row
    if row.value is None or math.isnan(row.value):
        row.status = "n/a"  # not measurable, e.g. no CPU tick on the direct side in a --quick run
        return row
    if row.op is None or row.limit is None:
        return row
    ok = row.value <= row.limit if row.op == "<=" else row.value >= row.limit
    row.status = "PASS" if ok else "MISS"
    return row


def _get(res: dict[str, Any], scenario: str, mode: str, field: str) -> float | None:
    value = res.get(scenario, {}).get(mode, {}).get(field)
    return float(value) if isinstance(value, int | float) else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _diff(a: float | None, b: float | None) -> float | None:
    return a - b if a is not None and b is not None else None


def build_rows(res: dict[str, Any]) -> list[Row]:
    """The issue's target table (ratios router/direct measured in the same run)."""

    def failed(*scenarios: str) -> bool:
        return any(
            res.get(s, {}).get(m, {}).get("errors", 0) for s in scenarios for m in ("direct", "router")
        )

    def pair(s: str, f: str) -> tuple[float | None, float | None]:
        return _get(res, s, "direct", f), _get(res, s, "router", f)

    rows: list[Row] = []
    d, r = pair("S1", "p50_ms")
    rows.append(
        _judge(
            Row("s1_added_p50_ms", "S1 added latency p50", d, r, _diff(r, d), "ms", "<=", 0.5), failed("S1")
        )
    )
    d, r = pair("S1", "p99_ms")
    rows.append(_judge(Row("s1_added_p99_ms", "S1 added latency p99", d, r, _diff(r, d), "ms"), failed("S1")))
    d, r = pair("S2", "tokens_per_s")
    rows.append(
        _judge(
            Row("s2_tps_ratio", "S2 one stream tokens/s", d, r, _ratio(r, d), "x", ">=", 0.6), failed("S2")
        )
    )
    d, r = pair("S3", "tokens_per_s")
    rows.append(
        _judge(
            Row("s3_tps_ratio", "S3 64 streams tokens/s", d, r, _ratio(r, d), "x", ">=", 0.5), failed("S3")
        )
    )
    d, r = pair("S3", "ttft_p99_ms")
    rows.append(
        _judge(Row("s3_added_ttft_p99_ms", "S3 added TTFT p99", d, r, _diff(r, d), "ms"), failed("S3"))
    )
    d, r = pair("S4", "ttft_p99_ms")
    rows.append(
        _judge(
            Row("s4_added_ttft_p99_ms", "S4 added TTFT p99 (paced)", d, r, _diff(r, d), "ms", "<=", 10),
            failed("S4"),
        )
    )
    d, r = pair("S4", "cpu_per_100k_s")
    rows.append(
        _judge(
            Row("s4_cpu_ratio", "CPU per 100k tokens (S4)", d, r, _ratio(r, d), "x", "<=", 2.5), failed("S4")
        )
    )
    d, r = pair("S3", "cpu_per_100k_s")
    rows.append(
        _judge(Row("s3_cpu_ratio", "CPU per 100k tokens (S3)", d, r, _ratio(r, d), "x"), failed("S3"))
    )
    rss = res.get("rss_mb", {})
    peak = max((v for k, v in rss.items() if k.startswith("after_") and v is not None), default=None)
    rows.append(
        _judge(
            Row("rss_after_burst_mb", "RSS after the 64-stream burst", None, peak, peak, "MB", "<=", 80),
            False,
        )
    )
    d, r = pair("S5", "tokens_per_s")
    rows.append(
        _judge(Row("s5_tps_ratio", "S5 tool-call streams tokens/s", d, r, _ratio(r, d), "x"), failed("S5"))
    )
    return rows


def _fmt(x: float | None, unit: str) -> str:
    if x is None or math.isnan(x):
        return "-"
    if unit == "x":
        return f"{x:.2f}x"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.2f}" if abs(x) < 100 else f"{x:.1f}"


def table(rows: Sequence[Row]) -> str:
    """Direct and router columns show the raw measurement; ``value`` is the row's ratio or difference."""
    head = ("metric", "direct", "router", "router vs direct", "target", "result")
    lines = []
    for row in rows:
        raw_unit = "MB" if row.unit == "MB" else ("ms" if row.unit == "ms" else "")
        lines.append(
            (
                row.label,
                _fmt(row.direct, raw_unit),
                _fmt(row.router, raw_unit),
                _fmt(row.value, row.unit)
                + (f" {row.unit}" if row.unit not in ("x",) and row.value is not None else ""),
                row.target,
                row.status,
            )
        )
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(head)]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    for line in lines:
        out.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(line, widths, strict=True))
            )
        )
    return "\n".join(out)


def document(meta: dict[str, Any], res: dict[str, Any], rows: Sequence[Row]) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        **meta,
        "scenarios": {k: v for k, v in res.items() if k.startswith("S")},
        "rss_mb": res.get("rss_mb", {}),
        "rows": [{**asdict(r), "target": r.target} for r in rows],
        "errors": res.get("errors", []),
    }


def write(doc: dict[str, Any], out_dir: Path, name: str, latest: bool) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    data = orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    paths = [out_dir / f"{name}.json"]
    if latest:
        paths.append(out_dir / "latest.json")
    for p in paths:
        tmp = p.with_suffix(".json.tmp")
        tmp.write_bytes(data)
        tmp.replace(p)
    return paths
