"""What the fake vLLM puts on the wire, as pure functions (no aiohttp): vLLM 0.32's validation and
error texts, the token-by-token plan of a scripted reply, and the exact chunk/response shapes.

Every shape here was copied from the recordings in ../shared/fixtures/vllm-0.32 (key order included,
since the pydantic models vLLM dumps keep field order), and tests/test_fake_vllm.py replays those
recordings against the fake to keep it that way.

Token counting is simple but consistent: :func:`tokenize` splits text into words, 1-3 digit groups,
single punctuation marks and whitespace runs, and a chat prompt counts the tokens of
:func:`render_prompt` (``orjson.dumps(tools)`` + ``orjson.dumps(messages)`` + a generation prompt),
so ``POST /tokenize`` and ``usage.prompt_tokens`` agree exactly, as they do on a real vLLM.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import orjson

FINGERPRINT = "vllm-0.32.0-4ff46be8"
GENERATION_PROMPT = "<|im_start|>assistant\n"
EMPTY_CONVERSATION = "Cannot apply chat template to an empty conversation. Provide at least one message."
_TOKEN_RE = re.compile(r"\s*[A-Za-z]+|\s*\d{1,3}|\s*[^\sA-Za-z\d]|\s+")
_FLOAT_FIELDS = ("temperature", "top_p", "presence_penalty", "frequency_penalty", "repetition_penalty")
_INT_FIELDS = ("max_tokens", "max_completion_tokens", "n", "seed", "top_k")
_ERROR_TYPES = {400: "BadRequestError", 404: "NotFoundError", 422: "UnprocessableEntityError"}


def tokenize(text: str) -> list[str]:
    """Lossless split into tokens: ``"".join(tokenize(t)) == t``."""
    return _TOKEN_RE.findall(text)


def token_id(token: str) -> int:
    return zlib.crc32(token.encode()) % 150_000


def render_prompt(messages: Any, tools: Any = None, add_generation_prompt: bool = True) -> str:
    """The fake's "chat template": the text whose tokens are the prompt tokens."""
    text = (orjson.dumps(tools).decode() if tools else "") + orjson.dumps(messages).decode()
    return text + GENERATION_PROMPT if add_generation_prompt else text


def count_prompt_tokens(messages: Any, tools: Any = None, add_generation_prompt: bool = True) -> int:
    return len(tokenize(render_prompt(messages, tools, add_generation_prompt)))


def prompt_overflow_message(max_model_len: int) -> str:
    """vLLM 0.32 (fixture 64); it tokenizes at most max_model_len + 1 tokens, hence "at least"."""
    n = max_model_len + 1
    return (
        f"This model's maximum context length is {max_model_len} tokens. However, your prompt contains at "
        f"least {n} input tokens, which exceeds this limit even without any output tokens. Please reduce "
        f"the length of the input prompt. (parameter=input_tokens, value={n})"
    )


def max_tokens_overflow_message(max_tokens: int, max_model_len: int, prompt_tokens: int) -> str:
    """vLLM 0.11-0.15 ``_validate_input`` (0.32 clamps max_tokens instead, fixture 65b)."""
    return (
        f"'max_tokens' or 'max_completion_tokens' is too large: {max_tokens}. This model's maximum context "
        f"length is {max_model_len} tokens and your request has {prompt_tokens} input tokens ({max_tokens} "
        f"> {max_model_len} - {prompt_tokens}). (parameter=max_tokens, value={max_tokens})"
    )


def error_type(status: int) -> str:
    """vLLM's names: BadRequestError, NotFoundError, InternalServerError, NotImplementedError..."""
    name = _ERROR_TYPES.get(status) or HTTPStatus(status).phrase.replace(" ", "")
    return name if name.endswith("Error") else name + "Error"


