"""``POST /v1/messages/count_tokens``: the exact prompt size, from the backend's own tokenizer.

Claude Code decides when to compact a conversation from this number, so it must match what
``/v1/messages`` will cost: the request is translated by the very same ``to_openai`` call with the same
options (system prompt, tools, tool results, thinking switch and prefill all render as they will for
generation), and vLLM's ``POST /tokenize`` applies the model's chat template to it.

Failure is never a fake count: Claude Code trusts a ``200 {"input_tokens": 0}`` (auto-compaction then
never fires) but falls back to its own estimate on any non-2xx. So a backend that is down, starting or
failing answers an Anthropic 5xx. Only a backend that has no ``/tokenize`` at all (an OpenAI-compatible
server that is not vLLM: 404/405/501 without vLLM's error envelope, or a 200 without ``count``) gets an
estimate: ``ceil(len(JSON of messages + tools) / 4)``, at least 1, logged once per backend and marked
with ``x-router-token-count: estimated`` (``exact`` otherwise).

These requests consume no tokens, so telemetry records them without adding to the token totals.
"""

from __future__ import annotations

import logging
import math

import orjson
from aiohttp import web

from ..backends import Backend
from ..errors import RouterError, from_backend
from ..keys import INFO, UPSTREAM
from ..middleware import json_response
from ..request_info import RequestInfo
from ..translate_request import has_image, to_openai
from ..upstream import read_body
from .common import pick_backend, read_json, router_headers
from .messages import translate_options

log = logging.getLogger("router.count_tokens")

TOKENIZE_PATH = "/tokenize"  # vLLM mounts it at the root, not under /v1
CHARS_PER_TOKEN = 4
# Fields of the translated request that change the rendered prompt; everything else (sampling,
# max_tokens, stream options) does not.
_PROMPT_FIELDS = (
    "messages",
    "tools",
    "chat_template_kwargs",
    "add_generation_prompt",
    "continue_final_message",
)
# Backends already reported as estimated, per app (a set of backend names).
ESTIMATED = web.AppKey("count_tokens_estimated", set)


async def count_tokens(request: web.Request) -> web.Response:
    info: RequestInfo = request[INFO]
    info.route = "count_tokens"
    body = await read_json(request)
    info.stream = False
    backend = pick_backend(request, body, has_image=has_image(body))
    # count_tokens takes no max_tokens (and no stream); to_openai requires the one and must not see the other.
    req = {k: v for k, v in body.items() if k not in ("max_tokens", "stream")}
    req["max_tokens"] = 1
    payload = to_openai(req, backend.model, translate_options(request))
    tokenize = {"model": payload["model"], "add_generation_prompt": True}
    tokenize.update((k, payload[k]) for k in _PROMPT_FIELDS if k in payload)
    count = await _tokenize(request, backend, tokenize)
    headers = router_headers(info)
    if count is None:
        count = estimate(tokenize)
        headers["x-router-token-count"] = "estimated"
        estimated: set[str] = request.app[ESTIMATED]
        if backend.name not in estimated:
            estimated.add(backend.name)
            log.warning(
                "backend %s has no /tokenize (not vLLM?): count_tokens answers estimates (%d chars per token)",
                backend.name,
                CHARS_PER_TOKEN,
            )
    else:
        headers["x-router-token-count"] = "exact"
    return json_response({"input_tokens": count}, headers=headers)


async def _tokenize(request: web.Request, backend: Backend, body: dict) -> int | None:
    """The backend's token count; None when it has no tokenizer endpoint; RouterError when it fails."""
    info: RequestInfo = request[INFO]
    async with request.app[UPSTREAM].post(backend, TOKENIZE_PATH, orjson.dumps(body)) as (resp, replica):
        info.replica = replica.url
        raw = await read_body(resp, backend)
        status = resp.status
    if status in (404, 405, 501) and not _vllm_error(raw):
        return None
    if status != 200:
        err = from_backend(status, raw)
        if err.status == 500:  # the backend failed, not the router: 502, as for an unreachable one
            err = RouterError(
                502, "api_error", f"backend {backend.name} /tokenize failed ({status}): {err.message}"
            )
        raise err
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise RouterError(
            502, "api_error", f"backend {backend.name} /tokenize returned invalid JSON"
        ) from None
    count = data.get("count") if isinstance(data, dict) else None
    if isinstance(count, bool) or not isinstance(count, int):
        return None  # a /tokenize of another kind (llama.cpp's takes "content" and answers tokens only)
    if count < 0:
        raise RouterError(502, "api_error", f"backend {backend.name} /tokenize returned count {count}")
    return count


def _vllm_error(raw: bytes) -> bool:
    """vLLM's own error envelope (e.g. an unknown model), as opposed to a framework's "no such route"."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    return isinstance(data, dict) and isinstance(data.get("error"), dict)


def estimate(tokenize_body: dict) -> int:
    """About four characters of the translated JSON per token; never 0 for a request with content."""
    text = orjson.dumps([tokenize_body.get("messages"), tokenize_body.get("tools")])
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN))
