"""Thinking through a real vLLM reasoning parser (deepseek_r1 on the tiny model whose template opens
``<think>``), router and vLLM's native ``/v1/messages`` side by side.

Claude Code needs a thinking block that starts empty, streams ``thinking_delta``s, closes with a
non-empty ``signature_delta``, and is accepted back (signature and all) in the next turn.
"""

from __future__ import annotations

import fake_vs_real as wire_diff
import pytest
from checks import all_fields, complete, judged, last_chat_request, save, streamed
from vllm_stack import Stack

ATTEMPTS = 4
# Anthropic wants budget_tokens >= 1024 and < max_tokens (vLLM's native endpoint enforces the first);
# the tiny model ends its reasoning and its answer by itself after ~35 tokens each.
THINKING = {"type": "enabled", "budget_tokens": 1024}
MAX_TOKENS = 1100


def _ask(stack: Stack, side: str, stream: bool) -> tuple:  # type: ignore[type-arg]
    """A reply with both a thinking and a text block (the model may skip the text: retried)."""
    body = {
        "model": stack.model(side),
        "max_tokens": MAX_TOKENS,
        "thinking": THINKING,
        "messages": [{"role": "user", "content": "hello"}],
    } | ({"stream": True} if stream else {})
    for attempt in range(1, ATTEMPTS + 1):
        resp = stack.post(side, "/v1/messages", body)
        save(stack, f"thinking_{'stream' if stream else 'json'}", side, body, resp)
        with judged(side):
            message = streamed(resp)[1] if stream else complete(resp)
        kinds = [b.type for b in message.content]
        if kinds == ["thinking", "text"]:
            return resp, message, attempt
    return resp, message, ATTEMPTS


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
def test_thinking(think_stack: Stack, side: str, stream: bool, note) -> None:  # type: ignore[no-untyped-def]
    resp, message, attempt = _ask(think_stack, side, stream)
    with judged(side):
        kinds = [b.type for b in message.content]
        assert kinds == ["thinking", "text"], f"blocks {kinds} after {attempt} tries"
        thinking = message.content[0]
        assert thinking.thinking.strip() and "<think>" not in thinking.thinking, thinking
        assert thinking.signature, "thinking block without a signature (Claude Code replays it)"
        assert message.stop_reason in ("end_turn", "max_tokens"), message.stop_reason
        note(
            f"thinking {len(thinking.thinking)} chars, signature {len(thinking.signature)} chars, try {attempt}"
        )
        if not stream:
            all_fields(resp)


def test_thinking_replayed(think_stack: Stack, side: str, note) -> None:  # type: ignore[no-untyped-def]
    """The next turn carries the thinking block back; it must be accepted and cost what count_tokens says."""
    _resp, first, _attempt = _ask(think_stack, side, stream=False)
    history = [b.model_dump(exclude_none=True) for b in first.content]
    request = {
        "thinking": THINKING,
        "messages": [
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": history},
            {"role": "user", "content": "and then?"},
        ],
    }
    model = think_stack.model(side)
    counted = think_stack.post(side, "/v1/messages/count_tokens", {"model": model, **request})
    body = {"model": model, "max_tokens": MAX_TOKENS, "stream": True, **request}
    resp = think_stack.post(side, "/v1/messages", body)
    save(think_stack, "thinking_replayed", side, body, resp)
    with judged(side):
        events, message = streamed(resp)
        start = next(e for e in events if e["type"] == "message_start")
        assert counted.status == 200, f"count_tokens HTTP {counted.status}: {counted.raw[:200]!r}"
        count = counted.json()["input_tokens"]
        assert count == start["message"]["usage"]["input_tokens"], (count, start["message"]["usage"])
        note(f"{[b.type for b in message.content]}, {count} input tokens")
    if side == "router":
        sent = last_chat_request(think_stack)["messages"][1]
        thinking = next(b["thinking"] for b in history if b["type"] == "thinking")
        assert sent.get("reasoning") == thinking, sent


def test_fake_matches_real_reasoning(think_stack: Stack, note) -> None:  # type: ignore[no-untyped-def]
    compared, differences = wire_diff.compare(think_stack.backend_exchanges(), reasoning=True)
    text = wire_diff.report("reasoning server (deepseek_r1 parser)", compared, differences)
    (think_stack.log_dir / "wire-diff.md").write_text(text)
    for d in differences:
        note(f"{d.what}: real {d.real_only} / fake {d.fake_only}")
    assert not differences, text
