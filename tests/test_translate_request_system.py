"""Request translation (router/translate_request.py): the system prompt (billing header dropped) and
inline system messages, folded into user turns or kept in place."""

from __future__ import annotations

import pytest
from translate_request_helpers import body

from router.errors import RouterError
from router.translate_request import TranslateOptions, to_openai


def test_system_blocks_joined_with_newline_billing_header_dropped() -> None:
    system = [
        {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.331.abc; cch=123;"},
        {"type": "text", "text": "You are helpful.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Be brief."},
    ]
    out = to_openai(body(system=system), "b")
    assert out["messages"][0] == {"role": "system", "content": "You are helpful.\nBe brief."}
    assert to_openai(body(system="Plain."), "b")["messages"][0] == {"role": "system", "content": "Plain."}
    only_billing = to_openai(body(system=system[:1]), "b")
    assert only_billing["messages"] == [{"role": "user", "content": "hi"}]


def test_billing_header_change_does_not_change_the_output() -> None:
    def with_header(h: str) -> dict:
        return body(
            system=[
                {"type": "text", "text": f"x-anthropic-billing-header: {h}"},
                {"type": "text", "text": "S"},
            ]
        )

    assert to_openai(with_header("a1"), "b") == to_openai(with_header("b2"), "b")


CONVERSATION = [
    {"role": "user", "content": "first"},
    {
        "role": "system",
        "content": [{"type": "text", "text": "reminder", "cache_control": {"type": "ephemeral"}}],
    },
    {"role": "assistant", "content": "reply"},
    {"role": "user", "content": [{"type": "text", "text": "second"}]},
]


def test_fold_appends_inline_system_text_to_the_preceding_user_turn() -> None:
    out = to_openai(body(system="S", messages=CONVERSATION), "b")["messages"]
    assert out == [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "first\nreminder"},
        {"role": "assistant", "content": "reply"},
        {"role": "user", "content": "second"},
    ]


def test_fold_keeps_the_next_prompt_an_extension_of_the_previous_one() -> None:
    # Claude Code's pattern: [user, system], then [user, system, assistant, tool_result]. The second
    # prompt must start with the first one, token for token, or vLLM's prefix cache misses.
    first = to_openai(body(messages=CONVERSATION[:2]), "b")["messages"]
    second = to_openai(body(messages=CONVERSATION), "b")["messages"]
    assert first == [{"role": "user", "content": "first\nreminder"}]
    assert second[: len(first)] == first


def test_fold_with_no_preceding_user_turn_goes_into_the_next_one() -> None:
    messages = [{"role": "system", "content": "early"}, {"role": "user", "content": "hi"}]
    assert to_openai(body(messages=messages), "b")["messages"] == [{"role": "user", "content": "early\nhi"}]
    tail = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "yo"},
        {"role": "system", "content": "n"},
    ]
    assert to_openai(body(messages=tail), "b")["messages"][-1] == {"role": "user", "content": "n"}


def test_fold_never_splits_tool_calls_from_their_results() -> None:
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "Bash", "input": {}}]},
        {"role": "system", "content": "note"},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]},
    ]
    for mode in ("fold", "keep"):
        out = to_openai(body(messages=messages), "b", TranslateOptions(system_messages=mode))["messages"]
        assert [m["role"] for m in out[1:3]] == ["assistant", "tool"], mode
        assert out[3] == {"role": "user" if mode == "fold" else "system", "content": "note"}


def test_keep_emits_system_messages_in_place() -> None:
    out = to_openai(body(messages=CONVERSATION), "b", TranslateOptions(system_messages="keep"))["messages"]
    assert out == [
        {"role": "user", "content": "first"},
        {"role": "system", "content": "reminder"},
        {"role": "assistant", "content": "reply"},
        {"role": "user", "content": "second"},
    ]


def test_a_conversation_of_only_system_messages() -> None:
    only_system = body(messages=[{"role": "system", "content": "only system"}])
    assert to_openai(only_system, "b")["messages"] == [{"role": "user", "content": "only system"}]
    with pytest.raises(RouterError, match="messages"):
        to_openai(only_system, "b", TranslateOptions(system_messages="keep"))


def test_options_reject_unknown_system_mode() -> None:
    with pytest.raises(ValueError):
        TranslateOptions(system_messages="hoist")
