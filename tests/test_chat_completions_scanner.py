"""The pass-through's stream scanner on its own (router/handlers/chat_completions.py): the bytes go on
unchanged however the stream is cut, while usage, finish reason, first-token time and errors are read
from only the frames that need parsing."""

from __future__ import annotations

import orjson
import pytest

from router.handlers.chat_completions import StreamScanner


def _frames(*objs: dict | str) -> list[bytes]:
    return [b"data: " + (o.encode() if isinstance(o, str) else orjson.dumps(o)) + b"\n\n" for o in objs]


ROLE = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
TOKEN = {"choices": [{"index": 0, "delta": {"content": 'hi "usage": {'}, "finish_reason": None}]}
LAST = {"choices": [{"index": 0, "delta": {"content": "!"}, "finish_reason": "length"}]}
USAGE = {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}}
STREAM = _frames(ROLE, TOKEN, LAST, USAGE, "[DONE]")


@pytest.mark.parametrize("keep_usage", [True, False])
def test_scanner_gives_the_same_bytes_however_the_stream_is_cut(keep_usage: bool) -> None:
    data = b"".join(STREAM)
    expected = data if keep_usage else data.replace(STREAM[3], b"")
    for size in [*range(1, 40), 97, 250, len(data)]:
        scanner = StreamScanner(keep_usage, clock=lambda: 1.0)
        out = b"".join(scanner.feed(data[i : i + size]) for i in range(0, len(data), size)) + scanner.flush()
        assert out == expected, size
        assert scanner.usage == USAGE["usage"] and scanner.finish_reason == "length"
        assert scanner.done and scanner.first_token_at == 1.0


def test_scanner_first_token_time_is_the_first_non_empty_delta() -> None:
    times = iter([1.0, 2.0, 3.0])
    scanner = StreamScanner(True, clock=lambda: next(times))
    scanner.feed(STREAM[0])
    assert scanner.first_token_at is None
    scanner.feed(b"".join(STREAM[1:]))
    assert scanner.first_token_at == 1.0


def test_scanner_handles_crlf_and_multiline_frames() -> None:
    usage = orjson.dumps(USAGE)
    data = (
        b"data: "
        + orjson.dumps(ROLE)
        + b"\r\n\r\n"
        + b": comment\r\ndata: "
        + usage
        + b"\r\n\r\ndata: [DONE]\r\n\r\n"
    )
    scanner = StreamScanner(keep_usage=False)
    assert scanner.feed(data) == data.replace(b": comment\r\ndata: " + usage + b"\r\n\r\n", b"")
    assert scanner.usage == USAGE["usage"] and scanner.done


def test_scanner_flush_keeps_a_whole_last_frame_and_drops_a_cut_one() -> None:
    scanner = StreamScanner(True)
    assert scanner.feed(STREAM[0] + b"data: [DONE]") == STREAM[0]
    assert scanner.flush() == b"data: [DONE]\n\n" and scanner.done
    scanner = StreamScanner(True)
    assert scanner.feed(STREAM[0] + STREAM[1][:20]) == STREAM[0]
    assert scanner.flush() == b"" and not scanner.done


def test_scanner_records_error_frames_and_keeps_them() -> None:
    frame = (
        b'data: {"error": {"message": "boom", "type": "InternalServerError", "param": null, "code": 500}}\n\n'
    )
    scanner = StreamScanner(keep_usage=False)
    assert scanner.feed(STREAM[0] + STREAM[1] + frame) == STREAM[0] + STREAM[1] + frame
    assert scanner.error is not None and scanner.error["error"]["message"] == "boom"


def test_scanner_only_parses_frames_that_need_it() -> None:
    # After the first token, a frame whose bytes show no usage/finish_reason/error is not parsed at all:
    # broken JSON there passes through without being noticed.
    scanner = StreamScanner(True)
    scanner.feed(STREAM[0] + STREAM[1])
    assert scanner.feed(b"data: {broken\n\n") == b"data: {broken\n\n"
    assert scanner.finish_reason is None and scanner.usage is None
