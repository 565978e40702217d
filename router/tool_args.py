"""Turn the ``arguments`` text a model wrote for a tool call into the ``input`` object Anthropic requires.

Small models and truncated generations produce arguments that are not a JSON object: trailing garbage
(``{"a": 1}}</tool_call>``), text cut off by ``max_tokens`` (``{"cmd": "ls -l``), Python-style dicts
(``{'a': True}``) or a bare number. vLLM itself answers such output with a 500 (vLLM #48273), and a proxy
that returns ``{}`` makes Claude Code fail its required-field check and loop. So this module repairs what
is repairable and otherwise keeps the model's text visible as ``{"_raw_arguments": <raw text>}``: the
client's tool validation then reports the bad input back to the model, which can correct itself.
"""

from __future__ import annotations

import ast
import json
from collections import deque
from typing import Any

import orjson

RAW_ARGUMENTS_KEY = "_raw_arguments"

# Repairing walks back over candidate cut points; bound the work so a megabyte of garbage stays cheap.
_MAX_CUT_ATTEMPTS = 48
# orjson refuses nesting deeper than 1024; cut points deeper than this are not worth trying.
_MAX_DEPTH = 512
_MAX_LITERAL_EVAL_CHARS = 200_000

_decoder = json.JSONDecoder()

_Stack = tuple[str, "_Stack"] | None


def parse_tool_arguments(raw: Any) -> dict:
    """The tool ``input`` object for ``raw`` arguments; never raises.

    Shapes returned, in order of preference:
    - the parsed object when ``raw`` is a JSON object (key order kept);
    - a repaired object (trailing garbage dropped, truncated strings/containers closed, Python literals);
    - ``{}`` for empty arguments (a call without parameters);
    - ``{"_raw_arguments": raw}`` when nothing above works, including valid JSON that is not an object.
    """
    if isinstance(raw, dict):
        return raw
    if raw is None:
        return {}
    if not isinstance(raw, str):
        try:
            return {RAW_ARGUMENTS_KEY: orjson.dumps(raw, default=str).decode()}
        except TypeError:  # e.g. an integer beyond 64 bits
            return {RAW_ARGUMENTS_KEY: repr(raw)}
    text = raw.strip()
    if not text:
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    else:
        obj = _as_object(value)
        return obj if obj is not None else {RAW_ARGUMENTS_KEY: raw}
    repaired = _repair(_strip_fence(text))
    return repaired if repaired is not None else {RAW_ARGUMENTS_KEY: raw}


def _as_object(value: Any) -> dict | None:
    if isinstance(value, dict):
        return value
    # Double-encoded arguments ("{\"a\": 1}") are a common small-model slip.
    if isinstance(value, str):
        try:
            inner = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
        return inner if isinstance(inner, dict) else None
    return None


def _strip_fence(text: str) -> str:
    """Drop a Markdown code fence some models wrap around JSON."""
    if text.startswith("```"):
        text = text[3:]
        if text.startswith("json"):
            text = text[4:]
        end = text.rfind("```")
        if end != -1:
            text = text[:end]
        text = text.strip()
    return text


def _repair(text: str) -> dict | None:
    start = text.find("{")
    if start == -1:
        return None
    body = text[start:]
    # Trailing garbage after a complete object: keep the object.
    try:
        value, _ = _decoder.raw_decode(body)
    except (json.JSONDecodeError, RecursionError):
        pass
    else:
        if isinstance(value, dict):
            return value
    if len(body) <= _MAX_LITERAL_EVAL_CHARS:
        literal = _python_literal(body)
        if literal is not None:
            return literal
    return _close_truncated(body)


def _python_literal(text: str) -> dict | None:
    """A Python dict literal (single quotes, True/None) that is also representable as JSON."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    try:
        return orjson.loads(orjson.dumps(value))
    except (TypeError, orjson.JSONEncodeError):
        return None


def _close_truncated(text: str) -> dict | None:
    """Complete JSON that stops early (``max_tokens``): close the open string and containers.

    The first candidate keeps everything, closing an open string, so a cut-off ``"command": "ls -l``
    survives as ``"ls -l"``. If that does not parse (the cut fell inside a key, after a colon...), fall
    back to the last points where a value was complete and close the containers open there.
    """
    # The open containers form a linked stack (closer, parent), so remembering the stack at a cut point
    # costs O(1) however deep the nesting is; closers are only spelled out for candidates tried.
    stack: _Stack = None
    depth = 0
    cuts: deque[tuple[int, _Stack]] = deque(maxlen=_MAX_CUT_ATTEMPTS)
    in_string = escaped = string_is_key = False
    for i, ch in enumerate(text):
        cut = False
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
                cut = not string_is_key
        elif ch == '"':
            in_string = True
            # A string right after "{" or "," inside an object is a key; cutting after it is useless.
            string_is_key = stack is not None and stack[0] == "}" and _expects_key(text, i)
        elif ch in "{[":
            stack, depth, cut = ("}" if ch == "{" else "]", stack), depth + 1, True
        elif ch in "}]":
            if stack is None or stack[0] != ch:
                break  # unbalanced: nothing after this point can be trusted
            stack, depth, cut = stack[1], depth - 1, True
            if stack is None:
                break
        else:
            # the end of a number or literal
            cut = ch.isalnum() and (i + 1 == len(text) or (not text[i + 1].isalnum() and text[i + 1] != "."))
        if cut and depth <= _MAX_DEPTH:
            cuts.append((i + 1, stack))
    candidates: list[str] = []
    if depth <= _MAX_DEPTH:
        if in_string:
            tail = text[:-1] if escaped else text
            candidates.append(tail + '"' + _closers(stack))
        elif stack is not None:
            candidates.append(text.rstrip().rstrip(",:") + _closers(stack))
    candidates.extend(text[:end] + _closers(at) for end, at in reversed(cuts))
    for candidate in candidates:
        try:
            value = orjson.loads(candidate)
        except orjson.JSONDecodeError:
            continue
        # An empty object means the cut fell inside the first key: the raw text says more than {}.
        if isinstance(value, dict) and value:
            return value
    return None


def _closers(stack: _Stack) -> str:
    closers = []
    while stack is not None:
        closers.append(stack[0])
        stack = stack[1]
    return "".join(closers)


def _expects_key(text: str, quote_at: int) -> bool:
    j = quote_at - 1
    while j >= 0 and text[j] in " \t\r\n":
        j -= 1
    return j >= 0 and text[j] in "{,"
