"""Readers for the recorded traffic in ../shared/fixtures (real vLLM 0.32 exchanges, real Claude Code
requests), so tests replay what real servers and clients put on the wire instead of hand-made dicts.

vLLM file layout (see fixtures/vllm-0.32/README.md): ``>>> METHOD PATH``, optional ``>>> # note``,
``>>> <request body>`` lines; ``<<< HTTP/1.1 <status> <reason>`` and ``<<< name: value`` header lines;
a blank line; the raw body (SSE byte for byte). The capture script adds a newline after a body that
lacks one, so a body with ``content-length`` is cut to exactly that many bytes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
# The project expects shared material next to the checkout (../shared); some checkouts carry it inside.
SHARED = next((p for p in (_ROOT / "shared", _ROOT.parent / "shared") if p.is_dir()), _ROOT.parent / "shared")
FIXTURES = SHARED / "fixtures"
VLLM_DIR = FIXTURES / "vllm-0.32"
CLAUDE_CODE_VERSIONS = ("2.1.197", "2.1.331")

_REQUEST_LINE = re.compile(rb"^>>> ([A-Z]+) (/\S*)$")
_STATUS_LINE = re.compile(rb"^<<< HTTP/[\d.]+ (\d{3})(?: .*)?$")


def available() -> bool:
    return VLLM_DIR.is_dir()


def vllm_fixture_names() -> list[str]:
    """Every recorded vLLM exchange file, without the .txt suffix, in name order."""
    return sorted(p.stem for p in VLLM_DIR.glob("*.txt"))


def load_exchanges(name: str) -> list[dict]:
    """The exchanges in ``vllm-0.32/<name>.txt`` (``.txt`` optional), in file order.

    Each is ``{"method", "path", "note", "request", "request_raw", "status", "headers", "body"}``:
    ``request`` is the parsed JSON body when it is a JSON object, else None (``request_raw`` keeps the
    bytes, e.g. the deliberately invalid JSON of 60_err_invalid_json); ``headers`` has lower-case names;
    ``body`` is bytes (raw SSE text for streams).
    """
    path = VLLM_DIR / (name if name.endswith(".txt") else f"{name}.txt")
    return parse_exchanges(path.read_bytes())


def load_exchange(name: str) -> dict:
    """The single exchange of a file; fails loudly if the file holds several."""
    exchanges = load_exchanges(name)
    if len(exchanges) != 1:
        raise ValueError(f"{name}: expected one exchange, found {len(exchanges)}")
    return exchanges[0]


def parse_exchanges(data: bytes) -> list[dict]:
    exchanges: list[dict] = []
    pos = 0
    while pos < len(data):
        line, next_pos = _line(data, pos)
        if _REQUEST_LINE.match(line):
            exchange, pos = _parse_one(data, pos)
            exchanges.append(exchange)
        elif line.strip():
            raise ValueError(f"byte {pos}: expected '>>> METHOD PATH', got {line[:80]!r}")
        else:
            pos = next_pos
    return exchanges


def _line(data: bytes, pos: int) -> tuple[bytes, int]:
    end = data.find(b"\n", pos)
    return (data[pos:], len(data)) if end == -1 else (data[pos:end], end + 1)


def _parse_one(data: bytes, pos: int) -> tuple[dict, int]:
    line, pos = _line(data, pos)
    method, path = (g.decode() for g in _REQUEST_LINE.match(line).groups())
    note: str | None = None
    request_lines: list[bytes] = []
    line, after = _line(data, pos)
    while line.startswith(b">>>") and not _REQUEST_LINE.match(line):
        text = line[4:] if line.startswith(b">>> ") else line[3:]
        if text.startswith(b"# ") and note is None and not request_lines:
            note = text[2:].decode()
        else:
            request_lines.append(text)
        pos = after
        line, after = _line(data, pos)
    status_match = _STATUS_LINE.match(line)
    if not status_match:
        raise ValueError(f"byte {pos}: expected '<<< HTTP/1.1 <status>' after {method} {path}")
    status = int(status_match.group(1))
    pos = after
    headers: dict[str, str] = {}
    line, after = _line(data, pos)
    while line.startswith(b"<<< "):
        name, _, value = line[4:].decode().partition(":")
        key, value = name.strip().lower(), value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
        pos = after
        line, after = _line(data, pos)
    if line == b"":
        pos = after  # the blank line between headers and body
    body, pos = _body(data, pos, headers)
    request_raw = b"\n".join(request_lines)
    exchange = {
        "method": method,
        "path": path,
        "note": note,
        "request": _json_object(request_raw),
        "request_raw": request_raw,
        "status": status,
        "headers": headers,
        "body": body,
    }
    return exchange, pos


def _body(data: bytes, pos: int, headers: dict[str, str]) -> tuple[bytes, int]:
    """(body, position after it)."""
    length = headers.get("content-length", "")
    if length.isdigit() and pos + int(length) <= len(data):
        end = pos + int(length)
        return data[pos:end], end
    # No length (SSE, chunked): the body runs to the next request line or the end of the file.
    next_request = re.compile(rb"^>>> [A-Z]+ /", re.M).search(data, pos)
    end = len(data) if next_request is None else next_request.start()
    return data[pos:end], end


def _json_object(raw: bytes) -> dict | None:
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def json_body(exchange: dict) -> dict:
    return json.loads(exchange["body"])


# --- Claude Code request fixtures ------------------------------------------------------------------


def claude_code_files() -> list[Path]:
    return sorted(p for v in CLAUDE_CODE_VERSIONS for p in (FIXTURES / f"claude-code-{v}").glob("*.json"))


def claude_code_requests(path: Path) -> list[dict]:
    """The recorded requests of one Claude Code fixture: ``[{"path", "headers", "body"}]``."""
    return json.loads(path.read_text())
