"""Request translation (router/translate_request.py): required fields, scalars and the other top-level
fields (sampling, stop, user, stream, thinking, output format, a final assistant turn)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from translate_request_helpers import body, rejects

from router.translate_request import TranslateOptions, to_openai


def test_minimal_request_uses_backend_model_and_keeps_max_tokens() -> None:
    out = to_openai(body(), "qwen-backend")
    assert out == {
        "model": "qwen-backend",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 100,
    }


@pytest.mark.parametrize(
    ("req", "field"),
    [
        ([], "request body"),
        (body(model=None), "model"),
        (body(model=3), "model"),
        (body(max_tokens=None), "max_tokens"),
        (body(max_tokens=0), "max_tokens"),
        (body(max_tokens="10"), "max_tokens"),
        (body(max_tokens=True), "max_tokens"),
        (body(messages=None), "messages"),
        (body(messages={}), "messages"),
        (body(messages=[]), "messages"),
        (body(messages=["hi"]), "messages.0"),
        (body(messages=[{"role": "user"}]), "messages.0.content"),
        (body(messages=[{"role": "tool", "content": "x"}]), "messages.0.role"),
        (body(temperature="hot"), "temperature"),
        (body(top_p=[1]), "top_p"),
        (body(top_k=0.5), "top_k"),
        (body(stop_sequences="END"), "stop_sequences"),
        (body(stop_sequences=["a", 1]), "stop_sequences"),
        (body(stream="yes"), "stream"),
        (body(metadata="u"), "metadata"),
        (body(metadata={"user_id": 7}), "metadata.user_id"),
        (body(thinking="on"), "thinking"),
        (body(system=5), "system"),
        (body(system=[{"type": "image"}]), "system.0.type"),
    ],
)
def test_invalid_fields_are_400_naming_the_field(req: Any, field: str) -> None:
    rejects(req, field)


def test_sampling_stop_and_user_are_passed_through() -> None:
    out = to_openai(
        body(
            temperature=0.2,
            top_p=0.9,
            top_k=40,
            stop_sequences=["\n\nHuman:", "END"],
            metadata={"user_id": "u1"},
        ),
        "b",
    )
    assert (out["temperature"], out["top_p"], out["top_k"]) == (0.2, 0.9, 40)
    assert out["stop"] == ["\n\nHuman:", "END"]
    assert out["user"] == "u1"


def test_unknown_top_level_fields_are_ignored() -> None:
    extra = {
        "context_management": {"edits": []},
        "container": "c",
        "service_tier": "auto",
        "output_config": {},
    }
    assert to_openai(body(**extra), "b") == to_openai(body(), "b")


def test_stream_asks_vllm_for_usage_on_every_chunk() -> None:
    out = to_openai(body(stream=True), "b")
    assert out["stream"] is True
    assert out["stream_options"] == {"include_usage": True, "continuous_usage_stats": True}
    assert "stream" not in to_openai(body(stream=False), "b")


@pytest.mark.parametrize(("kind", "expected"), [("enabled", True), ("adaptive", True), ("disabled", False)])
def test_thinking_switch_goes_to_chat_template_kwargs(kind: str, expected: bool) -> None:
    out = to_openai(body(thinking={"type": kind, "budget_tokens": 2048}), "b")
    assert out["chat_template_kwargs"] == {"enable_thinking": expected}
    custom = to_openai(body(thinking={"type": kind}), "b", TranslateOptions(thinking_kwarg="thinking"))
    assert custom["chat_template_kwargs"] == {"thinking": expected}
    assert "chat_template_kwargs" not in to_openai(
        body(thinking={"type": kind}), "b", TranslateOptions(thinking_kwarg="")
    )


def test_unknown_thinking_type_and_budget_are_ignored() -> None:
    out = to_openai(body(thinking={"type": "turbo", "budget_tokens": 99}), "b")
    assert "chat_template_kwargs" not in out and b"budget" not in orjson.dumps(out)


def test_output_format_becomes_json_schema_response_format() -> None:
    schema = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}
    out = to_openai(
        body(output_config={"effort": "high", "format": {"type": "json_schema", "schema": schema}}), "b"
    )
    assert out["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema},
    }
    rejects(body(output_config={"format": {"type": "xml"}}), "output_config.format")
    rejects(body(output_config={"format": {"type": "json_schema"}}), "output_config.format.schema")


def test_final_assistant_text_is_continued_not_answered() -> None:
    out = to_openai(
        body(messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": "The answer is"}]),
        "b",
    )
    assert out["messages"][-1] == {"role": "assistant", "content": "The answer is"}
    assert out["continue_final_message"] is True and out["add_generation_prompt"] is False
    assert "continue_final_message" not in to_openai(body(), "b")
