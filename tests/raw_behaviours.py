"""What tests/raw_backend.py answers a chat request with: *behaviours*, and the bytes they write.

A behaviour is an async function given the request's :class:`~raw_backend.Exchange`; it writes whatever
bytes it likes through it (a reset before the status line, an HTML page, garbage SSE, headers that never
end) and may sit silent until the router gives up. The factories here build the usual ones; a test can
write its own. The OpenAI wire shapes follow vLLM's field order, trimmed to what the router reads.

No server here, so the server can take its default behaviour from this module without a cycle
(``Exchange`` is only a type to this module).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from raw_backend import Exchange

DONE = b"data: [DONE]\n\n"
LAST_CHUNK = b"0\r\n\r\n"

Behaviour = Callable[["Exchange"], Awaitable[None]]


# --- OpenAI wire shapes (vLLM's field order, trimmed to what the router reads) -----------------------------


def chunk(
    delta: dict | None = None, *, finish: str | None = None, usage: dict | None = None, choices: bool = True
) -> bytes:
    """One ``data:`` frame of a ``chat.completion.chunk``."""
    body: dict = {"id": "chatcmpl-raw", "object": "chat.completion.chunk", "created": 0, "model": "tiny"}
    body["choices"] = (
        [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish}] if choices else []
    )
    if usage is not None:
        body["usage"] = usage
    return b"data: " + orjson.dumps(body) + b"\n\n"


def usage(prompt: int, completion: int) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def openai_frames(
    texts: Sequence[str], *, finish: str | None = "stop", prompt_tokens: int = 10
) -> list[bytes]:
    """Role chunk, one chunk per text, the ``finish_reason`` chunk and the usage chunk; no ``[DONE]``."""
    frames = [chunk({"role": "assistant", "content": ""})]
    frames += [chunk({"content": t}) for t in texts]
    if finish is not None:
        frames.append(chunk({}, finish=finish))
        frames.append(chunk(usage=usage(prompt_tokens, len(texts)), choices=False))
    return frames


def completion(text: str, prompt_tokens: int = 10) -> bytes:
    """A non-streaming ``chat.completion`` body."""
    message = {"role": "assistant", "content": text}
    return orjson.dumps(
        {
            "id": "chatcmpl-raw",
            "object": "chat.completion",
            "created": 0,
            "model": "tiny",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
            "usage": usage(prompt_tokens, len(text.split())),
        }
    )


# --- HTTP framing -----------------------------------------------------------------------------------------


def response_head(status: int, headers: Iterable[tuple[str, str]] = ()) -> bytes:
    lines = [f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}"]
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


# --- behaviours -------------------------------------------------------------------------------------------


def sse(
    frames: Sequence[bytes],
    *,
    delay_first: float = 0.0,
    delay: float = 0.0,
    end: str = "eof",
    status: int = 200,
    content_type: str = "text/event-stream",
) -> Behaviour:
    """An SSE answer, HTTP-chunked (so keep-alive works), one HTTP chunk per frame.

    ``end``: "eof" (the terminating chunk: a clean end), "fin" (close without it: a cut body), "reset"
    (RST), "hang" (silence until the router leaves).
    """

    async def run(ex: Exchange) -> None:
        await ex.write(ex.head(status, [("Content-Type", content_type), ("Transfer-Encoding", "chunked")]))
        await ex.sleep(delay_first)
        for i, frame in enumerate(frames):
            if i and delay:
                await ex.sleep(delay)
            await ex.write(http_chunk(frame))
        if end == "eof":
            await ex.write(LAST_CHUNK)
        elif end == "fin":
            ex.close()
        elif end == "reset":
            ex.reset()
        else:
            await ex.sleep(math.inf)

    return run


def reply(
    status: int, body: bytes, content_type: str = "application/json", *, delay: float = 0.0
) -> Behaviour:
    """A whole answer with a Content-Length, after ``delay`` (a queued request)."""

    async def run(ex: Exchange) -> None:
        await ex.sleep(delay)
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        await ex.write(ex.head(status, headers) + body)

    return run


def ok(texts: Sequence[str] = ("Hello", " world"), *, delay: float = 0.0) -> Behaviour:
    """A successful answer in the shape the request asked for (streamed or not)."""
    stream_frames = [*openai_frames(texts), DONE]
    body = completion("".join(texts))

    async def run(ex: Exchange) -> None:
        if ex.stream:
            await sse(stream_frames, delay=delay)(ex)
        else:
            await reply(200, body, delay=delay * len(texts))(ex)

    return run


def reset_before_headers() -> Behaviour:
    async def run(ex: Exchange) -> None:
        ex.reset()

    return run


def close_before_headers() -> Behaviour:
    async def run(ex: Exchange) -> None:
        ex.close()

    return run


def stall() -> Behaviour:
    """Accept the request and say nothing, ever (a queue that never drains, a wedged engine)."""

    async def run(ex: Exchange) -> None:
        await ex.sleep(math.inf)

    return run


def endless_headers(interval: float = 0.02) -> Behaviour:
    """A status line, then a new header line every ``interval`` seconds, never the blank line."""

    async def run(ex: Exchange) -> None:
        await ex.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n")
        for i in range(1_000_000):
            await ex.sleep(interval)
            await ex.write(b"X-Still-Thinking-%d: yes\r\n" % i)

    return run


def truncated(body: bytes, declared: int, *, end: str = "reset", status: int = 200) -> Behaviour:
    """A Content-Length of ``declared`` bytes, ``body`` of them, then a reset, a FIN or silence."""

    async def run(ex: Exchange) -> None:
        headers = [("Content-Type", "application/json"), ("Content-Length", str(declared))]
        await ex.write(ex.head(status, headers) + body)
        if end == "reset":
            ex.reset()
        elif end == "fin":
            ex.close()
        else:
            await ex.sleep(math.inf)

    return run


def firehose(frame_text_bytes: int, frames: int) -> Behaviour:
    """Big content frames as fast as the router takes them, then a clean end; ``ex.sent`` shows how far
    it got, which is how a test sees back-pressure (a router that buffered would let it run to the end)."""
    payload = chunk({"content": "x" * frame_text_bytes})

    async def run(ex: Exchange) -> None:
        await ex.write(
            ex.head(200, [("Content-Type", "text/event-stream"), ("Transfer-Encoding", "chunked")])
        )
        await ex.write(http_chunk(chunk({"role": "assistant", "content": ""})))
        piece = http_chunk(payload)
        for _ in range(frames):
            await ex.write(piece)
        tail = chunk({}, finish="stop") + chunk(usage=usage(10, frames), choices=False) + DONE
        await ex.write(http_chunk(tail) + LAST_CHUNK)

    return run
