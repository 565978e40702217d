"""``python -m bench``: run the scenarios, print the router/direct table, write the result JSON.

Exit status: 0 when every answer was valid (a MISS is a measurement, not a failure, unless
``--strict``), 1 when an answer broke the grammar or a request failed, 2 when the router or the
fake backend could not be started, 3 with ``--strict`` when a target was missed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from bench import report, runner
from bench.backend import install_uvloop

NOISY_PCT = 5.0
RESULTS = Path(__file__).resolve().parent / "results"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description="Router vs direct benchmark (issue 7).")
    p.add_argument(
        "--quick", action="store_true", help="tiny sizes (seconds): a smoke test, not a measurement"
    )
    p.add_argument(
        "--router-cmd",
        help="command that starts the router under test (default: anthropic-router); it gets "
        "PORT, HOST, API_KEY, VLLM_URL, VLLM_MODEL, LOG_LEVEL in its environment",
    )
    p.add_argument("--only", default="S1,S2,S3,S4,S5", help="comma-separated scenarios to run")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    p.add_argument("--out", type=Path, default=RESULTS, help="directory for the result JSON")
    p.add_argument("--no-write", action="store_true", help="print only")
    p.add_argument(
        "--profile",
        type=Path,
        help="after the scenarios, py-spy the router under --profile-scenario load; summary to this file",
    )
    p.add_argument("--profile-scenario", default="S3", choices=["S1", "S2", "S3", "S4", "S5"])
    p.add_argument("--profile-seconds", type=float, default=8.0)
    p.add_argument("--strict", action="store_true", help="exit 3 when a target is missed")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    install_uvloop()
    sizes = runner.QUICK if args.quick else runner.Sizes()
    now = dt.datetime.now(dt.UTC)
    meta = {
        "date": now.isoformat(timespec="seconds"),
        "host": runner.host(),
        "machine": {
            "cpu": _cpu_model(),
            "cpus": len(runner.procs.usable_cpus()),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "quick": args.quick,
        "router_cmd": args.router_cmd or " ".join(runner.procs.default_router_cmd()),
        "sizes": asdict(sizes),
    }
    plan = runner.Plan(
        sizes=sizes,
        router_cmd=args.router_cmd,
        pin=not args.no_pin,
        only=tuple(s.strip().upper() for s in args.only.split(",") if s.strip()),
        profile=args.profile,
        profile_scenario=args.profile_scenario,
        profile_seconds=args.profile_seconds,
        meta=meta,
    )
    t0 = time.perf_counter()
    try:
        res = asyncio.run(runner.run(plan))
    except RuntimeError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    meta["wall_s"] = round(time.perf_counter() - t0, 2)
    data = res.as_dict()
    rows = report.build_rows(data)
    doc = report.document(meta, data, rows)
    print(
        f"anthropic-router bench  {meta['date']}  {meta['host']}  {meta['machine']['cpu']}"
        f"  ({meta['wall_s']} s)"
    )
    print(
        f"router: {meta['router_cmd']}   pinned: {meta.get('pinned')}{'   QUICK sizes' if args.quick else ''}"
    )
    print(report.table(rows))
    noise = meta.get("noise", {})
    busy = noise.get("other_cpu_pct", 0) + noise.get("steal_pct", 0)
    if busy > NOISY_PCT:
        print(
            f"warning: other processes ({noise['other_cpu_pct']}%) and the hypervisor ({noise['steal_pct']}%) "
            "took CPU during the run: figures are noisy, run again on a quiet machine"
        )
    if "profile" in meta:
        print(f"profile: {meta['profile'].get('summary') or meta['profile'].get('error')}")
    for err in data["errors"][:10]:
        print(f"error: {err}", file=sys.stderr)
    if data["errors"] and meta.get("router_log_tail"):
        print(f"router output (tail):\n{meta['router_log_tail']}", file=sys.stderr)
    if not args.no_write:
        name = f"{now:%Y-%m-%d}-{meta['host']}" + ("-quick" if args.quick else "")
        paths = report.write(doc, args.out, name, latest=not args.quick)
        print("wrote " + ", ".join(str(p) for p in paths))
    if data["errors"]:
        return 1
    if args.strict and any(r.status == "MISS" for r in rows):
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
