"""Typed keys for the objects that live on the ``Application`` and on each request."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from .config import Settings
from .request_info import RequestInfo
from .translate_request import TranslateOptions

if TYPE_CHECKING:
    from .backends import BackendPool
    from .upstream import Upstream

SETTINGS = web.AppKey("settings", Settings)
UPSTREAM: web.AppKey[Upstream] = web.AppKey("upstream")
BACKENDS: web.AppKey[BackendPool] = web.AppKey("backends")
# The telemetry recorder: anything with ``record(info: RequestInfo) -> None`` that never blocks.
TELEMETRY: web.AppKey[Any] = web.AppKey("telemetry")
TRANSLATE_OPTIONS: web.AppKey[TranslateOptions] = web.AppKey("translate_options")
INFO = web.RequestKey("info", RequestInfo)
