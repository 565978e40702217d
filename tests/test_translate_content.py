"""Content-block conversion (router/translate_content.py), exercised through to_openai as handlers use it."""

from __future__ import annotations

import orjson
import pytest

from router.errors import RouterError
from router.translate_request import TranslateOptions, has_image, to_openai

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVQI12P4z8AAAAMBAQAY3Y2wAAAAAElFTkSuQmCC"
B64_IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
URL_IMAGE = {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}}


def convert(messages: list, **options) -> list[dict]:
    body = {"model": "m", "max_tokens": 10, "messages": messages}
    return to_openai(body, "backend", TranslateOptions(**options))["messages"]


def rejects(messages: list, *fragments: str, **options) -> str:
    with pytest.raises(RouterError) as info:
        convert(messages, **options)
    assert info.value.status == 400 and info.value.type == "invalid_request_error"
    for fragment in fragments:
        assert fragment in info.value.message
    return info.value.message


def tool_use(call_id: str, name: str = "Bash", tool_input: dict | None = None) -> dict:
    return {"type": "tool_use", "id": call_id, "name": name, "input": tool_input or {}}


def test_all_text_user_content_becomes_one_newline_joined_string() -> None:
    out = convert(
        [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]
    )
    assert out == [{"role": "user", "content": "a\nb"}]


def test_string_content_is_kept_as_is() -> None:
    assert convert([{"role": "user", "content": "hi there"}]) == [{"role": "user", "content": "hi there"}]


def test_base64_image_becomes_data_uri_part_and_keeps_position() -> None:
    out = convert([{"role": "user", "content": [{"type": "text", "text": "what?"}, B64_IMAGE]}])
    assert out[0]["content"] == [
        {"type": "text", "text": "what?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    ]


def test_url_image_passes_the_url_unless_disabled() -> None:
    out = convert([{"role": "user", "content": [URL_IMAGE]}])
    assert out[0]["content"] == [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]
    rejects([{"role": "user", "content": [URL_IMAGE]}], "messages.0.content.0", "URL", allow_image_urls=False)


@pytest.mark.parametrize(
    ("source", "field"),
    [
        ({"type": "file", "file_id": "f1"}, "messages.0.content.0.source.type"),
        ({"type": "base64", "data": PNG}, "messages.0.content.0.source.media_type"),
        ({"type": "base64", "media_type": "image/png"}, "messages.0.content.0.source.data"),
        ({"type": "url"}, "messages.0.content.0.source.url"),
    ],
)
def test_bad_image_sources_name_the_field(source: dict, field: str) -> None:
    rejects([{"role": "user", "content": [{"type": "image", "source": source}]}], field)


def test_assistant_tool_use_becomes_tool_calls_with_key_order_kept() -> None:
    tool_input = {"z": 1, "a": {"y": 2, "b": [3]}, "m": "é"}
    out = convert(
        [
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "ok"}, tool_use("t1", "Edit", tool_input)],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "done"}]},
        ]
    )
    assistant = out[1]
    assert assistant["content"] == "ok"
    (call,) = assistant["tool_calls"]
    assert call["id"] == "t1" and call["type"] == "function" and call["function"]["name"] == "Edit"
    arguments = call["function"]["arguments"]
    assert list(orjson.loads(arguments)) == ["z", "a", "m"]
    assert list(orjson.loads(arguments)["a"]) == ["y", "b"]
    assert orjson.loads(arguments) == tool_input


def test_assistant_with_only_tool_calls_has_null_content() -> None:
    out = convert([{"role": "user", "content": "go"}, {"role": "assistant", "content": [tool_use("t1")]}])
    assert out[1]["content"] is None and len(out[1]["tool_calls"]) == 1


def test_tool_results_become_tool_messages_before_the_users_own_text() -> None:
    out = convert(
        [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [tool_use("a"), tool_use("b")]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "also this"},
                    {"type": "tool_result", "tool_use_id": "a", "content": "A"},
                    {"type": "tool_result", "tool_use_id": "b", "content": [{"type": "text", "text": "B1"}]},
                ],
            },
        ]
    )
    assert out[2:] == [
        {"role": "tool", "tool_call_id": "a", "content": "A"},
        {"role": "tool", "tool_call_id": "b", "content": "B1"},
        {"role": "user", "content": "also this"},
    ]


def test_tool_result_list_content_is_joined_and_empty_content_allowed() -> None:
    out = convert(
        [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [tool_use("a"), tool_use("b")]},
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "a",
                        "content": [{"type": "text", "text": "x"}] * 2,
                    },
                    {"type": "tool_result", "tool_use_id": "b"},
                ],
            },
        ]
    )
    assert [m["content"] for m in out[2:]] == ["x\nx", ""]


def test_tool_result_error_stays_visible_to_the_model() -> None:
    out = convert(
        [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [tool_use("a"), tool_use("b")]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "a", "content": "boom", "is_error": True},
                    {"type": "tool_result", "tool_use_id": "b", "content": "fine", "is_error": False},
                ],
            },
        ]
    )
    assert out[2]["content"] == "Error: boom"
    assert out[3]["content"] == "fine"