def error_envelope(message: str, type: str, code: int, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


class VLLMError(Exception):
    """A request vLLM refuses before generating: HTTP ``status`` with the JSON ``body``."""

    def __init__(self, message: str, status: int = 400, param: str | None = None, type: str | None = None):
        super().__init__(message)
        self.status = status
        self.body = error_envelope(message, type or error_type(status), status, param)


def _pydantic(err: dict, param: str | None) -> VLLMError:
    """FastAPI validation errors as vLLM words them: type "Bad Request", the error dict's repr."""
    return VLLMError(f"1 validation error:\n  {err}", 400, param, "Bad Request")


def parse_json_body(content_type: str, raw: bytes) -> dict:
    if content_type.split(";", 1)[0].strip().lower() != "application/json":
        message = "1 validation error:\n  Unsupported Media Type: Only 'application/json' is allowed"
        raise VLLMError(message, 400, None, "Bad Request")
    try:
        body = json.loads(raw)
    except ValueError as exc:
        pos = getattr(exc, "pos", 0)
        error = {"type": "json_invalid", "loc": f"body.{pos}", "msg": "JSON decode error"}
        error |= {"input": "<dict of 0 items>", "ctx": {"error": getattr(exc, "msg", str(exc))}}
        raise _pydantic(error, f"body.{pos}") from None
    if not isinstance(body, dict):
        error = {"type": "model_attributes_type", "loc": "body", "msg": "Input should be a valid dictionary"}
        raise _pydantic(error | {"input": body}, "body")
    return body


def check_fields(body: dict, required: str | None) -> None:
    """The few pydantic field checks worth imitating: a missing field, non-numbers, non-integers."""
    if required is not None and required not in body:
        error = {"type": "missing", "loc": f"body.{required}", "msg": "Field required"}
        raise _pydantic(error | {"input": f"<dict of {len(body)} items>"}, f"body.{required}")
    for name in _FLOAT_FIELDS:
        value = body.get(name)
        if isinstance(value, str):
            try:
                float(value)
            except ValueError:
                msg = "Input should be a valid number, unable to parse string as a number"
                error = {"type": "float_parsing", "loc": f"body.{name}", "msg": msg, "input": value}
                raise _pydantic(error, f"body.{name}") from None
    for name in _INT_FIELDS:
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            error = {"type": "int_type", "loc": f"body.{name}", "msg": "Input should be a valid integer"}
            raise _pydantic(error | {"input": value}, f"body.{name}")


@dataclass
class Config:
    """Server flags (mutable, so a test can flip one on a running fake)."""

    model: str = "tiny"
    max_model_len: int = 8192
    reasoning_parser: bool = False  # --reasoning-parser: usage gains completion_tokens_details
    prompt_tokens_details: bool = False  # --enable-prompt-tokens-details
    force_include_usage: bool = False  # --enable-force-include-usage
    clamp_max_tokens: bool = True  # 0.32 clamps prompt+max_tokens overflow; False: the older 400
    multimodal: bool = False
    tool_parser: bool = True  # --enable-auto-tool-choice --tool-call-parser (as the recorded server)
    reasoning_field: str = "reasoning"  # "reasoning_content" imitates vLLM < 0.12 / SGLang
    system_fingerprint: str = FINGERPRINT


def check_model(body: dict, config: Config) -> None:
    model = body.get("model")
    if model is not None and model != config.model:
        message = f"The model `{model}` does not exist. Valid aliases: {config.model}."
        raise VLLMError(message, 404, "model")


@dataclass
class Turn:
    """One scripted reply. ``text``/``reasoning`` strings are split with :func:`tokenize`; a list of
    strings fixes the split (one chunk each). ``tool_calls`` holds ``(name, arguments)`` pairs, the
    arguments a JSON string or a list of fragments, optionally ``(name, arguments, id)``."""

    text: str | list[str] = ""
    reasoning: str | list[str] = ""
    tool_calls: list[tuple] = field(default_factory=list)
    args_in_first_delta: bool = False  # whole call in one delta (name + arguments), as some parsers do
    finish_reason: str | None = None  # override of the final finish_reason (e.g. "abort")
    stop_reason: str | int | None = None  # reported with a natural stop (e.g. a stop token id)
    status: int = 200  # >= 400: answered before any stream (or the code of the error_after frame)
    error: str | dict | bytes | None = None  # the message, or a whole JSON/raw body for ``status``
    error_type: str | None = None
    error_after: int | None = None  # tokens, then an {"error":...} frame and [DONE] (non-stream: HTTP error)
    drop_after: int | None = None  # tokens, then the connection is closed without [DONE]
    delay_headers: float = 0.0  # before the status line and headers (a queued request)
    delay_first: float = 0.0  # after the headers, before the first chunk (prefill)
    delay_per_token: float = 0.0
    hang: bool = False  # stream: headers, then silence; non-stream: no answer, until the client leaves
    prompt_tokens: int | None = None  # override of the prompt token count (e.g. a huge prompt)
    cached_tokens: int = 0  # prompt_tokens_details.cached_tokens (with Config.prompt_tokens_details)
    headers: dict[str, str] = field(default_factory=dict)  # extra response headers


def validate_chat(body: dict, turn: Turn, config: Config) -> tuple[int, int]:
    """vLLM's checks in vLLM's order; returns (prompt_tokens, max_tokens) or raises VLLMError."""
    check_fields(body, "messages")
    tools, choice = body.get("tools"), body.get("tool_choice")
    if choice is not None and choice != "none":
        if tools is None:
            raise VLLMError(
                "When using `tool_choice`, `tools` must be set. (parameter=tool_choice)", 400, "tool_choice"
            )
        names = [(t.get("function") or {}).get("name") for t in tools]
        if isinstance(choice, dict) and (choice.get("function") or {}).get("name") not in names:
            message = "The tool specified in `tool_choice` does not match any of the specified `tools`"
            raise VLLMError(f"{message} (parameter=tool_choice)", 400, "tool_choice")
    check_model(body, config)
    messages = body["messages"]
    if not messages:
        raise VLLMError(EMPTY_CONVERSATION)
    if not config.multimodal and '"type":"image_url"' in orjson.dumps(messages).decode():
        raise VLLMError(f"{config.model} is not a multimodal model")
    prompt = turn.prompt_tokens if turn.prompt_tokens is not None else count_prompt_tokens(messages, tools)
    limit = config.max_model_len
    if prompt > limit:
        raise VLLMError(prompt_overflow_message(limit), 400, "input_tokens")
    requested = body.get("max_completion_tokens")
    requested = body.get("max_tokens") if requested is None else requested
    if requested is not None and requested > limit:
        message = f"max_tokens={requested} cannot be greater than max_model_len={limit}. Please request"
        message += f" fewer output tokens. (parameter=max_tokens, value={requested})"
        raise VLLMError(message, 400, "max_tokens")
    if requested is not None and requested > limit - prompt and not config.clamp_max_tokens:
        raise VLLMError(max_tokens_overflow_message(requested, limit, prompt), 400, "max_tokens")
    max_tokens = limit - prompt if requested is None else min(requested, limit - prompt)
    if max_tokens < 1:
        message = (
            f"max_tokens must be at least 1, got {max_tokens}. (parameter=max_tokens, value={max_tokens})"
        )
        raise VLLMError(message, 400, "max_tokens")
    return prompt, max_tokens


@dataclass
class Step:
    """One generated token: what it shows (kind, text) and for which tool call."""

    kind: str  # reasoning | content | tool_start | tool_args | hidden (</think>) | eos
    text: str = ""
    call: int = 0


def plan(turn: Turn, stop: Any, budget: int) -> tuple[list[Step], str, str | int | None]:
    """The reply token by token, cut like vLLM cuts it: inside the token that holds the earliest stop
    string (which is not shown), or after ``budget`` (max_tokens) tokens. Returns (steps, finish,
    stop_reason)."""
    text = turn.text if isinstance(turn.text, list) else tokenize(turn.text)
    reasoning = turn.reasoning if isinstance(turn.reasoning, list) else tokenize(turn.reasoning)
    calls, stop_reason, stopped = turn.tool_calls, turn.stop_reason, False
    joined = "".join(text)
    hits = sorted(
        (joined.find(s), i, s) for i, s in enumerate([stop] if isinstance(stop, str) else stop or [])
    )
    hits = [h for h in hits if h[0] >= 0 and h[2]]
    if hits:
        pos, _, stop_reason = hits[0]
        start = 0
        for j, tok in enumerate(text):
            if start + len(tok) > pos:
                text, calls, stopped = [*text[:j], tok[: pos - start]], [], True
                break
            start += len(tok)
    steps = [Step("reasoning", t) for t in reasoning]
    if reasoning and (text or calls):
        steps.append(Step("hidden"))  # </think>: a counted token that shows nothing
    steps += [Step("content", t) for t in text]
    for i, (name, args, *_) in enumerate(calls):
        steps.append(Step("tool_start", name, i))
        if not turn.args_in_first_delta:
            steps += [Step("tool_args", f, i) for f in (args if isinstance(args, list) else tokenize(args))]
    if not stopped:
        steps.append(Step("eos"))
    if len(steps) > budget:
        return steps[:budget], "length", None
    return steps, "stop", stop_reason


@dataclass
class Reply:
    """One accepted request and its planned answer; builds each chunk, and the non-stream body."""

    config: Config
    turn: Turn
    body: dict
    prompt: int
    steps: list[Step]
    finish: str
    stop_reason: str | int | None
    id: str
    created: int
    tool_id_prefix: str

    @property
    def usage_modes(self) -> tuple[bool, bool]:
        """(include_usage, continuous_usage_stats), as vLLM's ``should_include_usage``."""
        options = self.body.get("stream_options")
        if not options:
            return self.config.force_include_usage, False
        include = bool(options.get("include_usage")) or self.config.force_include_usage
        return include, include and bool(options.get("continuous_usage_stats"))

    def _head(self, object: str = "chat.completion.chunk") -> dict:
        return {"id": self.id, "object": object, "created": self.created, "model": self.config.model}

    def finish_reason(self) -> str:
        """vLLM says "tool_calls" after auto/required calls, "stop" after a named tool_choice."""
        if self.turn.finish_reason:
            return self.turn.finish_reason
        named = isinstance(self.body.get("tool_choice"), dict)
        if self.finish == "stop" and not named and any(s.kind == "tool_start" for s in self.steps):
            return "tool_calls"
        return self.finish

    def usage(self, completion: int, final: bool) -> dict:
        usage: dict[str, Any] = {"prompt_tokens": self.prompt, "total_tokens": self.prompt + completion}
        usage["completion_tokens"] = completion
        details = {"reasoning_tokens": 0} if self.config.reasoning_parser else None  # 0 is vLLM 0.32's quirk
        if not final:  # continuous usage stats
            return usage | {"completion_tokens_details": details}
        if self.config.prompt_tokens_details:
            usage["prompt_tokens_details"] = {"cached_tokens": self.turn.cached_tokens}
        return usage | ({"completion_tokens_details": details} if details else {})

    def tool_id(self, call: int) -> str:
        entry = self.turn.tool_calls[call]
        return entry[2] if len(entry) > 2 else f"{self.tool_id_prefix}{call:04x}"

    def role_chunk(self) -> dict:
        choice = {
            "index": 0,
            "delta": {"role": "assistant", "content": ""},
            "logprobs": None,
            "finish_reason": None,
        }
        usage = {"usage": self.usage(0, False)} if self.usage_modes[1] else {}
        return self._head() | {"choices": [choice]} | usage | {"prompt_token_ids": None, "prompt_text": None}

    def step_chunk(self, i: int) -> dict | None:
        """The chunk of token ``i``, or None for a token vLLM keeps to itself."""
        step, last = self.steps[i], i == len(self.steps) - 1
        if step.kind == "hidden" and not last:
            return None
        include_usage, continuous = self.usage_modes
        choice = {"index": 0, "delta": self._delta(step), "logprobs": None}
        if last:
            choice |= {
                "finish_reason": self.finish_reason(),
                "stop_reason": self.stop_reason,
                "token_ids": None,
            }
        else:
            choice |= {"finish_reason": None, "token_ids": None}
        chunk = self._head() | {"choices": [choice]}
        if continuous:
            chunk["usage"] = self.usage(i + 1, False)
        if last and not include_usage:
            chunk["system_fingerprint"] = self.config.system_fingerprint
        return chunk

    def _delta(self, step: Step) -> dict:
        if step.kind == "reasoning":
            return {self.config.reasoning_field: step.text}
        if step.kind == "content":
            return {"content": step.text}
        if step.kind == "tool_args":
            return {
                "content": None,
                "tool_calls": [{"index": step.call, "function": {"arguments": step.text}}],
            }
        if step.kind == "tool_start":
            name, args, *_ = self.turn.tool_calls[step.call]
            function = {"name": name}
            if self.turn.args_in_first_delta:
                function["arguments"] = args if isinstance(args, str) else "".join(args)
            call = {
                "id": self.tool_id(step.call),
                "type": "function",
                "index": step.call,
                "function": function,
            }
            return {"content": None, "tool_calls": [call]}
        # EOS or </think> as the last token. Still inside the reasoning, the reasoning parser routes the
        # empty text to the reasoning field; otherwise a server with a tool or reasoning parser sends an
        # empty delta (whatever the request's tools), one without either an empty content (checked
        # against a real vLLM 0.32: docs/real-vllm.md).
        if (
            step.kind == "eos"
            and self.config.reasoning_parser
            and all(s.kind == "reasoning" for s in self.steps[:-1])
        ):
            return {self.config.reasoning_field: ""}
        return {} if self.config.reasoning_parser or self.config.tool_parser else {"content": ""}

    def usage_chunk(self) -> dict:
        usage = self.usage(len(self.steps), True)
        return self._head() | {
            "choices": [],
            "usage": usage,
            "system_fingerprint": self.config.system_fingerprint,
        }

    def error_frame(self) -> bytes:
        """vLLM's mid-stream error: ``json.dumps`` (with spaces), unlike the pydantic-dumped chunks."""
        code = self.turn.status if self.turn.status >= 400 else 500
        message = self.turn.error if isinstance(self.turn.error, str) else "Internal server error"
        envelope = error_envelope(message, self.turn.error_type or error_type(code), code)
        return f"data: {json.dumps(envelope)}\n\n".encode()

    def completion(self) -> dict:
        """The non-stream ``chat.completion`` body."""
        kinds = {s.kind for s in self.steps}
        reasoning = "".join(s.text for s in self.steps if s.kind == "reasoning") or None
        content: str | None = "".join(s.text for s in self.steps if s.kind == "content")
        calls = [self._full_call(s.call) for s in self.steps if s.kind == "tool_start"]
        choice = self.body.get("tool_choice")
        if calls and self.finish == "length":  # a cut call: the parser gives up, the raw text is content
            raw = [(c["function"]["name"], c["function"]["arguments"]) for c in calls]
            raw = [f'<tool_call>{{"name": "{name}", "arguments": {args}' for name, args in raw]
            content, calls = content + "}</tool_call>".join(raw), []
        elif calls:  # forced calls come with "" (structural tag), auto ones with None (hermes)
            content = content or ("" if choice == "required" or isinstance(choice, dict) else None)
        elif reasoning and not kinds & {"content", "hidden"}:
            content = None  # cut inside the reasoning
        message = {
            "role": "assistant",
            "content": content,
            "refusal": None,
            "annotations": None,
            "audio": None,
        }
        message |= (
            {"function_call": None} | ({"tool_calls": calls} if calls else {}) | {"reasoning": reasoning}
        )
        out_choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": self.finish_reason()}
        out_choice |= {"stop_reason": self.stop_reason, "token_ids": None, "routed_experts": None}
        usage = self.usage(len(self.steps), True)
        usage = {k: usage[k] for k in ("prompt_tokens", "total_tokens", "completion_tokens")} | {
            "prompt_tokens_details": usage.get("prompt_tokens_details"),
            "completion_tokens_details": usage.get("completion_tokens_details"),
        }
        out = self._head("chat.completion") | {"choices": [out_choice], "service_tier": None}
        out |= {"system_fingerprint": self.config.system_fingerprint, "usage": usage, "prompt_logprobs": None}
        out |= {"prompt_token_ids": None, "prompt_text": None, "kv_transfer_params": None}
        return out | {"ec_transfer_params": None, "metrics": None}

    def _full_call(self, call: int) -> dict:
        """A call as far as it was generated (the budget may cut its arguments)."""
        args = "".join(s.text for s in self.steps if s.kind == "tool_args" and s.call == call)
        if self.turn.args_in_first_delta:
            full = self.turn.tool_calls[call][1]
            args = full if isinstance(full, str) else "".join(full)
        name = self.turn.tool_calls[call][0]
        return {"id": self.tool_id(call), "type": "function", "function": {"name": name, "arguments": args}}
