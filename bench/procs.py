"""Child processes of the bench (fake backend, router under test) and their CPU and memory from /proc.

CPU and RSS are summed over the process and its descendants, so a router started through a
wrapper (a shell script, ``npx``, a supervisor) is charged for the work its children do.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def usable_cpus() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def pin_self(cpu: int | None) -> bool:
    """Pin this process to one CPU where the OS supports it; False when it could not."""
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        return False
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError:
        return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            out.extend(int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split())
        except OSError:
            continue
    return out


def tree(pid: int) -> list[int]:
    """The process and all its descendants (children links from /proc)."""
    seen, todo = [], [pid]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.append(p)
        todo.extend(_children(p))
    return seen


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process tree, in seconds (fields 14 and 15 of /proc/PID/stat)."""
    total = 0
    for p in tree(pid):
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def system_busy_seconds() -> tuple[float, float]:
    """(user + nice + system, steal) CPU seconds of the whole machine, from /proc/stat.

    irq/softirq are left out on both sides: with IRQ time accounting the kernel charges loopback
    packet processing to softirq rather than to the processes' utime/stime.
    """
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0, 0.0
    ticks = [int(f) for f in fields[:8]] + [0] * 8
    return (ticks[0] + ticks[1] + ticks[2]) / CLK_TCK, ticks[7] / CLK_TCK


def rss_mb(pid: int) -> float:
    """VmRSS of the process tree in MB (10^6 bytes)."""
    kb = 0
    for p in tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    kb += int(line.split()[1])
                    break
        except OSError:
            continue
    return kb * 1024 / 1e6


@dataclass
class Child:
    """A started child process and where its output goes."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    port: int

    @property
    def pid(self) -> int:
        return self.proc.pid

    def tail(self, chars: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the child's own process group (a wrapper's children too), SIGKILL after ``grace``."""
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait()

    def _signal(self, sig: signal.Signals) -> None:
        # start_new_session made the child a group leader: the group holds only what it started
        try:
            os.killpg(self.proc.pid, sig)
        except OSError:
            self.proc.send_signal(sig)


def _preexec(cpu: int | None):  # type: ignore[no-untyped-def]
    if cpu is None:
        return None

    def pin() -> None:
        pin_self(cpu)

    return pin


def spawn(
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    cpu: int | None,
    port: int,
    logdir: Path,
    cwd: Path | None = None,
) -> Child:
    log = logdir / f"{name}.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            preexec_fn=_preexec(cpu),
            start_new_session=True,
            cwd=cwd,
        )
    return Child(name, proc, log, port)


def start_backend(cpu: int | None, logdir: Path, timeout: float = 15.0) -> Child:
    """Start ``bench.backend`` on an OS-chosen port; it prints ``PORT n`` once listening."""
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    argv = [sys.executable, "-m", "bench.backend", "--port", "0"]
    child = spawn("backend", argv, env, cpu, 0, logdir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in child.tail(4000).splitlines():
            if line.startswith("PORT "):
                child.port = int(line.split()[1])
                return child
        if child.proc.poll() is not None:
            break
        time.sleep(0.02)
    child.stop()
    raise RuntimeError(f"fake backend did not start:\n{child.tail()}")


def default_router_cmd() -> list[str]:
    script = Path(sys.executable).parent / "anthropic-router"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "router"]


def router_env(port: int, backend_url: str, api_key: str, model: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("VLLM_", "VISION_", "ROUTE_", "MODEL_MAP"))
    }
    env.update(
        {
            "PORT": str(port),
            "HOST": "127.0.0.1",
            "API_KEY": api_key,
            "VLLM_URL": backend_url,
            "VLLM_MODEL": model,
            "LOG_LEVEL": "warning",
            "TELEMETRY_ENABLED": "false",
        }
    )
    return env


def start_router(
    cmd: str | None, env: Mapping[str, str], cpu: int | None, port: int, logdir: Path, cwd: Path | None
) -> Child:
    """Start the router under test; ``cwd`` an empty directory keeps a developer's ``.env`` out of it."""
    argv = shlex.split(cmd) if cmd else default_router_cmd()
    return spawn("router", argv, env, cpu, port, logdir, cwd)


def make_logdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="bench-"))
