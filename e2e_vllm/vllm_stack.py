"""The real-vLLM stack: vllm serve (CPU, tiny model) <- recording tap <- router <- these tests.

Every piece is a separate process on loopback, so the router runs as deployed (``python -m router``,
configured by environment only) and vLLM is the real thing, not our fake. The tap between them is
e2e/recorder.py: it keeps every byte vLLM sent the router, which is what the fake in tests/ must
imitate (tests/fake_vs_real.py compares the two). The native side of the side-by-side talks to vLLM directly.

Processes are stopped by the ids started here (vLLM's EngineCore/Worker children included, found
through /proc), never by name: other vLLM servers may run on the same machine.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
E2E = ROOT / "e2e"
sys.path.insert(0, str(E2E))

# The process helpers the Claude Code e2e stack uses too (e2e/ is not a package).
from stack import free_port, start_listening, start_router  # noqa: E402

OUT = Path(os.environ.get("E2E_VLLM_OUT", ROOT / ".e2e" / "vllm")).resolve()
VENV = os.environ.get("VLLM_VENV", "/tmp/vllmcpu")
MODEL_DIR = os.environ.get("VLLM_TINY_MODEL", "/tmp/tinymodel")
THINK_MODEL_DIR = os.environ.get("VLLM_TINY_MODEL_THINK", "/tmp/tinymodel-think")
SERVED_NAME = "tiny"
CLIENT_MODEL = "claude-sonnet-4-5-20250929"  # what Claude Code would send; the router serves "tiny"
API_KEY = "e2e-vllm-key"
ROUTER_START_TIMEOUT = 60.0
REQUEST_TIMEOUT = 120.0


def vllm_installed() -> bool:
    return os.access(f"{VENV}/bin/vllm", os.X_OK) and Path(MODEL_DIR, "config.json").is_file()


def _children(pid: int) -> list[int]:
    """All descendants of ``pid`` (vLLM's API server spawns EngineCore, which spawns the Worker)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):  # a zombie counts as gone
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def stop_tree(pid: int, grace: float = 20.0) -> None:
    """SIGTERM the API server (it takes its children down), SIGKILL whatever is left after ``grace``."""
    tree = [pid, *_children(pid)]
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(p) for p in tree):
        time.sleep(0.2)
    for p in tree:
        if _alive(p):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    raw: bytes
    seconds: float

    def json(self) -> dict:
        return json.loads(self.raw)


@dataclass
class Stack:
    """One vLLM server and a router in front of it (through the tap)."""

    name: str
    vllm_url: str
    tap_url: str
    router_url: str
    out: Path
    log_dir: Path
    vllm_pid: int
    startup_s: float
    procs: list[subprocess.Popen] = field(default_factory=list)

    def base(self, side: str) -> str:
        return self.router_url if side == "router" else self.vllm_url

    def model(self, side: str) -> str:
        return CLIENT_MODEL if side == "router" else SERVED_NAME

    def post(self, side: str, path: str, body: dict | bytes, query: str = "") -> Response:
        """POST to the router or to vLLM itself; a streamed answer is read to its end as raw bytes."""
        headers = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
        if side == "router":
            headers["x-api-key"] = API_KEY
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return request("POST", self.base(side) + path + query, data, headers)

    def backend_exchanges(self) -> list[dict]:
        """What the router sent vLLM and what vLLM answered, byte for byte (from the tap)."""
        return request("GET", self.tap_url + "/__recorder__/exchanges").json()


def request(
    method: str, url: str, data: bytes | None = None, headers: dict[str, str] | None = None
) -> Response:
    """One HTTP/1.1 exchange read to its end (a stream included), with the stdlib only."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=REQUEST_TIMEOUT)
    t0 = time.monotonic()
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request(method, target, body=data, headers=headers or {})
        resp = conn.getresponse()
        raw = resp.read()
        found = {k.lower(): v for k, v in resp.getheaders()}
        return Response(resp.status, found, raw, time.monotonic() - t0)
    finally:
        conn.close()


@contextlib.contextmanager
def running_stack(name: str, model_dir: str, reasoning: str = "") -> Iterator[Stack]:
    """Start vLLM (serve.sh), the tap and the router; stop them on exit, vLLM last."""
    log_dir = OUT / name
    log_dir.mkdir(parents=True, exist_ok=True)
    for old in log_dir.iterdir():
        if old.is_file():
            old.unlink()
    port = free_port()
    env = os.environ | {
        "PORT": str(port),
        "MODEL": model_dir,
        "NAME": SERVED_NAME,
        "VENV": VENV,
        "LOG": str(log_dir / "vllm.log"),
        "REASONING": reasoning,
    }
    t0 = time.monotonic()
    started = subprocess.run(
        ["bash", str(HERE / "serve.sh")], env=env, capture_output=True, text=True, timeout=300
    )
    if started.returncode != 0:
        raise RuntimeError(f"vllm serve did not start:\n{started.stderr[-3000:]}")
    vllm_pid = int(started.stdout.split()[-1])
    startup = time.monotonic() - t0
    procs: list[subprocess.Popen] = []
    stack: Stack | None = None
    try:
        vllm_url = f"http://127.0.0.1:{port}"
        tap_args = [sys.executable, str(E2E / "recorder.py"), "--target", vllm_url, "--port", "0"]
        tap_args += ["--log", str(log_dir / "backend-exchanges.jsonl")]
        tap, tap_port = start_listening(tap_args, log_dir / "tap.log")
        procs.append(tap)
        router_log = log_dir / "router.log"
        router_env = {
            "API_KEY": API_KEY,
            "VLLM_URL": f"http://127.0.0.1:{tap_port}",
            "VLLM_MODEL": "default",  # discover "tiny" and its max_model_len from /v1/models
            "HEALTH_INTERVAL": "120",  # keep the tap's recording to the scenarios
        }
        router, router_url = start_router(router_env, log_dir, router_log, timeout=ROUTER_START_TIMEOUT)
        procs.append(router)
        stack = Stack(
            name, vllm_url, f"http://127.0.0.1:{tap_port}", router_url, OUT, log_dir, vllm_pid, startup, procs
        )
        yield stack
    finally:
        if stack is not None:
            with contextlib.suppress(Exception):
                (log_dir / "backend-exchanges.json").write_text(
                    json.dumps(stack.backend_exchanges(), indent=1)
                )
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        stop_tree(vllm_pid)
