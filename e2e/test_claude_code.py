"""The real Claude Code CLI, headless, through the router, against the scripted vLLM-like backend.

Each test runs one ``claude -p`` session with a prompt carrying its scenario marker, then checks three
hops: what the CLI printed, what the CLI sent and the router answered (recording proxy), and what the
router sent on to the backend.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from claude_cli import CliResult, run_claude
from script import count_tokens
from stack import API_KEY, MODEL, Stack, claude_binary
from wire import blocks_of, is_messages_call, mentions, response_content, sse_events

pytestmark = pytest.mark.timeout(300)

Run = Callable[..., tuple[CliResult, list[dict]]]


@pytest.fixture
def claude(stack: Stack, version: str, tmp_path: Path) -> Run:
    """Run the CLI once; returns its result and the exchanges recorded during the run."""
    binary = claude_binary(version)

    def run(prompt: str) -> tuple[CliResult, list[dict]]:
        before = len(stack.exchanges())
        result = run_claude(
            binary,
            prompt,
            cwd=tmp_path / "work",
            home=tmp_path / "home",
            base_url=stack.proxy_url,
            api_key=API_KEY,
            model=MODEL,
        )
        return result, stack.exchanges()[before:]

    return run


def _nonce() -> str:
    return uuid.uuid4().hex[:10]


def _ok(result: CliResult) -> dict:
    assert result.returncode == 0, result.describe()
    out = result.output
    assert out.get("is_error") is False, result.describe()
    assert out.get("subtype") == "success", result.describe()
    return out


def _scenario_calls(exchanges: list[dict], nonce: str) -> list[dict]:
    return [x for x in exchanges if is_messages_call(x) and mentions(x, nonce)]


def _no_unexpected_failures(exchanges: list[dict]) -> None:
    bad = [
        (x["method"], x["path"], x["status"], x["response"][:300])
        for x in exchanges
        if x.get("status", 599) >= 400
    ]
    assert not bad, f"router answered errors the scenario did not provoke: {bad}"


def test_plain_question(claude: Run, stack: Stack) -> None:
    nonce = _nonce()
    result, exchanges = claude(f"What is six times seven? e2e-scenario:plain:{nonce}")
    out = _ok(result)
    assert f"PLAIN_OK {nonce}: the answer is forty-two." in out["result"]
    calls = _scenario_calls(exchanges, nonce)
    assert len(calls) == 1
    call = calls[0]
    assert call["path"] == "/v1/messages?beta=true"
    assert call["body"]["stream"] is True
    events = [name for name, _ in sse_events(call["response"])]
    assert events[0] == "message_start" and events[-1] == "message_stop", events
    assert out["usage"]["output_tokens"] > 0, "usage from the backend's usage chunk reached the CLI"
    backend = stack.for_nonce(nonce)
    assert len(backend) == 1
    assert out["usage"]["input_tokens"] == count_tokens(backend[0]["body"]), (
        "prompt_tokens became input_tokens"
    )
    _no_unexpected_failures(exchanges)


def test_tool_loop(claude: Run, stack: Stack, tmp_path: Path) -> None:
    nonce = _nonce()
    target = tmp_path / "work" / f"made-{nonce}.txt"
    result, exchanges = claude(f"Create the marker file. e2e-scenario:tool:{nonce}:{target}")
    out = _ok(result)
    assert target.read_text() == f"made by e2e {nonce}", "the Bash tool ran the streamed command"
    assert f"TOOL_DONE {nonce}" in out["result"]

    calls = _scenario_calls(exchanges, nonce)
    assert len(calls) == 2, [c["path"] for c in calls]
    tool_uses = [b for b in response_content(calls[0]) if b["type"] == "tool_use"]
    assert len(tool_uses) == 1 and tool_uses[0]["name"] == "Bash"
    sent_id = tool_uses[0]["id"]
    results = [
        b for m in calls[1]["body"]["messages"] for b in blocks_of(m) if b.get("type") == "tool_result"
    ]
    assert [r["tool_use_id"] for r in results] == [sent_id], (
        "the CLI answered the tool call the router gave it"
    )

    backend = stack.for_nonce(nonce)
    assert len(backend) == 2
    tool_msgs = [m for m in backend[1]["body"]["messages"] if m["role"] == "tool"]
    assistant = [m for m in backend[1]["body"]["messages"] if m["role"] == "assistant"][-1]
    call = assistant["tool_calls"][0]
    assert [m["tool_call_id"] for m in tool_msgs] == [call["id"]], (
        "tool_result id matches the call in history"
    )
    assert call["function"]["name"] == "Bash"
    assert json.loads(call["function"]["arguments"])["command"].endswith(str(target))
    _no_unexpected_failures(exchanges)


def test_thinking_round_trip(claude: Run, stack: Stack, tmp_path: Path) -> None:
    nonce = _nonce()
    result, exchanges = claude(f"Think, then echo a word. e2e-scenario:think:{nonce}")
    out = _ok(result)
    assert f"THINK_DONE {nonce}" in out["result"]
    thought = f"THOUGHT-{nonce}: the user wants an echo, so I run one."

    calls = _scenario_calls(exchanges, nonce)
    assert len(calls) == 2
    first = response_content(calls[0])
    assert [b["type"] for b in first] == ["thinking", "tool_use"], first
    assert first[0]["thinking"] == thought and first[0].get("signature"), "thinking streamed with a signature"
    echoed = [m for m in calls[1]["body"]["messages"] if m["role"] == "assistant"][-1]
    echoed_thinking = [b for b in blocks_of(echoed) if b["type"] == "thinking"]
    assert echoed_thinking and echoed_thinking[0]["thinking"] == thought, (
        "the CLI sent the thinking block back"
    )
    assert calls[1]["status"] == 200, calls[1]["response"][:500]

    backend = stack.for_nonce(nonce)
    assistant = [m for m in backend[1]["body"]["messages"] if m["role"] == "assistant"][-1]
    assert assistant.get("reasoning") == thought, f"thinking became vLLM's `reasoning`: {assistant}"
    _no_unexpected_failures(exchanges)


def test_overload_midstream_is_retried(claude: Run, stack: Stack) -> None:
    nonce = _nonce()
    result, exchanges = claude(f"Answer despite a hiccup. e2e-scenario:overload_midstream:{nonce}")
    out = _ok(result)
    assert f"OVERLOAD_RECOVERED {nonce}" in out["result"]
    calls = _scenario_calls(exchanges, nonce)
    assert len(calls) >= 2
    errors = [data for name, data in sse_events(calls[0]["response"]) if name == "error"]
    assert errors and errors[0]["error"]["type"] == "overloaded_error", calls[0]["response"][-800:]
    assert sse_events(calls[0]["response"])[-1][0] == "error", "the failed stream ends with event: error"
    assert len(stack.for_nonce(nonce)) == len(calls)


def test_overload_before_stream_is_retried(claude: Run, stack: Stack) -> None:
    nonce = _nonce()
    result, exchanges = claude(f"Answer despite a full queue. e2e-scenario:overload_503:{nonce}")
    out = _ok(result)
    assert f"OVERLOAD_RECOVERED {nonce} after 2 attempts" in out["result"]
    calls = _scenario_calls(exchanges, nonce)
    assert [c["status"] for c in calls] == [529, 200]
    body = json.loads(calls[0]["response"])
    assert body["type"] == "error" and body["error"]["type"] == "overloaded_error", body


def test_context_overflow_lowers_max_tokens(claude: Run, stack: Stack) -> None:
    nonce = _nonce()
    result, exchanges = claude(f"Answer in a small window. e2e-scenario:overflow:{nonce}")
    out = _ok(result)
    assert f"OVERFLOW_RECOVERED {nonce}" in out["result"]
    calls = _scenario_calls(exchanges, nonce)
    assert calls[0]["status"] == 400
    message = json.loads(calls[0]["response"])["error"]["message"]
    m = re.search(r"input length and `max_tokens` exceed context limit: (\d+) \+ (\d+) > (\d+)", message)
    assert m, f"overflow not in the wording Claude Code parses: {message!r}"
    prompt, asked, limit = (int(g) for g in m.groups())
    assert asked == calls[0]["body"]["max_tokens"]
    retry = calls[1]["body"]["max_tokens"]
    assert retry <= limit - prompt, (
        f"the CLI lowered max_tokens from {asked} to {retry} (room {limit - prompt})"
    )
    assert calls[-1]["status"] == 200


def test_max_tokens_above_model_window(claude: Run, stack: Stack) -> None:
    """vLLM 0.32 rejects max_tokens > max_model_len outright (fixture 66); the CLI asks for 32000."""
    nonce = _nonce()
    result, exchanges = claude(f"Answer on a 16k model. e2e-scenario:overflow_vllm032:{nonce}")
    out = _ok(result)
    assert f"OVERFLOW_RECOVERED {nonce}" in out["result"], out["result"]
    assert _scenario_calls(exchanges, nonce)[-1]["status"] == 200


def _prompt_too_long(call: dict) -> tuple[int, int]:
    assert call["status"] == 400, call["response"][:300]
    message = json.loads(call["response"])["error"]["message"]
    m = re.fullmatch(r"prompt is too long: (\d+) tokens > (\d+) maximum", message)
    assert m, f"prompt overflow not in the wording Claude Code parses: {message!r}"
    return int(m.group(1)), int(m.group(2))


def test_prompt_too_long_is_reported(claude: Run, stack: Stack) -> None:
    """A first prompt that alone overflows cannot be compacted: the CLI must say so, not retry blindly."""
    nonce = _nonce()
    result, exchanges = claude(f"Too big from the start. e2e-scenario:prompt_overflow:{nonce}")
    assert result.returncode != 0, result.describe()
    out = result.output
    assert out["is_error"] is True and out.get("terminal_reason") == "prompt_too_long", out
    assert out.get("api_error_status") == 400
    calls = _scenario_calls(exchanges, nonce)
    assert len(calls) == 1, "not retried"
    prompt, limit = _prompt_too_long(calls[0])
    assert prompt > limit


# After a tool turn the conversation no longer fits. 2.1.331 compacts (summary request, then the
# shortened conversation); 2.1.197 in print mode stops with terminal_reason "prompt_too_long".
COMPACTS = {"2.1.331": True, "2.1.197": False}


def test_prompt_too_long_mid_conversation(claude: Run, stack: Stack, version: str) -> None:
    nonce = _nonce()
    result, exchanges = claude(f"Run one command. e2e-scenario:compact:{nonce}")
    calls = _scenario_calls(exchanges, nonce)
    _prompt_too_long(calls[1])
    if COMPACTS.get(version, True):
        out = _ok(result)
        assert f"COMPACT_RECOVERED e2e-scenario:compact:{nonce}" in out["result"]
        assert len(calls) >= 4 and all(c["status"] == 200 for c in calls[2:]), [c["status"] for c in calls]
        assert len(calls[-1]["body"]["messages"]) < len(calls[1]["body"]["messages"]), (
            "the history was compacted"
        )
    else:
        assert result.output.get("terminal_reason") == "prompt_too_long", result.describe()


def test_toolsearch_loads_a_deferred_tool(claude: Run, stack: Stack) -> None:
    nonce = _nonce()
    result, exchanges = claude(f"Load the notebook tool. e2e-scenario:toolsearch:{nonce}")
    out = _ok(result)
    calls = _scenario_calls(exchanges, nonce)
    first_tools = {t["name"] for t in calls[0]["body"]["tools"]}
    if "ToolSearch" not in first_tools:  # 2.1.197: every tool up front, nothing deferred
        assert f"NO_TOOLSEARCH {nonce}" in out["result"] and "NotebookEdit" in out["result"]
        return
    assert f"TOOLSEARCH_LOADED {nonce}" in out["result"], out["result"]
    assert "DeferredToolPlaceholder" not in out["result"], "a tool never meant to be called was offered"
    sent = calls[1]["body"]
    deferred = {t["name"] for t in sent["tools"] if t.get("defer_loading")}
    assert "NotebookEdit" in deferred, "the CLI lists the loaded tool as deferred"
    refs = [
        r["tool_name"]
        for m in sent["messages"]
        for b in blocks_of(m)
        if b.get("type") == "tool_result" and isinstance(b.get("content"), list)
        for r in b["content"]
        if r.get("type") == "tool_reference"
    ]
    assert refs == ["NotebookEdit"], refs


def test_dropped_backend_connection_is_retried(claude: Run, stack: Stack) -> None:
    """A backend that dies mid-answer must not look like a finished (truncated) answer to the CLI."""
    nonce = _nonce()
    result, exchanges = claude(f"Answer despite a crash. e2e-scenario:drop_midstream:{nonce}")
    out = _ok(result)
    assert f"DROP_RECOVERED {nonce}" in out["result"], out["result"]
    calls = _scenario_calls(exchanges, nonce)
    events = sse_events(calls[0]["response"])
    assert events[-1][0] == "error", f"the cut stream must end with event: error, not {events[-1]}"
    assert "message_stop" not in [name for name, _ in events]


def test_parallel_tool_calls(claude: Run, stack: Stack, tmp_path: Path) -> None:
    nonce = _nonce()
    workdir = tmp_path / "work"
    result, exchanges = claude(f"Create two files at once. e2e-scenario:parallel:{nonce}:{workdir}")
    out = _ok(result)
    assert f"PARALLEL_DONE {nonce}" in out["result"]
    assert [(workdir / f"part-{i}.txt").read_text() for i in (1, 2)] == ["1", "2"]
    calls = _scenario_calls(exchanges, nonce)
    assert len(calls) == 2
    uses = [b for b in response_content(calls[0]) if b["type"] == "tool_use"]
    assert len(uses) == 2 and len({u["id"] for u in uses}) == 2
    results = [
        b for m in calls[1]["body"]["messages"] for b in blocks_of(m) if b.get("type") == "tool_result"
    ]
    assert sorted(r["tool_use_id"] for r in results) == sorted(u["id"] for u in uses)
    backend = stack.for_nonce(nonce)[1]["body"]["messages"]
    call_ids = [c["id"] for m in backend if m["role"] == "assistant" for c in m.get("tool_calls", [])]
    assert [m["tool_call_id"] for m in backend if m["role"] == "tool"] == call_ids
    assert len(call_ids) == 2
