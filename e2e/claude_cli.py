"""Running the real Claude Code CLI headless, isolated and offline.

A throwaway HOME keeps the developer's ``~/.claude`` (credentials, settings, history) out of the run
and the run out of it; the environment is built from scratch so no ``ANTHROPIC_*`` variable of the
caller leaks in; the non-essential traffic switches keep the CLI off the internet, so the only server it
talks to is the base URL we give it.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

RUN_TIMEOUT = 120  # one CLI run; retries are capped below so a broken router fails well inside it


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> dict:
        """The ``--output-format json`` result object (the last JSON line the CLI printed)."""
        for line in reversed(self.stdout.strip().splitlines()):
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict):
                return data
        raise AssertionError(
            f"no JSON result from the CLI:\nstdout={self.stdout!r}\nstderr={self.stderr[-2000:]!r}"
        )

    def describe(self) -> str:
        head = f"exit {self.returncode} after {self.seconds:.1f}s"
        return f"{head}\nstdout: {self.stdout[-3000:]}\nstderr: {self.stderr[-3000:]}"


def cli_env(home: Path, base_url: str, api_key: str, model: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": api_key,
        "ANTHROPIC_MODEL": model,
        "ANTHROPIC_SMALL_FAST_MODEL": model,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": model,
        "ANTHROPIC_DEFAULT_SONNET_MODEL": model,
        "ANTHROPIC_DEFAULT_OPUS_MODEL": model,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "IS_SANDBOX": "1",  # lets --dangerously-skip-permissions run as root (CI containers)
        "CLAUDE_CODE_MAX_RETRIES": "4",  # enough for the recovery scenarios, short if the router is broken
        "API_TIMEOUT_MS": "60000",
    }


def run_claude(
    binary: Path,
    prompt: str,
    *,
    cwd: Path,
    home: Path,
    base_url: str,
    api_key: str,
    model: str,
    extra_args: tuple[str, ...] = (),
    timeout: float = RUN_TIMEOUT,
) -> CliResult:
    home.mkdir(parents=True, exist_ok=True)
    cwd.mkdir(parents=True, exist_ok=True)
    args = [
        str(binary),
        "-p",
        prompt,
        "--output-format",
        "json",
        "--model",
        model,
        "--max-turns",
        "6",
        "--dangerously-skip-permissions",
        *extra_args,
    ]
    started = time.monotonic()
    proc = subprocess.run(
        args,
        cwd=cwd,
        env=cli_env(home, base_url, api_key, model),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)
