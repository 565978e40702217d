"""The e2e stack: scripted vLLM-like backend <- router <- recording proxy <- real clients.

Each piece is a separate process on loopback, so the router runs exactly as deployed (its own entry
point, configured by environment only). The recording proxy in front keeps what the real clients sent
and what the router answered; tests read both, and the scripted backend's own request list, to check
each hop. Logs land in ``$E2E_DIR/logs`` for post-mortems.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
E2E_DIR = Path(os.environ.get("E2E_DIR", ROOT / ".e2e")).resolve()
NODE_MODULES = E2E_DIR / "node_modules"
LOGS = E2E_DIR / "logs"
VERSIONS = os.environ.get("CLAUDE_CODE_VERSION", "2.1.331").split()
MODEL = "e2e-model"
API_KEY = "e2e-secret-key"
START_TIMEOUT = 30.0

sys.path.insert(0, str(HERE))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def start_listening(args: list[str], log: Path) -> tuple[subprocess.Popen, int]:
    """Start a helper server that prints ``LISTENING <port>`` first (recorder.py, scripted_backend.py);
    the rest of its output goes to log. e2e_vllm starts its recording tap with this too."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log.open("ab"), text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("LISTENING "):
        proc.kill()
        raise RuntimeError(f"{args[1]} did not start: {line!r} (see {log})")
    return proc, int(line.split()[1])


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = START_TIMEOUT) -> None:
    """Wait for a 200 from the router started as ``proc`` (its output in ``log``, shown if it dies or
    never gets there)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"router exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"router not healthy after {timeout}s:\n{log.read_text()[-3000:]}")


def start_router(
    env: dict[str, str], cwd: Path, log: Path, timeout: float = START_TIMEOUT
) -> tuple[subprocess.Popen, str]:
    """``python -m router`` on a free loopback port with ``env`` on top of the common test settings;
    returns the process and its URL once ``/health`` answers 200.

    cwd should be an empty folder (a log folder), so a developer's .env cannot change the router under test.
    """
    port = free_port()
    full_env = {
        "PATH": os.environ.get("PATH", ""),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "LOG_LEVEL": "debug",
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    if os.environ.get("PYTHONPATH"):  # e.g. to run the same checks against another router checkout
        full_env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    router = subprocess.Popen(
        [sys.executable, "-m", "router"],
        env=full_env,
        cwd=cwd,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/health", router, log, timeout)
    except BaseException:
        router.kill()
        raise
    return router, url


@dataclass
class Stack:
    backend_url: str
    router_url: str
    proxy_url: str
    router_log: Path
    procs: list[subprocess.Popen] = field(default_factory=list)

    def backend_requests(self) -> list[dict]:
        return _get_json(self.backend_url + "/_e2e/requests")  # type: ignore[return-value]

    def exchanges(self) -> list[dict]:
        return _get_json(self.proxy_url + "/__recorder__/exchanges")  # type: ignore[return-value]

    def for_nonce(self, nonce: str) -> list[dict]:
        """The chat requests the backend got for one scenario run, in order."""
        from script import find_marker

        out = []
        for r in self.backend_requests():
            if r["path"] == "/v1/chat/completions" and r["body"].get("tools"):
                marker = find_marker(r["body"])
                if marker and marker[1] == nonce:
                    out.append(r)
        return out


@contextlib.contextmanager
def running_stack() -> Iterator[Stack]:
    """Start backend, router and recorder; stop them (in reverse order) on exit."""
    if LOGS.exists():
        shutil.rmtree(LOGS)
    LOGS.mkdir(parents=True)
    procs: list[subprocess.Popen] = []
    try:
        backend, backend_port = start_listening(
            [sys.executable, str(HERE / "scripted_backend.py"), "--port", "0", "--model", MODEL],
            LOGS / "backend.log",
        )
        procs.append(backend)
        router_log = LOGS / "router.log"
        router, router_url = start_router(
            {"API_KEY": API_KEY, "VLLM_URL": f"http://127.0.0.1:{backend_port}", "VLLM_MODEL": MODEL},
            LOGS,
            router_log,
        )
        procs.append(router)
        proxy, proxy_port = start_listening(
            [
                sys.executable,
                str(HERE / "recorder.py"),
                "--target",
                router_url,
                "--port",
                "0",
                "--log",
                str(LOGS / "exchanges.jsonl"),
            ],
            LOGS / "recorder.log",
        )
        procs.append(proxy)
        stack = Stack(
            f"http://127.0.0.1:{backend_port}",
            router_url,
            f"http://127.0.0.1:{proxy_port}",
            router_log,
            procs,
        )
        yield stack
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def claude_binary(version: str) -> Path:
    """The native CLI binary of one pinned version.

    The npm wrapper's postinstall copies the platform binary over ``bin/claude.exe``; using the platform
    package directly works even where npm was told not to run install scripts.
    """
    pkg = NODE_MODULES / f"claude-code-{version}"
    candidates = [
        *sorted((pkg / "node_modules" / "@anthropic-ai").glob("claude-code-*/claude")),
        *sorted((NODE_MODULES / "@anthropic-ai").glob("claude-code-*/claude")),
    ]
    for c in candidates:
        meta = json.loads((c.parent / "package.json").read_text())
        if meta.get("version") == version and os.access(c, os.X_OK):
            return c
    wrapper = pkg / "bin" / "claude.exe"
    if wrapper.exists():
        return wrapper
    pytest.fail(f"Claude Code {version} is not installed in {NODE_MODULES}: run `make e2e` (it runs npm ci)")
