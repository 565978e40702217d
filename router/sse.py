"""Incremental Server-Sent Events parsing and framing.

The backend's bytes reach us in arbitrary pieces (TCP segments, HTTP chunks, proxies re-chunking), so the
parser must give the same events however the stream is cut: a frame split mid-line, a CRLF split between
two reads, a final event with no closing blank line. Only ``data`` matters to the router; ``event``,
``id``, ``retry`` and comment lines are read past (vLLM sends none of them, other backends do).

The common case, one or more whole ``data: ...\\n\\n`` frames per read, takes a fast path made of a few
``bytes`` operations, because the parser runs once per generated token.
"""

from __future__ import annotations

_LF = b"\n"
_CR = b"\r"
_FRAME_END = b"\n\n"
_DATA = b"data:"
_DATA_SP = b"data: "


class SSEParser:
    """Turns a byte stream into the ``data`` payloads of its events (WHATWG event-stream rules).

    Lines may end in LF, CRLF or CR. A field ``data: x`` contributes ``x`` (one leading space removed);
    an event with several ``data`` lines yields them joined by LF; an event with no data, or only empty
    data, yields nothing, as the spec says it is not dispatched.
    """

    __slots__ = ("_data", "_partial", "_skip_lf")

    def __init__(self) -> None:
        self._partial = b""  # an incomplete last line, LF-normalised
        self._data: list[bytes] = []  # data lines of the event being read
        self._skip_lf = False  # the previous read ended in CR: an LF starting this one completes a CRLF

    def feed(self, data: bytes) -> list[bytes]:
        """Payloads of the events this piece of input completes, in order."""
        if self._skip_lf:
            self._skip_lf = False
            if data[:1] == _LF:
                data = data[1:]
        if _CR in data:
            # Decide now whether a trailing CR may be half of a CRLF, then normalise to LF only.
            self._skip_lf = data[-1:] == _CR
            data = data.replace(b"\r\n", _LF).replace(_CR, _LF)
        if not self._partial and not self._data and data.endswith(_FRAME_END):
            # Fast path: whole one-line "data: ..." frames, the shape of nearly every read from vLLM.
            if data.find(_LF) == len(data) - 2 and data.startswith(_DATA_SP):
                return [data[6:-2]] if len(data) > 8 else []
            fast = _whole_simple_frames(data)
            if fast is not None:
                return fast
        buf = self._partial + data if self._partial else data
        end = buf.rfind(_LF)
        if end < 0:
            self._partial = buf
            return []
        self._partial = buf[end + 1 :]
        return self._lines(buf[:end].split(_LF))

    def flush(self) -> list[bytes]:
        """At end of input: the event still open, if any, even without its closing blank line.

        The spec would drop it; backends that forget the last blank line exist, and losing their final
        ``[DONE]`` or usage frame would turn a complete answer into a truncated one.
        """
        lines = [self._partial, b""] if self._partial else [b""]
        self._partial = b""
        self._skip_lf = False
        return self._lines(lines)

    def _lines(self, lines: list[bytes]) -> list[bytes]:
        out: list[bytes] = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    payload = data[0] if len(data) == 1 else _LF.join(data)
                    if payload:
                        out.append(payload)
                    data = []
            elif line.startswith(_DATA):
                value = line[5:]
                data.append(value[1:] if value[:1] == b" " else value)
            elif line == b"data":  # a field name with no colon has an empty value
                data.append(b"")
            # comments (":..."), event, id, retry and unknown fields carry nothing the router uses
        self._data = data
        return out


def _whole_simple_frames(data: bytes) -> list[bytes] | None:
    """Payloads of ``data`` if it is only whole one-line ``data: ...`` frames, else None (slow path)."""
    out: list[bytes] = []
    for frame in data[:-2].split(_FRAME_END):
        if not frame.startswith(_DATA_SP) or _LF in frame:
            return None
        if len(frame) > 6:
            out.append(frame[6:])
    return out


def frame(event: bytes, data: bytes) -> bytes:
    """One SSE frame with an ``event:`` line: Anthropic SDKs dispatch on it, not on the JSON ``type``."""
    return b"event: " + event + b"\ndata: " + data + b"\n\n"
