"""Anthropic-shaped errors, and the mapping from what a backend answers to what a client can act on.

Clients decide what to do from the error *type* and HTTP status (the SDKs pick an exception class and a
retry policy from them; Claude Code parses the context-overflow wording to lower ``max_tokens``), so
every failure leaves the router in this shape, whatever the backend said.
"""

from __future__ import annotations

import re

import orjson

# Anthropic's status for each error type (https://docs.anthropic.com/en/api/errors).
STATUS_FOR_TYPE: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


class RouterError(Exception):
    """A failure that ends a request with a specific Anthropic error type and HTTP status."""

    def __init__(self, status: int, type: str, message: str, *, retry: bool | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.type = type
        self.message = message
        # None: let the client apply its default policy; True/False become ``x-should-retry``.
        self.retry = retry

    @classmethod
    def invalid(cls, message: str) -> RouterError:
        return cls(400, "invalid_request_error", message)

    def body(self, request_id: str | None = None) -> dict:
        return error_body(self.type, self.message, request_id)

    def __repr__(self) -> str:
        return f"RouterError({self.status}, {self.type!r}, {self.message!r})"


def error_body(type: str, message: str, request_id: str | None = None) -> dict:
    body: dict = {"type": "error", "error": {"type": type, "message": message}}
    if request_id:
        body["request_id"] = request_id
    return body


def error_event(type: str, message: str) -> bytes:
    """An SSE error frame; the ``event:`` line is what SDKs dispatch on, so it is never omitted."""
    return b"event: error\ndata: " + orjson.dumps(error_body(type, message)) + b"\n\n"


# --- backend errors -------------------------------------------------------------------------------

# vLLM <= 0.10: "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens
# (1000 in the messages, 8000 in the completion)."
_OVERFLOW_OLD = re.compile(
    r"maximum context length is (\d+) tokens\. However, you requested \d+ tokens "
    r"\((\d+) in the messages, (\d+) in the completion\)"
)
# vLLM 0.11+: "'max_tokens' or 'max_completion_tokens' is too large: 8000. This model's maximum context
# length is 8192 tokens and your request has 1000 input tokens (8000 > 8192 - 1000)."
_OVERFLOW_MAX_TOKENS = re.compile(
    r"too large: (\d+)\. This model's maximum context length is (\d+) tokens and your request has (\d+) input"
)
# Prompt alone too long: "This model's maximum context length is 8192 tokens. However, your request has
# 9000 input tokens. Please reduce the length of the input messages."
_OVERFLOW_PROMPT = re.compile(
    r"maximum context length is (\d+) tokens\. However, your (?:request has|prompt contains at least) (\d+) input"
)
# vLLM 0.2x+: "max_tokens=100000 cannot be greater than max_model_len=8192." (the prompt size is not given)
_OVERFLOW_MAX_MODEL_LEN = re.compile(r"max_tokens=(\d+) cannot be greater than max_model_len=(\d+)")
_OVERFLOW_PROMPT_ALT = re.compile(
    r"input \(?(\d+) tokens?\)? is longer than the model's context length \((\d+)"
)


def rewrite_overflow(message: str) -> str | None:
    """Reword a vLLM context-overflow message into the Anthropic text Claude Code parses and acts on.

    Claude Code matches ``input length and `max_tokens` exceed context limit: A + B > C`` (it retries
    with a smaller ``max_tokens``) and ``prompt is too long: A tokens > C maximum`` (it compacts).
    """
    if m := _OVERFLOW_MAX_TOKENS.search(message):
        max_tokens, limit, prompt = (int(g) for g in m.groups())
        return _max_tokens_overflow(prompt, max_tokens, limit)
    if m := _OVERFLOW_OLD.search(message):
        limit, prompt, max_tokens = (int(g) for g in m.groups())
        if prompt >= limit:
            return f"prompt is too long: {prompt} tokens > {limit} maximum"
        return _max_tokens_overflow(prompt, max_tokens, limit)
    if m := _OVERFLOW_PROMPT.search(message):
        limit, prompt = (int(g) for g in m.groups())
        return f"prompt is too long: {prompt} tokens > {limit} maximum"
    if m := _OVERFLOW_MAX_MODEL_LEN.search(message):
        max_tokens, limit = (int(g) for g in m.groups())
        return _max_tokens_overflow(0, max_tokens, limit)
    if m := _OVERFLOW_PROMPT_ALT.search(message):
        prompt, limit = (int(g) for g in m.groups())
        return f"prompt is too long: {prompt} tokens > {limit} maximum"
    return None


def _max_tokens_overflow(prompt: int, max_tokens: int, limit: int) -> str:
    return (
        f"input length and `max_tokens` exceed context limit: {prompt} + {max_tokens} > {limit}, "
        "decrease input length or `max_tokens` and try again"
    )


def backend_message(body: bytes) -> str:
    """The human message inside whatever error envelope a backend used (vLLM new/old, plain text)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", "replace").strip()
        if text.lstrip().startswith("<"):
            return "backend returned a non-JSON (HTML) error page"
        return text[:500] or "backend returned an empty error body"
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            msg = err.get("message") or err.get("detail")
            if isinstance(msg, str):
                return msg
            if msg is not None:
                return orjson.dumps(msg).decode()[:500]
        elif isinstance(err, str):
            return err
        if isinstance(data.get("detail"), str):
            return data["detail"]
    return orjson.dumps(data).decode()[:500]


def from_backend(status: int, body: bytes) -> RouterError:
    """Map a backend's HTTP error to the Anthropic type and status a client reacts to correctly."""
    message = backend_message(body)
    if status in (400, 422):
        rewritten = rewrite_overflow(message)
        return RouterError(400, "invalid_request_error", rewritten or message)
    if status == 401 or status == 403:
        # The backend refused *our* key: a router misconfiguration, not the client's fault.
        return RouterError(502, "api_error", f"backend rejected the router's credentials ({status})")
    if status == 404:
        return RouterError(404, "not_found_error", message)
    if status == 413:
        return RouterError(413, "request_too_large", message)
    if status == 429:
        return RouterError(429, "rate_limit_error", message, retry=True)
    if status in (503, 529):
        return RouterError(529, "overloaded_error", message, retry=True)
    if status == 504:
        return RouterError(504, "timeout_error", message, retry=True)
    if 400 <= status < 500:
        return RouterError(400, "invalid_request_error", message)
    return RouterError(500, "api_error", message)


def from_stream_error(payload: dict) -> tuple[str, str]:
    """(type, message) for an ``{"error": ...}`` frame a backend sent mid-stream.

    A mid-stream error is retried by Claude Code only when its type is ``overloaded_error``; 5xx-class
    failures (engine dead, aborted) are transient from the client's point of view, so they map to it.
    """
    err = payload.get("error", payload)
    if isinstance(err, dict):
        message = str(err.get("message") or "backend error")
        code = err.get("code")
    else:
        message, code = str(err), None
    if isinstance(code, int) and 400 <= code < 500 and code not in (408, 429):
        return "invalid_request_error", rewrite_overflow(message) or message
    return "overloaded_error", message
