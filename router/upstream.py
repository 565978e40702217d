"""The HTTP client side: one pooled ``ClientSession`` for all backends.

Only the backend's own configured key is ever sent upstream; nothing the client sent in its headers
is forwarded (no client credentials, no hop-by-hop headers).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp

from .backends import Backend, Replica
from .config import Settings
from .errors import RouterError
from .metrics import public_url


class Upstream:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.session: aiohttp.ClientSession | None = None
        self._headers: dict[tuple[str, str], dict[str, str]] = {}
        # sock_read bounds silence between two reads: the first token of a long prefill included.
        self._timeout = aiohttp.ClientTimeout(
            total=settings.request_timeout,
            sock_connect=settings.connect_timeout,
            sock_read=settings.idle_timeout,
        )

    async def start(self) -> None:
        # Idle connections are dropped before uvicorn (vLLM's server) would close them at 5 s, so a
        # pooled connection is rarely stale when reused.
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=4, enable_cleanup_closed=True)
        self.session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None),
            auto_decompress=True,
            skip_auto_headers=("User-Agent",),
        )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    def headers(self, backend: Backend, accept: str = "application/json") -> dict[str, str]:
        """The backend's request headers (built once per backend and Accept, then reused)."""
        key = (backend.name, accept)
        headers = self._headers.get(key)
        if headers is None:
            headers = {"Content-Type": "application/json", "Accept": accept, "User-Agent": "anthropic-router"}
            if backend.config.api_key:
                headers["Authorization"] = f"Bearer {backend.config.api_key}"
            self._headers[key] = headers
        return headers

    @contextlib.asynccontextmanager
    async def post(
        self,
        backend: Backend,
        path: str,
        body: bytes,
        *,
        stream: bool = False,
        affinity: str | None = None,
    ) -> AsyncIterator[tuple[aiohttp.ClientResponse, Replica]]:
        """POST ``body`` to a replica of ``backend``; retry once on another replica if it refused us.

        A connection failure is retried only before any byte reached the client, which is always true
        here: the caller has not written anything until this yields.
        """
        assert self.session is not None
        tried: list[Replica] = []
        stale_retry = True
        accept = "text/event-stream" if stream else "application/json"
        while True:
            replica = backend.pick(affinity, exclude=tried)
            tried.append(replica)
            replica.outstanding += 1
            try:
                try:
                    resp = await self.session.post(
                        replica.url + path,
                        data=body,
                        headers=self.headers(backend, accept),
                        timeout=self._timeout,
                    )
                except (aiohttp.ServerDisconnectedError, aiohttp.ClientConnectorError) as exc:
                    disconnected = isinstance(exc, aiohttp.ServerDisconnectedError)
                    if disconnected and stale_retry:
                        # Most often a pooled keep-alive connection the backend had just closed (uvicorn
                        # drops idle ones after 5 s): not a sign the replica is down. Send once more.
                        stale_retry = False
                        tried.pop()
                        continue
                    replica.mark_down("server disconnected" if disconnected else type(exc).__name__)
                    if len(tried) < 2 and len(backend.replicas) > 1 and backend.healthy:
                        continue
                    what = "closed the connection" if disconnected else "is unreachable"
                    raise RouterError(
                        502, "api_error", f"backend {backend.name} at {public_url(replica.url)} {what}"
                    ) from None
                except TimeoutError:
                    raise RouterError(
                        504,
                        "timeout_error",
                        f"backend {backend.name} at {public_url(replica.url)} did not answer in time",
                    ) from None
                except aiohttp.ClientError as exc:
                    raise RouterError(
                        502,
                        "api_error",
                        f"backend {backend.name} at {public_url(replica.url)} failed: {type(exc).__name__}",
                    ) from None
                try:
                    yield resp, replica
                finally:
                    # close(), not release(): an unfinished body must drop the connection so vLLM aborts
                    # the generation instead of computing tokens nobody will read.
                    if resp.content.is_eof():
                        resp.release()
                    else:
                        resp.close()
                return
            finally:
                replica.outstanding -= 1


async def read_body(resp: aiohttp.ClientResponse, backend: Backend) -> bytes:
    """Read a whole (non-streaming) backend body, turning transport failures into Anthropic errors."""
    try:
        return await resp.read()
    except TimeoutError:
        raise RouterError(504, "timeout_error", f"backend {backend.name} timed out") from None
    except (aiohttp.ClientError, asyncio.IncompleteReadError) as exc:
        raise RouterError(
            502, "api_error", f"backend {backend.name} connection failed: {type(exc).__name__}"
        ) from None
