"""The rig the POST /v1/chat/completions tests (and the /v1/models ones) share: a router in front of
several fake vLLM backends on real sockets, with its telemetry recorded so a test can read what the
router concluded about each request.

A test module takes the ``start`` fixture by importing ``start_fixture`` (pytest registers a fixture
found in a test module's namespace); ``start(fakes, **env)`` returns a :class:`Rig`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import anthropic
import openai
import orjson
import pytest
from aiohttp import web
from fake_vllm import FakeVLLM

from router.app import create_app
from router.config import load_settings
from router.keys import TELEMETRY
from router.request_info import RequestInfo

KEY = "sk-test-router"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVQI12P4z8AAAAMBAQAY3Y2wAAAAAElFTkSuQmCC"
HELLO = [{"role": "user", "content": "hello"}]


class Recorder:
    def __init__(self) -> None:
        self.infos: list[RequestInfo] = []

    def record(self, info: RequestInfo) -> None:
        self.infos.append(info)

    async def last(self, route: str = "chat_completions", count: int = 1) -> RequestInfo:
        """The latest record of ``route`` once ``count`` exist: a client can finish reading a stream
        a moment before the router's middleware records it."""
        for _ in range(500):
            found = [i for i in self.infos if i.route == route]
            if len(found) >= count:
                return found[-1]
            await asyncio.sleep(0.01)
        raise AssertionError(f"no telemetry record for {route}")


@dataclass
class Rig:
    url: str
    fakes: dict[str, FakeVLLM]
    servers: dict[str, object]
    telemetry: Recorder
    app: web.Application
    session: aiohttp.ClientSession = field(repr=False)

    def openai(self, **kw: object) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.url + "/v1", api_key=KEY, max_retries=0, **kw)

    def anthropic(self) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(base_url=self.url, api_key=KEY, max_retries=0)

    async def post(self, body: dict | bytes, **headers: str) -> aiohttp.ClientResponse:
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        hdrs = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json", **headers}
        return await self.session.post(self.url + "/v1/chat/completions", data=data, headers=hdrs)

    def counts(self) -> dict[str, int]:
        return {name: len(f.requests) for name, f in self.fakes.items()}


Start = Callable[..., Awaitable[Rig]]


@pytest.fixture(name="start")
async def start_fixture(aiohttp_server) -> Start:  # type: ignore[no-untyped-def]
    sessions: list[aiohttp.ClientSession] = []

    async def go(fakes: dict[str, FakeVLLM] | None = None, **env: str) -> Rig:
        fakes = fakes or {
            "default": FakeVLLM("text-model"),
            "small": FakeVLLM("small-model", max_model_len=4096),
            "vision": FakeVLLM("vision-model", multimodal=True),
        }
        environ = {"API_KEY": KEY, "HEALTH_INTERVAL": "60", "PING_INTERVAL": "5"}
        servers = {}
        for name, fake in fakes.items():
            servers[name] = server = await aiohttp_server(fake.app)
            url = str(server.make_url("/")).rstrip("/")
            if name == "default":
                environ["VLLM_URL"] = url
            elif name == "vision":
                environ |= {"VISION_URL": url, "VISION_MODEL": fake.config.model}
            else:
                environ[f"BACKEND_{name.upper()}_URL"] = url
        environ |= env
        app = create_app(load_settings(environ, env_file=None))
        telemetry = app[TELEMETRY] = Recorder()
        router = await aiohttp_server(app)
        session = aiohttp.ClientSession()
        sessions.append(session)
        rig = Rig(str(router.make_url("/")).rstrip("/"), fakes, servers, telemetry, app, session)
        deadline = time.monotonic() + 5
        while True:  # the start-up probe runs in the background
            async with session.get(rig.url + "/health") as resp:
                if resp.status == 200:
                    return rig
            assert time.monotonic() < deadline, "router never became healthy"
            await asyncio.sleep(0.01)

    yield go
    for s in sessions:
        await s.close()
