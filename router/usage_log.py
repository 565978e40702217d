"""The usage log: one JSON line per request, appended off the event loop, replayed at start-up.

Kept apart from the in-memory statistics so the file's concerns (a writer thread, batching, a stalled
disk, a line torn by a crash) stay out of the recorder's hot path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

import orjson

log = logging.getLogger("router.telemetry")


def load_records(lines: Iterable[bytes], add: Callable[[dict[str, Any]], None]) -> tuple[int, int]:
    """Replay usage-log lines into ``add``; returns (restored, skipped). A torn last line is skipped."""
    restored = skipped = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError:
            skipped += 1
            continue
        if not isinstance(rec, dict) or not isinstance(rec.get("route"), str):
            skipped += 1
            continue
        add(rec)
        restored += 1
    return restored, skipped


class UsageLog:
    """Append-only JSON-lines file, written off the event loop by one thread, flushed per batch.

    ``append`` only queues bytes and wakes the writer task; each wake-up writes everything queued in one
    ``write`` + ``flush``, so a line reaches the OS within one loop iteration plus one write, and a burst
    costs one system call. Flushed data survives a router crash or restart (not a power cut: no fsync).
    If the disk stalls, at most ``max_pending`` lines wait; newer ones are dropped and counted.

    At start-up the whole file is replayed (in the writer's thread, before the router listens: several
    seconds per million lines) so ``/stats`` continues where it stopped. One router per file; rotate it
    with ``copytruncate`` (the file is held open in append mode).
    """

    def __init__(self, path: str, max_pending: int = 100_000) -> None:
        self.path = Path(path)
        self.max_pending = max_pending
        self.written = self.dropped = self.failed = 0
        self._pending: list[bytes] = []
        self._file: IO[bytes] | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="usage-log")
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._closing = False

    def restore(self, add: Callable[[dict[str, Any]], None]) -> tuple[int, int]:
        """Blocking: replay the existing file (run it in an executor)."""
        if not self.path.is_file():
            return 0, 0
        with self.path.open("rb") as f:
            return load_records(f, add)

    async def start(self, add: Callable[[dict[str, Any]], None]) -> None:
        """Replay the file into ``add`` (off the loop), then open it for appending."""
        loop = asyncio.get_running_loop()
        t0 = time.monotonic()
        restored, skipped = await loop.run_in_executor(self._executor, self.restore, add)
        if restored or skipped:
            log.info("usage log %s: restored %d requests in %.2f s (%d unreadable lines skipped)",
                     self.path, restored, time.monotonic() - t0, skipped)  # fmt: skip
        self._file = await loop.run_in_executor(self._executor, self._open)
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="usage-log")

    def _open(self) -> IO[bytes]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = self.path.open("ab")
        if f.tell() > 0:
            with self.path.open("rb") as r:
                r.seek(-1, 2)
                if r.read(1) != b"\n":  # a line torn by a crash: do not glue the next record onto it
                    f.write(b"\n")
                    f.flush()
        return f

    def append(self, line: bytes) -> None:
        if self._closing or self._wake is None:
            return
        if len(self._pending) >= self.max_pending:
            if not self.dropped:
                log.error("usage log %s cannot keep up; dropping lines", self.path)
            self.dropped += 1
            return
        self._pending.append(line)
        self._wake.set()

    async def _run(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch, self._pending = self._pending, []
                await loop.run_in_executor(self._executor, self._write, batch)
            if self._closing:
                return

    def _write(self, batch: list[bytes]) -> None:
        assert self._file is not None
        try:
            self._file.write(b"".join(batch))
            self._file.flush()
        except OSError as exc:
            if not self.failed:
                log.error("usage log %s: write failed (%s); these requests are not logged", self.path, exc)
            self.failed += len(batch)
            return
        self.written += len(batch)

    async def close(self) -> None:
        """Write what is queued, then close the file."""
        self._closing = True
        if self._task is not None and self._wake is not None:
            self._wake.set()
            await self._task
        if self._file is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._file.close)
        self._executor.shutdown(wait=True)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "written": self.written,
            "dropped": self.dropped,
            "failed": self.failed,
        }
