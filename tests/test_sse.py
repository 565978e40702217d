"""SSEParser: the same payloads however the byte stream is cut and whatever line endings it uses."""

from __future__ import annotations

import pytest
from anthropic._streaming import SSEDecoder
from hypothesis import given, settings
from hypothesis import strategies as st

from router.sse import SSEParser, frame


def parse(*pieces: bytes) -> list[bytes]:
    parser = SSEParser()
    out: list[bytes] = []
    for piece in pieces:
        out += parser.feed(piece)
    return out + parser.flush()


def test_single_frame() -> None:
    parser = SSEParser()
    assert parser.feed(b'data: {"a":1}\n\n') == [b'{"a":1}']
    assert parser.flush() == []


def test_several_frames_in_one_read_come_out_in_order() -> None:
    assert parse(b"data: 1\n\ndata: 2\n\ndata: [DONE]\n\n") == [b"1", b"2", b"[DONE]"]


def test_incomplete_frame_waits_for_its_blank_line() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: hel") == []
    assert parser.feed(b"lo\n") == []
    assert parser.feed(b"\n") == [b"hello"]


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_line_endings(eol: bytes) -> None:
    raw = b"data: a" + eol + eol + b"data: b" + eol + b"data: c" + eol + eol
    assert parse(raw) == [b"a", b"b\nc"]


def test_crlf_split_between_reads_is_one_line_end() -> None:
    # Read as CR + LF (two line ends) the blank line would split "a" and "b" into two events.
    assert parse(b"data: a\r", b"\ndata: b\r\n\r\n") == [b"a\nb"]
    assert parse(b"data: a\r", b"\n", b"\r", b"\n") == [b"a"]


def test_cr_cr_is_two_line_ends() -> None:
    assert parse(b"data: a\r", b"\rdata: b\r\r") == [b"a", b"b"]


def test_comments_and_other_fields_are_ignored() -> None:
    raw = b": keep-alive\n\nevent: chunk\nid: 7\nretry: 100\nfoo: bar\ndata: x\n\n:\n\n"
    assert parse(raw) == [b"x"]


def test_field_value_spacing() -> None:
    assert parse(b"data:x\n\n") == [b"x"]
    assert parse(b"data:  x\n\n") == [b" x"]  # only one leading space belongs to the syntax


def test_events_without_data_are_not_dispatched() -> None:
    assert parse(b"data: \n\n", b"data:\n\n", b"data\n\n", b"event: x\n\n") == []
    assert parse(b"data\ndata\n\n") == [b"\n"]


def test_flush_delivers_a_final_event_without_blank_line() -> None:
    assert parse(b"data: 1\n\ndata: [DONE]") == [b"1", b"[DONE]"]
    assert parse(b"data: [DONE]\n") == [b"[DONE]"]
    assert parse(b"data: [DONE]\r") == [b"[DONE]"]


def test_flush_resets_the_parser() -> None:
    parser = SSEParser()
    parser.feed(b"data: a")
    assert parser.flush() == [b"a"]
    assert parser.flush() == []
    assert parser.feed(b"data: b\n\n") == [b"b"]


def test_frame_has_event_line() -> None:
    assert frame(b"ping", b'{"type":"ping"}') == b'event: ping\ndata: {"type":"ping"}\n\n'


# --- property tests -----------------------------------------------------------------------------------

_text = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=12)
_eol = st.sampled_from([b"\n", b"\r\n", b"\r"])


@st.composite
def sse_streams(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    """(raw stream, the payloads it must yield): events of data lines mixed with lines to ignore.

    One line ending per stream: a CR line end followed by an empty LF-ended line *is* a CRLF.
    """
    eol = draw(_eol)
    raw = b""
    expected: list[bytes] = []
    for _ in range(draw(st.integers(0, 6))):
        values = draw(st.lists(_text.map(str.encode), min_size=0, max_size=3))
        for value in values:
            if draw(st.booleans()):
                raw += b": comment " + draw(_text).encode() + eol
            if draw(st.booleans()):
                raw += b"event: " + draw(_text).encode() + eol
            space = b" " if (value[:1] == b" " or draw(st.booleans())) else b""
            raw += b"data:" + space + value + eol
        raw += eol
        payload = b"\n".join(values)
        if payload:
            expected.append(payload)
    return raw, expected


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@settings(max_examples=150, deadline=None)
@given(sse_streams(), st.lists(st.integers(0, 10_000), max_size=8))
def test_any_split_gives_the_payloads(stream: tuple[bytes, list[bytes]], cuts: list[int]) -> None:
    raw, expected = stream
    assert parse(*_cut(raw, cuts)) == expected


@settings(max_examples=40, deadline=None)
@given(sse_streams())
def test_byte_by_byte(stream: tuple[bytes, list[bytes]]) -> None:
    raw, expected = stream
    assert parse(*(raw[i : i + 1] for i in range(len(raw)))) == expected


@settings(max_examples=60, deadline=None)
@given(sse_streams())
def test_agrees_with_the_anthropic_sdk_decoder(stream: tuple[bytes, list[bytes]]) -> None:
    raw, _ = stream
    sdk = [s.data.encode() for s in SSEDecoder().iter_bytes(iter([raw])) if s.data]
    assert parse(raw) == sdk
