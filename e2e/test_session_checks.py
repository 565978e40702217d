"""What a client sends besides model turns, and the whole session's logs, checked after the scenarios.

``claude -p`` never calls ``count_tokens`` (``/context`` is estimated locally in print mode), so the
CLI's own recorded request bodies are replayed to it the way the interactive CLI sends them
(``{model, messages, tools}``, ``?beta=true``, the CLI's headers).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from script import count_tokens
from stack import API_KEY, Stack
from wire import is_messages_call, mentions, sse_events

pytestmark = [pytest.mark.timeout(120), pytest.mark.last]

PROVOKED = (
    "e2e-scenario:overload",
    "e2e-scenario:overflow",
    "e2e-scenario:prompt_overflow",
    "e2e-scenario:compact",
)
FORWARDED_HEADERS = ("anthropic-version", "anthropic-beta", "User-Agent", "X-Claude-Code-Session-Id", "x-app")


def _call(url: str, method: str, body: dict | None, headers: dict[str, str]) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _cli_plain_calls(stack: Stack) -> list[dict]:
    calls = [x for x in stack.exchanges() if is_messages_call(x) and mentions(x, "e2e-scenario:plain:")]
    assert calls, "the plain-question scenario ran first and was recorded"
    return calls


def test_head_root(stack: Stack) -> None:
    status, _ = _call(stack.proxy_url + "/", "HEAD", None, {})
    assert status == 200
    cli_heads = [x for x in stack.exchanges() if x["method"] == "HEAD"]
    assert all(x["status"] == 200 for x in cli_heads), cli_heads


def test_count_tokens_on_the_cli_requests(stack: Stack) -> None:
    for call in _cli_plain_calls(stack):
        headers = {k: v for k, v in call["headers"].items() if k in FORWARDED_HEADERS}
        headers |= {"content-type": "application/json", "x-api-key": API_KEY}
        started = [data for name, data in sse_events(call["response"]) if name == "message_start"]
        usage_input = started[0]["message"]["usage"]["input_tokens"]
        body = call["body"]
        for variant in (
            {"model": body["model"], "messages": body["messages"], "tools": body["tools"]},
            {
                "model": body["model"],
                "messages": body["messages"],
                "tools": body["tools"],
                "system": body["system"],
            },
            {"model": body["model"], "messages": [{"role": "user", "content": "hi"}], "tools": []},
        ):
            status, raw = _call(
                stack.proxy_url + "/v1/messages/count_tokens?beta=true", "POST", variant, headers
            )
            assert status == 200, raw[:500]
            counted = json.loads(raw)["input_tokens"]
            tokenized = [r for r in stack.backend_requests() if r["path"] == "/tokenize"][-1]
            assert counted == count_tokens(tokenized["body"]) > 0, (
                "the count is the backend's /tokenize count"
            )
        # The full request counted the way it is generated gives the generation's prompt size.
        full = {k: body[k] for k in ("model", "messages", "tools", "system")}
        _, raw = _call(stack.proxy_url + "/v1/messages/count_tokens?beta=true", "POST", full, headers)
        assert json.loads(raw)["input_tokens"] == usage_input, (
            "count_tokens agrees with the usage of the turn"
        )


def test_every_unprovoked_request_succeeded(stack: Stack) -> None:
    failed = [
        (x["method"], x["path"], x.get("status"), x.get("response", "")[:300])
        for x in stack.exchanges()
        if x.get("status", 599) >= 400 and not any(mentions(x, p) for p in PROVOKED)
    ]
    assert not failed, failed
    cli_paths = {
        x["path"] for x in stack.exchanges() if x["headers"].get("User-Agent", "").startswith("claude-cli")
    }
    assert cli_paths and all(p.endswith("?beta=true") for p in cli_paths), cli_paths


def test_router_log_has_no_crash(stack: Stack) -> None:
    log = stack.router_log.read_text(errors="replace")
    assert "Traceback" not in log, log[log.index("Traceback") - 2000 :][:6000]
    assert log.strip(), "the router logged its start-up and requests"
