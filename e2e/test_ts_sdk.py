"""Part 2: the official TypeScript SDK (@anthropic-ai/sdk) streams a tool call through the router."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid

import pytest
from stack import API_KEY, HERE, MODEL, NODE_MODULES, Stack
from wire import is_messages_call, mentions

pytestmark = pytest.mark.timeout(120)


def test_ts_sdk_streams_a_tool_call(stack: Stack) -> None:
    node = shutil.which("node")
    assert node, "node is needed for the TypeScript SDK check"
    assert (NODE_MODULES / "@anthropic-ai" / "sdk").is_dir(), "run `make e2e` (npm ci into .e2e)"
    nonce = uuid.uuid4().hex[:10]
    env = {
        "PATH": os.environ.get("PATH", ""),
        "E2E_NODE_MODULES": str(NODE_MODULES),
        "ANTHROPIC_BASE_URL": stack.proxy_url,
        "ANTHROPIC_API_KEY": API_KEY,
        "E2E_MODEL": MODEL,
        "E2E_NONCE": nonce,
    }
    proc = subprocess.run(
        [node, str(HERE / "ts_sdk_stream.mjs")], env=env, capture_output=True, text=True, timeout=90
    )
    assert proc.returncode == 0, f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["ok"] is True
    assert summary["input"] == {"city": "Paris", "unit": "celsius", "days": [1, 2]}

    backend = stack.for_nonce(nonce)
    assert [r["body"].get("stream", False) for r in backend] == [True, False, True]
    first = backend[0]["body"]
    assert first["tool_choice"] == "required", "tool_choice any became vLLM's required"
    assert [t["function"]["name"] for t in first["tools"]] == ["get_weather"]
    assert first["stream_options"]["include_usage"] is True
    history = backend[2]["body"]["messages"]
    tool_msgs = [m for m in history if m["role"] == "tool"]
    calls_back = [c["id"] for m in history if m["role"] == "assistant" for c in m.get("tool_calls", [])]
    assert len(tool_msgs) == 1 and [tool_msgs[0]["tool_call_id"]] == calls_back, history
    assert tool_msgs[0]["content"] == "Sunny, 21 degrees" or "Sunny, 21 degrees" in json.dumps(tool_msgs[0])

    calls = [x for x in stack.exchanges() if is_messages_call(x) and mentions(x, nonce)]
    assert [c["status"] for c in calls] == [200, 200, 200]
