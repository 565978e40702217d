"""Backend errors become Anthropic errors a client acts on; overflow texts become Claude Code's wording."""

from __future__ import annotations

import re

import orjson
import pytest

from router.errors import (
    STATUS_FOR_TYPE,
    RouterError,
    backend_message,
    error_body,
    error_event,
    from_backend,
    from_stream_error,
    rewrite_overflow,
)

# Claude Code's own patterns (reverse-engineered; see shared/docs/protocol-notes.md B2).
CC_MAX_TOKENS = re.compile(r"input length and `max_tokens` exceed context limit: (\d+) \+ (\d+) > (\d+)")
CC_PROMPT = re.compile(r"prompt is too long: (\d+) tokens > (\d+) maximum")

VLLM_032_PROMPT = (
    "This model's maximum context length is 8192 tokens. However, your prompt contains at least 8193 input "
    "tokens, which exceeds this limit even without any output tokens. Please reduce the length of the input "
    "prompt. (parameter=input_tokens, value=8193)"
)
VLLM_015_MAX_TOKENS = (
    "'max_tokens' or 'max_completion_tokens' is too large: 8000. This model's maximum context length is 8192 "
    "tokens and your request has 1000 input tokens (8000 > 8192 - 1000)."
)
VLLM_010 = (
    "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens (1000 in the "
    "messages, 8000 in the completion). Please reduce the length of the messages or completion."
)


def _env(msg: str, code: int = 400) -> bytes:
    return orjson.dumps({"error": {"message": msg, "type": "BadRequestError", "param": None, "code": code}})


def test_overflow_032_prompt_becomes_prompt_too_long() -> None:
    m = CC_PROMPT.search(rewrite_overflow(VLLM_032_PROMPT) or "")
    assert m and m.groups() == ("8193", "8192")


def test_overflow_015_max_tokens_becomes_claude_code_wording() -> None:
    text = rewrite_overflow(VLLM_015_MAX_TOKENS) or ""
    assert CC_MAX_TOKENS.search(text).groups() == ("1000", "8000", "8192")  # type: ignore[union-attr]
    assert text.endswith("decrease input length or `max_tokens` and try again")


def test_overflow_010_both_shapes() -> None:
    assert CC_MAX_TOKENS.search(rewrite_overflow(VLLM_010) or "").groups() == ("1000", "8000", "8192")  # type: ignore[union-attr]
    prompt_only = VLLM_010.replace("(1000 in the messages", "(9000 in the messages")
    assert CC_PROMPT.search(rewrite_overflow(prompt_only) or "")


def test_overflow_max_tokens_over_model_len() -> None:
    msg = "max_tokens=100000 cannot be greater than max_model_len=8192. Please request fewer output tokens."
    assert CC_MAX_TOKENS.search(rewrite_overflow(msg) or "").groups() == ("0", "100000", "8192")  # type: ignore[union-attr]


def test_unrelated_message_is_not_rewritten() -> None:
    assert rewrite_overflow("max_tokens must be at least 1, got -1.") is None


@pytest.mark.parametrize(
    ("status", "etype", "out_status"),
    [
        (400, "invalid_request_error", 400),
        (422, "invalid_request_error", 400),
        (404, "not_found_error", 404),
        (413, "request_too_large", 413),
        (429, "rate_limit_error", 429),
        (503, "overloaded_error", 529),
        (504, "timeout_error", 504),
        (500, "api_error", 500),
        (502, "api_error", 500),
        (401, "api_error", 502),
    ],
)
def test_from_backend_status_map(status: int, etype: str, out_status: int) -> None:
    err = from_backend(status, _env("boom", status))
    assert (err.type, err.status) == (etype, out_status)
    assert err.type in STATUS_FOR_TYPE


def test_from_backend_rewrites_overflow_and_keeps_message() -> None:
    err = from_backend(400, _env(VLLM_032_PROMPT))
    assert err.message.startswith("prompt is too long: 8193 tokens > 8192 maximum")
    assert (
        from_backend(404, _env("The model `nope` does not exist.")).message
        == "The model `nope` does not exist."
    )


def test_backend_401_does_not_blame_the_client_and_leaks_nothing() -> None:
    err = from_backend(401, b'{"error":"Unauthorized"}')
    assert err.status == 502 and "credentials" in err.message


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"error":{"message":"m1","type":"X"}}', "m1"),
        (b'{"object":"error","message":"m2","type":"X","code":400}', "m2"),
        (b'{"error":"Unauthorized"}', "Unauthorized"),
        (b'{"detail":"Not Found"}', "Not Found"),
        (b"<html><body>502 Bad Gateway</body></html>", "backend returned a non-JSON (HTML) error page"),
        (b"plain text", "plain text"),
        (b"", "backend returned an empty error body"),
    ],
)
def test_backend_message_shapes(body: bytes, expected: str) -> None:
    assert backend_message(body) == expected


def test_error_body_and_event_shapes() -> None:
    assert error_body("api_error", "x", "req_1") == {
        "type": "error",
        "error": {"type": "api_error", "message": "x"},
        "request_id": "req_1",
    }
    frame = error_event("overloaded_error", "Overloaded")
    assert frame.startswith(b"event: error\ndata: ") and frame.endswith(b"\n\n")
    assert orjson.loads(frame.split(b"data: ", 1)[1]) == error_body("overloaded_error", "Overloaded")
    # Claude Code retries a mid-stream error only if its text contains this exact substring.
    assert b'"type":"overloaded_error"' in frame


def test_stream_error_mapping() -> None:
    assert from_stream_error({"error": {"message": "engine dead", "code": 500}})[0] == "overloaded_error"
    etype, msg = from_stream_error({"error": {"message": VLLM_032_PROMPT, "code": 400}})
    assert etype == "invalid_request_error" and msg.startswith("prompt is too long")


def test_router_error_repr_and_invalid() -> None:
    err = RouterError.invalid("messages: required")
    assert (err.status, err.type) == (400, "invalid_request_error")
    assert "messages: required" in repr(err)
