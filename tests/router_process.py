"""The router as a real process (``python -m router``) on a real port, for tests of what only a process
has: signals, exit statuses, the systemd notify socket, the command line."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path

import aiohttp

KEY = "process-test-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_env(**env: str) -> dict[str, str]:
    """The parent's environment minus router settings that could leak in, plus ``env``."""
    base = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "API_KEY", "VLLM_URL")}
    return {**base, "API_KEY": KEY, "HOST": "127.0.0.1", "LOG_LEVEL": "info", **env}


async def run_cli(*args: str, cwd: Path, timeout: float = 30, **env: str) -> tuple[int, str, str]:
    """Run ``python -m router ARGS`` to completion: (exit status, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "router",
        *args,
        cwd=cwd,
        env=process_env(**env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


class RouterProcess:
    def __init__(self, proc: asyncio.subprocess.Process, port: int, log_path: Path) -> None:
        self.proc = proc
        self.port = port
        self.log_path = log_path

    @classmethod
    async def start(cls, tmp_path: Path, backend_url: str, **env: str) -> RouterProcess:
        port = free_port()
        log_path = tmp_path / f"router-{port}.log"
        settings = {"VLLM_URL": backend_url, "PORT": str(port), "HEALTH_INTERVAL": "0.2", **env}
        with log_path.open("wb") as log:  # the child keeps its own descriptor
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "router",
                cwd=tmp_path,  # no stray .env from the developer's checkout
                env=process_env(**settings),
                stdout=log,
                stderr=log,
            )
        return cls(proc, port, log_path)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text()

    async def wait_healthy(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while True:
                if self.proc.returncode is not None:
                    raise AssertionError(f"router exited with {self.proc.returncode}:\n{self.log()}")
                try:
                    async with session.get(self.url + "/health") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientConnectionError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"router not healthy after {timeout} s:\n{self.log()}")
                await asyncio.sleep(0.05)

    def send(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    async def wait(self, timeout: float) -> int:
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"router still running after {timeout} s:\n{self.log()}") from None

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


class Spawner:
    """Starts router processes and kills whichever are still running when the test ends."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.procs: list[RouterProcess] = []

    async def start(self, backend_url: str, **env: str) -> RouterProcess:
        proc = await RouterProcess.start(self.tmp_path, backend_url, **env)
        self.procs.append(proc)
        return proc

    async def __aenter__(self) -> Spawner:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        for proc in self.procs:
            await proc.kill()
