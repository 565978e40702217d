"""Graceful shutdown: on SIGTERM/SIGINT let in-flight requests finish for ``SHUTDOWN_GRACE`` seconds, then
end the rest in a way clients retry: ``overloaded_error`` (an SSE ``error`` event on a stream already
under way, a 529 otherwise).

aiohttp's own ``shutdown_timeout`` is not used for the grace: after it expires aiohttp waits that long
a second time and then closes the sockets under the handlers, so a stream would end with neither
``message_stop`` nor an error event. Instead the drain here runs in ``on_shutdown`` (the listening
sockets are already closed then, and keep-alive connections take no new request): it waits for the
handlers it tracks, cancels those still running at the deadline, and only the cancellations it made
itself are turned into an ``overloaded_error``; a cancellation because the client went away stays one.

Installed by the CLI around the app it serves (process lifecycle belongs to the process), so apps built
by ``create_app`` for tests or embedding shut down the plain aiohttp way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import web

from . import sdnotify
from .errors import RouterError, error_event
from .handlers.chat_completions import error_frame
from .keys import INFO
from .middleware import OPENAI_PATHS, Handler

log = logging.getLogger("router.shutdown")

# How long requests cut at the end of the grace get to write their last event and return.
FINISH_TIMEOUT = 5.0
MESSAGE = "the router is shutting down; retry the request"


class Drain:
    """Tracks the requests being handled, and ends them when the shutdown grace runs out."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.active: dict[asyncio.Task, web.Request] = {}
        self.cut: set[asyncio.Task] = set()  # cancelled by the drain, not by a client that left
        self.streams: dict[asyncio.Task, web.StreamResponse] = {}  # requests whose headers went out
        self.stopping = False
        self._idle = asyncio.Event()
        self._idle.set()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None
        self.active[task] = request
        self._idle.clear()
        try:
            return await handler(request)
        except asyncio.CancelledError:
            if task not in self.cut:
                raise
            task.uncancel()
            return await self._end(task, request)
        finally:
            del self.active[task]
            self.cut.discard(task)
            self.streams.pop(task, None)
            if not self.active:
                self._idle.set()

    async def on_response_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        task = asyncio.current_task()
        if task in self.active:
            self.streams[task] = response

    async def _end(self, task: asyncio.Task, request: web.Request) -> web.StreamResponse:
        info = request.get(INFO)
        if info is not None:
            info.error_type = "overloaded_error"
        response = self.streams.get(task)
        if response is None:  # nothing sent yet: a plain 529, which clients retry
            raise RouterError(529, "overloaded_error", MESSAGE, retry=True)
        if request.path in OPENAI_PATHS:
            frame = error_frame("overloaded_error", MESSAGE, 529)
        else:
            frame = error_event("overloaded_error", MESSAGE)
        with contextlib.suppress(ConnectionError):
            await response.write(frame)
            await response.write_eof()
        return response

    async def on_shutdown(self, _app: web.Application) -> None:
        self.stopping = True
        sdnotify.notify("STOPPING=1")
        if not self.active:
            log.info("shutting down: no request in flight")
            return
        log.info(
            "shutting down: %d request(s) in flight, waiting up to %g s (SHUTDOWN_GRACE)",
            len(self.active),
            self.grace,
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), self.grace)
        if not self.active:
            log.info("shutting down: all requests finished")
            return
        log.warning(
            "SHUTDOWN_GRACE (%g s) is over: ending %d request(s) with overloaded_error",
            self.grace,
            len(self.active),
        )
        for task in list(self.active):
            self.cut.add(task)
            task.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), FINISH_TIMEOUT)


DRAIN = web.AppKey("drain", Drain)


def install(app: web.Application, grace: float) -> Drain:
    """Add the drain to an app that is not running yet (its middleware runs inside the router's)."""
    drain = Drain(grace)
    app[DRAIN] = drain
    app.middlewares.append(drain.middleware)
    app.on_response_prepare.append(drain.on_response_prepare)
    app.on_shutdown.append(drain.on_shutdown)
    return drain
