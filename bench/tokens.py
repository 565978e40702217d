"""The deterministic token stream both the fake backend and the load generator know.

The load generator checks every streamed answer against the exact text (or tool input) it should
carry, so a router that drops, duplicates or reorders a delta fails the run instead of merely
looking fast. The vocabulary mixes plain words, digits, JSON escapes (quote, backslash, newline,
tab) and multi-byte UTF-8 so the router's JSON decode/encode does the work real model output asks of it.
"""

from __future__ import annotations

from functools import lru_cache

import orjson

MODEL = "bench-model"
PROMPT_TOKENS = 25
MAX_TOKENS = 8192  # the fake backend clamps longer requests; every scenario stays far below
TOOL_NAME = "write_file"
TOOL_ID = "chatcmpl-tool-bench0000000000001"

VOCAB: tuple[str, ...] = (
    " the",
    "833",
    " world",
    "Arguments",
    " 520",
    '"',
    "\n",
    " café",
    "emperature",
    "\\",
    " {",
    "}",
    "\t",
    " 東京",
    "Assistant",
    " ok",
    ".",
    " 🚀",
    "ing",
    " request",
    ",",
    " data",
    "Path",
    " </",
)


def token(i: int) -> str:
    """Token ``i`` of every answer; a stride coprime to the vocabulary size avoids short cycles."""
    return VOCAB[(i * 7) % len(VOCAB)]


@lru_cache(maxsize=64)
def expected_text(n: int) -> str:
    return "".join(token(i) for i in range(n))


def tool_input(n: int) -> dict[str, str]:
    """The tool input whose JSON is streamed as ``n`` argument fragments."""
    return {"path": "/tmp/bench.txt", "content": expected_text(n)}


@lru_cache(maxsize=64)
def tool_fragments(n: int) -> tuple[str, ...]:
    """Split the tool input's JSON text into ``n`` non-empty fragments (one per generated token).

    Fragments cut through escapes and multi-byte characters' JSON text freely, as vLLM's tool
    parsers do; only their concatenation has to be valid JSON.
    """
    text = orjson.dumps(tool_input(n)).decode()
    n = max(1, min(n, len(text)))
    step, extra = divmod(len(text), n)
    out: list[str] = []
    pos = 0
    for i in range(n):
        size = step + (1 if i < extra else 0)
        out.append(text[pos : pos + size])
        pos += size
    return tuple(out)


def clamp_tokens(requested: object) -> int:
    """Tokens to produce for a request's ``max_tokens``: the bench's knob for answer length."""
    if not isinstance(requested, int) or isinstance(requested, bool) or requested < 1:
        return 16
    return min(requested, MAX_TOKENS)
