"""Turn recorded Claude Code requests into the structural fixtures in ``tests/fixtures/``.

The router's unit tests replay these without the CLI, so they must keep everything the router reacts
to (paths, headers, field names, block types, ids, ``cache_control``, tool names, schema shapes, enums,
sizes) and nothing that belongs to Anthropic: the CLI's own prompt and tool texts become placeholder
text of the same length. Our own scenario texts (those with the e2e marker) stay as they are.

    python e2e/record_fixture.py .e2e/logs/exchanges.jsonl     # after a `make e2e` run
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "tests" / "fixtures"
PROSE_KEYS = {"text", "description", "content"}
KEPT_PREFIXES = ("x-anthropic-billing-header",)
DROPPED_HEADERS = {"x-api-key", "authorization", "host", "content-length"}
LOREM = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
UA_VERSION = re.compile(r"claude-cli/(\d+\.\d+\.\d+)")
MARKER = re.compile(r"e2e-scenario:(\w+):")


def placeholder(text: str) -> str:
    """Same length, same line breaks (so line-based size effects stay), no original words."""
    out = []
    for i, ch in enumerate(text):
        out.append(ch if ch == "\n" else LOREM[i % len(LOREM)])
    return "".join(out)


def sanitize(obj: object, key: str | None = None) -> object:
    if isinstance(obj, dict):
        return {k: sanitize(v, k) for k, v in obj.items()}
    if isinstance(obj, list):
        return [sanitize(v, key) for v in obj]
    if isinstance(obj, str) and key in PROSE_KEYS:
        if "e2e-scenario:" in obj or obj.startswith(KEPT_PREFIXES):
            return obj
        return placeholder(obj)
    if isinstance(obj, str) and key == "user_id":
        return re.sub(r'("device_id":")([0-9a-f]+)"', lambda m: m.group(1) + "0" * len(m.group(2)) + '"', obj)
    return obj


def _scenario(exchange: dict) -> str | None:
    m = MARKER.search(json.dumps(exchange.get("body")))
    return m.group(1) if m else None


def select(exchanges: list[dict]) -> dict[str, list[dict]]:
    """Per CLI version: the tool loop's two requests, the thinking and ToolSearch loops' second ones."""
    by_version: dict[str, list[dict]] = {}
    for x in exchanges:
        m = UA_VERSION.search(x.get("headers", {}).get("User-Agent", ""))
        if not m or x.get("status") != 200 or not x["path"].startswith("/v1/messages?"):
            continue
        by_version.setdefault(m.group(1), []).append(x)
    out: dict[str, list[dict]] = {}
    for version, calls in by_version.items():
        tool = [x for x in calls if _scenario(x) == "tool"][:2]
        think = [x for x in calls if _scenario(x) == "think"][1:2]
        search = [x for x in calls if _scenario(x) == "toolsearch"][1:2]  # 2.1.331: a tool_reference loaded
        picked = [
            ("tool-loop-first", tool[:1]),
            ("tool-loop-result", tool[1:2]),
            ("thinking-echo", think),
            ("toolsearch-loaded", search),
        ]
        out[version] = [
            {
                "name": name,
                "path": x["path"],
                "headers": {k: v for k, v in x["headers"].items() if k.lower() not in DROPPED_HEADERS},
                "body": sanitize(x["body"]),
            }
            for name, xs in picked
            for x in xs
        ]
    return out


def write(exchanges: list[dict], out_dir: Path = OUT_DIR) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for version, requests in sorted(select(exchanges).items()):
        if len(requests) < 3:
            continue  # a partial run: keep the previous recording
        path = out_dir / f"claude-code-{version}.json"
        path.write_text(json.dumps(requests, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)
    return written


def main() -> None:
    src = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / ".e2e" / "logs" / "exchanges.jsonl")
    exchanges = [json.loads(line) for line in src.read_text().splitlines() if line.strip()]
    for path in write(exchanges):
        print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
