"""Request builders and checks the request translation tests (tests/test_translate_request_*.py) share:
a minimal valid request to vary one field of, a refusal check, and the tool names a translation sent."""

from __future__ import annotations

from typing import Any

import pytest

from router.errors import RouterError
from router.translate_request import to_openai

WEATHER = {
    "name": "get_weather",
    "description": "Get the weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def body(**fields: Any) -> dict:
    base: dict[str, Any] = {
        "model": "claude-x",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
    }
    base.update(fields)
    return base


def rejects(req: Any, *fragments: str) -> None:
    with pytest.raises(RouterError) as info:
        to_openai(req, "backend")
    assert info.value.status == 400 and info.value.type == "invalid_request_error"
    for fragment in fragments:
        assert fragment in info.value.message


def tool(name: str, **extra: Any) -> dict:
    return {"name": name, "description": f"{name} tool", "input_schema": {"type": "object"}, **extra}


def sent_tools(out: dict) -> list[str]:
    return [t["function"]["name"] for t in out.get("tools", [])]
