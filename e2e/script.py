"""The scripted model: which answer the e2e backend gives to a chat request, decided from the request alone.

Every e2e prompt carries a marker ``e2e-scenario:<name>:<nonce>[:<arg>]``. The backend finds it in the
conversation and answers the way a real model would at that point of the scenario (a tool call on the
first turn, text once the tool result is back, an error on the first attempt...). Keeping this pure
(dicts in, plans out) lets the wire code in ``scripted_backend.py`` emit every plan both streamed and
non-streamed, exactly as vLLM shapes them, and lets a scenario be read top to bottom in one place.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

MARKER = re.compile(r"e2e-scenario:(\w+):(\w+)(?::([\w./-]+))?")

# vLLM 0.11-0.15 wording for "prompt + max_tokens does not fit" (the router rewrites it for Claude Code).
OVERFLOW_TEXT = (
    "'max_tokens' or 'max_completion_tokens' is too large: {b}. This model's maximum context length is "
    "{n} tokens and your request has {a} input tokens ({b} > {n} - {a})."
)
# vLLM 0.32 wording for a prompt that alone exceeds the window (fixture 64_err_context_overflow_prompt).
PROMPT_OVERFLOW_TEXT = (
    "This model's maximum context length is {n} tokens. However, your prompt contains at least {m} input "
    "tokens, which exceeds this limit even without any output tokens. Please reduce the length of the input "
    "prompt. (parameter=input_tokens, value={m})"
)
# vLLM 0.32 wording for max_tokens above the model's whole window (fixture 66_err_max_tokens_huge).
MAX_TOKENS_HUGE_TEXT = (
    "max_tokens={b} cannot be greater than max_model_len={n}. Please request fewer output tokens. "
    "(parameter=max_tokens, value={b})"
)
OVERFLOW_ROOM = 12000  # free tokens above the prompt in the overflow scenario
SMALL_MODEL_LEN = 16384  # the vLLM-0.32 overflow scenario's window: below Claude Code's 32000 max_tokens


@dataclass
class ToolCall:
    id: str
    name: str
    args: list[str]  # fragments; joined they are the JSON arguments


@dataclass
class Turn:
    """One assistant answer: reasoning, then text, then tool calls (vLLM's order)."""

    reasoning: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    calls: list[ToolCall] = field(default_factory=list)

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.calls else "stop"


@dataclass
class Failure:
    """An error the backend answers with: before the stream (HTTP status) or inside it after ``partial``."""

    status: int
    message: str
    type: str = "BadRequestError"
    param: str | None = None
    mid_stream: bool = False
    partial: Turn | None = None
    drop: bool = False  # mid-stream: close the connection instead of sending the error frame

    def body(self) -> dict:
        return {
            "error": {"message": self.message, "type": self.type, "param": self.param, "code": self.status}
        }


def count_tokens(req: dict) -> int:
    """A stable stand-in for the chat template's token count: same request, same number, every time."""
    raw = json.dumps([req.get("messages", []), req.get("tools", [])], sort_keys=True)
    return max(1, len(raw) // 4)


def fragments(text: str, size: int = 7) -> list[str]:
    """Cut text into small pieces the way a tokenizer-driven stream delivers it."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def tool_id_for(nonce: str, turn: int) -> str:
    return "chatcmpl-tool-" + hashlib.sha1(f"{nonce}/{turn}".encode()).hexdigest()[:16]


def find_marker(req: dict) -> tuple[str, str, str | None] | None:
    m = MARKER.search(json.dumps(req.get("messages", [])))
    return (m.group(1), m.group(2), m.group(3)) if m else None


def _tool_messages(req: dict) -> list[dict]:
    return [m for m in req.get("messages", []) if m.get("role") == "tool"]


def _json_fragments(args: dict) -> list[str]:
    """Arguments the way vLLM streams them: an opening piece, then small pieces with stray whitespace."""
    raw = json.dumps(args, indent=1)
    return ["{", *fragments(raw[1:], 5)]


class Script:
    """Answers per scenario; remembers how often each scenario nonce was asked (retries differ)."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    def answer(self, req: dict) -> Turn | Failure:
        marker = find_marker(req)
        if marker is None or not req.get("tools"):
            # Background requests (titles, probes) and anything unscripted: a short neutral answer.
            return Turn(text=fragments("e2e background answer"))
        name, nonce, arg = marker
        n = self.calls[nonce] = self.calls.get(nonce, 0) + 1
        handler = getattr(self, f"_{name}", None)
        if handler is None:
            return Failure(400, f"unknown e2e scenario {name!r}")
        return handler(req, nonce, arg, n)

    # --- scenarios ------------------------------------------------------------------------------------

    def _plain(self, req: dict, nonce: str, arg: str | None, n: int) -> Turn:
        return Turn(text=fragments(f"PLAIN_OK {nonce}: the answer is forty-two."))

    def _tool(self, req: dict, nonce: str, arg: str | None, n: int) -> Turn:
        if _tool_messages(req):
            return Turn(text=fragments(f"TOOL_DONE {nonce}"))
        command = f"printf 'made by e2e {nonce}' > {arg}"
        return Turn(
            text=fragments("I will create the file."),
            calls=[
                ToolCall(
                    tool_id_for(nonce, 1),
                    "Bash",
                    _json_fragments({"command": command, "description": "Create the e2e marker file"}),
                )
            ],
        )

    def _parallel(self, req: dict, nonce: str, arg: str | None, n: int) -> Turn:
        """Two calls in one turn (vLLM indexes them 0 and 1); both results must come back, ids matched."""
        if _tool_messages(req):
            return Turn(text=fragments(f"PARALLEL_DONE {nonce}"))
        return Turn(
            text=fragments("Creating both files."),
            calls=[
                ToolCall(
                    tool_id_for(nonce, i),
                    "Bash",
                    _json_fragments(
                        {"command": f"printf {i} > {arg}/part-{i}.txt", "description": f"File {i}"}
                    ),
                )
                for i in (1, 2)
            ],
        )

    def _think(self, req: dict, nonce: str, arg: str | None, n: int) -> Turn:
        if _tool_messages(req):
            return Turn(
                reasoning=fragments(f"The command ran; reporting back for {nonce}."),
                text=fragments(f"THINK_DONE {nonce}"),
            )
        return Turn(
            reasoning=fragments(f"THOUGHT-{nonce}: the user wants an echo, so I run one."),
            calls=[
                ToolCall(
                    tool_id_for(nonce, 1),
                    "Bash",
                    _json_fragments({"command": f"echo think-{nonce}", "description": "Echo a word"}),
                )
            ],
        )

    def _overload_midstream(self, req: dict, nonce: str, arg: str | None, n: int) -> Turn | Failure:
        if n == 1:
            # What vLLM sends when the engine fails after the 200: an error chunk, then [DONE].
            return Failure(
                500,
                "EngineCore encountered an issue. See stack trace for the root cause.",
                type="InternalServerError",
                mid_stream=True,
                partial=Turn(text=fragments("Partial answer that will be ")),
            )
        return Turn(text=fragments(f"OVERLOAD_RECOVERED {nonce} after {n} attempts"))

    def _drop_midstream(self, req: dict, nonce: str, arg: str | None, n: int) -> Turn | Failure:
        if n == 1:  # the engine process dies: the connection closes with no finish chunk and no [DONE]
            partial = Turn(text=fragments("Partial answer that will be "))
            return Failure(500, "connection lost", mid_stream=True, partial=partial, drop=True)
        return Turn(text=fragments(f"DROP_RECOVERED {nonce} after {n} attempts"))

    def _overload_503(self, req: dict, nonce: str, arg: str | None, n: int) -> Turn | Failure:
        if n == 1:
            return Failure(
                503, "Service Unavailable: the engine queue is full", type="ServiceUnavailableError"
            )
        return Turn(text=fragments(f"OVERLOAD_RECOVERED {nonce} after {n} attempts"))

    def _overflow(self, req: dict, nonce: str, arg: str | None, n: int) -> Turn | Failure:
        prompt = count_tokens(req)
        limit = prompt + OVERFLOW_ROOM
        max_tokens = int(req.get("max_tokens") or req.get("max_completion_tokens") or 0)
        if max_tokens > limit - prompt:
            return Failure(400, OVERFLOW_TEXT.format(a=prompt, b=max_tokens, n=limit), param="max_tokens")
        return Turn(text=fragments(f"OVERFLOW_RECOVERED {nonce} max_tokens={max_tokens}"))

    def _overflow_vllm032(self, req: dict, nonce: str, arg: str | None, n: int) -> Turn | Failure:
        # vLLM 0.32 rejects only max_tokens > max_model_len; prompt + max_tokens over it is clamped.
        max_tokens = int(req.get("max_tokens") or req.get("max_completion_tokens") or 0)
        if max_tokens > SMALL_MODEL_LEN:
            text = MAX_TOKENS_HUGE_TEXT.format(b=max_tokens, n=SMALL_MODEL_LEN)
            return Failure(400, text, param="max_tokens")
        return Turn(text=fragments(f"OVERFLOW_RECOVERED {nonce} max_tokens={max_tokens}"))

    def _prompt_overflow(self, req: dict, nonce: str, arg: str | None, n: int) -> Turn | Failure:
        if n == 1:
            limit = count_tokens(req) // 2
            return Failure(400, PROMPT_OVERFLOW_TEXT.format(n=limit, m=limit + 1), param="input_tokens")
        return Turn(text=fragments(f"PROMPT_OVERFLOW_RECOVERED {nonce} after {n} attempts"))

    def _compact(self, req: dict, nonce: str, arg: str | None, n: int) -> Turn | Failure:
        """A tool loop whose second turn no longer fits: Claude Code must compact and go on."""
        if not _tool_messages(req) and n == 1:
            return Turn(
                calls=[
                    ToolCall(
                        tool_id_for(nonce, 1),
                        "Bash",
                        _json_fragments(
                            {"command": f"echo e2e-scenario:compact:{nonce}", "description": "Echo"}
                        ),
                    )
                ],
            )
        if n == 2:
            limit = count_tokens(req) - 10
            return Failure(400, PROMPT_OVERFLOW_TEXT.format(n=limit, m=limit + 1), param="input_tokens")
        # The compaction summary and the turns after it: the marker stays in the conversation this way.
        return Turn(text=fragments(f"COMPACT_RECOVERED e2e-scenario:compact:{nonce} (request {n})"))

    def _toolsearch(self, req: dict, nonce: str, arg: str | None, n: int) -> Turn:
        """2.1.331 hides most tools behind ToolSearch: load one, then it must be offered to the model."""
        names = [t["function"]["name"] for t in req.get("tools", [])]
        if _tool_messages(req):
            state = "LOADED" if "NotebookEdit" in names else "MISSING"
            return Turn(text=fragments(f"TOOLSEARCH_{state} {nonce} tools={','.join(names)}"))
        if "ToolSearch" not in names:
            return Turn(text=fragments(f"NO_TOOLSEARCH {nonce} tools={','.join(names)}"))
        return Turn(
            calls=[
                ToolCall(
                    tool_id_for(nonce, 1),
                    "ToolSearch",
                    _json_fragments({"query": "select:NotebookEdit", "max_results": 5}),
                )
            ],
        )

    def _sdk_tool(self, req: dict, nonce: str, arg: str | None, n: int) -> Turn:
        return Turn(
            text=fragments("Checking the weather."),
            calls=[
                ToolCall(
                    tool_id_for(nonce, 1),
                    "get_weather",
                    _json_fragments({"city": "Paris", "unit": "celsius", "days": [1, 2]}),
                )
            ],
        )