def test_images_in_tool_results_move_to_a_following_user_message() -> None:
    out = convert(
        [
            {"role": "user", "content": "screenshot please"},
            {"role": "assistant", "content": [tool_use("s", "Read")]},
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "s",
                        "content": [{"type": "text", "text": "png"}, B64_IMAGE],
                    },
                    {"type": "text", "text": "describe it"},
                ],
            },
        ]
    )
    assert out[2] == {"role": "tool", "tool_call_id": "s", "content": "png"}
    assert out[3]["role"] == "user"
    assert out[3]["content"][0]["type"] == "image_url"
    assert out[3]["content"][1] == {"type": "text", "text": "describe it"}


def test_tool_reference_names_the_loaded_tool() -> None:
    out = convert(
        [
            {"role": "user", "content": "find a tool"},
            {"role": "assistant", "content": [tool_use("q", "ToolSearch")]},
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "q",
                        "content": [{"type": "tool_reference", "tool_name": "WebFetch"}],
                    }
                ],
            },
        ]
    )
    assert "WebFetch" in out[2]["content"]


def test_thinking_goes_to_reasoning_and_signatures_and_redacted_are_dropped() -> None:
    out = convert(
        [
            {"role": "user", "content": "q"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "step 1", "signature": "sig-a"},
                    {"type": "redacted_thinking", "data": "opaque"},
                    {"type": "thinking", "thinking": "step 2", "signature": "sig-b", "cache_control": {}},
                    {"type": "text", "text": "answer"},
                ],
            },
            {"role": "user", "content": "more"},
        ]
    )
    assert out[1] == {"role": "assistant", "content": "answer", "reasoning": "step 1\nstep 2"}
    assert b"sig-" not in orjson.dumps(out) and b"opaque" not in orjson.dumps(out)


def test_plain_text_document_becomes_text_with_its_title() -> None:
    doc = {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": "body"},
        "title": "T",
    }
    assert convert([{"role": "user", "content": [doc]}])[0]["content"] == "T\nbody"
    untitled = {"type": "document", "source": {"type": "text", "data": "only"}}
    assert convert([{"role": "user", "content": [untitled]}])[0]["content"] == "only"


def test_non_text_documents_are_refused_naming_the_block() -> None:
    pdf = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}}
    rejects(
        [{"role": "user", "content": [{"type": "text", "text": "x"}, pdf]}], "messages.0.content.1", "base64"
    )


def test_unknown_block_type_is_refused_with_type_and_position() -> None:
    messages = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
        {"role": "user", "content": [{"type": "text", "text": "x"}, {"type": "hologram"}]},
    ]
    rejects(messages, "messages.3.content.1", "'hologram'")


@pytest.mark.parametrize("kind", ["server_tool_use", "web_search_tool_result", "mcp_tool_use"])
def test_server_tool_blocks_in_history_are_refused(kind: str) -> None:
    messages = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [{"type": kind, "id": "srv"}]},
    ]
    rejects(messages, "messages.1.content.0", "server tool")


@pytest.mark.parametrize(
    ("messages", "field"),
    [
        ([{"role": "user", "content": [tool_use("x")]}], "messages.0.content.0"),
        (
            [{"role": "user", "content": "q"}, {"role": "assistant", "content": [B64_IMAGE]}],
            "messages.1.content.0",
        ),
        ([{"role": "user", "content": [{"type": "text", "text": 5}]}], "messages.0.content.0.text"),
        ([{"role": "user", "content": [{"text": "untyped"}]}], "messages.0.content.0.type"),
        ([{"role": "user", "content": ["bare"]}], "messages.0.content.0"),
        ([{"role": "user", "content": 42}], "messages.0.content"),
        ([{"role": "user", "content": []}], "messages.0.content"),
        ([{"role": "user", "content": [{"type": "tool_result", "content": "x"}]}], "tool_use_id"),
        (
            [{"role": "user", "content": "q"}, {"role": "assistant", "content": [tool_use("")]}],
            "content.0.id",
        ),
        (
            [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": [{**tool_use("i"), "input": [1]}]},
            ],
            "messages.1.content.0.input",
        ),
        (
            [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "is_error": "yes"}]}],
            "is_error",
        ),
        (
            [
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "x"}]}],
                }
            ],
            "messages.0.content.0.content.0",
        ),
    ],
)
def test_malformed_blocks_name_the_field(messages: list, field: str) -> None:
    rejects(messages, field)


def test_cache_control_never_reaches_the_output() -> None:
    cc = {"cache_control": {"type": "ephemeral"}}
    out = convert(
        [
            {"role": "user", "content": [{"type": "text", "text": "a", **cc}, {**B64_IMAGE, **cc}]},
            {"role": "assistant", "content": [{**tool_use("t"), **cc}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "r", **cc}]},
        ]
    )
    assert b"cache_control" not in orjson.dumps(out)


def test_has_image_finds_images_in_messages_and_tool_results_only() -> None:
    def body(content: object) -> dict:
        return {"messages": [{"role": "user", "content": content}]}

    assert has_image(body([B64_IMAGE]))
    assert has_image(body([{"type": "tool_result", "tool_use_id": "t", "content": [URL_IMAGE]}]))
    assert not has_image(body("text with the word image"))
    assert not has_image(body([{"type": "text", "text": "image"}]))
    assert not has_image({"messages": "garbage"}) and not has_image({}) and not has_image([])  # type: ignore[arg-type]
