"""Routing precedence: every rule on its own, and each rule against the ones below it."""

from __future__ import annotations

from typing import Any

import pytest

from router.config import ConfigError, Settings, load_settings
from router.routing import (
    CHARS_PER_TOKEN,
    RULES,
    choose_backend,
    estimate_tokens,
    has_openai_image,
    thinking_enabled,
)

BASE = {
    "VLLM_URL": "http://text:8000",
    "VLLM_MODEL": "text-model",
    "BACKEND_SMALL_URL": "http://small:8000",
    "BACKEND_SMALL_MODEL": "small-model",
    "BACKEND_BIG_URL": "http://big:8000",  # model discovered at run time
}
ALL = {
    **BASE,
    "VISION_URL": "http://vision:8000",
    "VISION_MODEL": "vision-model",
    "MODEL_MAP": "claude-opus-*=big, *sonnet*=small",
    "ROUTE_BACKGROUND": "small",
    "ROUTE_THINK": "big",
    "ROUTE_LONG_CONTEXT": "big",
    "LONG_CONTEXT_TOKENS": "1000",
}
LONG = 1000 * CHARS_PER_TOKEN + CHARS_PER_TOKEN  # just above LONG_CONTEXT_TOKENS
THINK = {"type": "enabled", "budget_tokens": 1024}


def settings(**env: str) -> Settings:
    return load_settings({**BASE, **env}, env_file=None)


def route(
    s: Settings,
    model: Any = "some-model",
    *,
    image: bool = False,
    size: int = 100,
    served: dict[str, str] | None = None,
    **extra: Any,
) -> tuple[str, str]:
    body = {"model": model, "messages": [], **extra}
    return choose_backend(s, body, has_image=image, body_size=size, served=served)


# --- each rule on its own ---------------------------------------------------------------------------


def test_vision_needs_an_image_and_a_vision_backend() -> None:
    with_vision = settings(VISION_URL="http://vision:8000")
    assert route(with_vision, image=True) == ("vision", "vision")
    assert route(with_vision, image=False) == ("default", "default")
    assert route(settings(), image=True) == ("default", "default")  # no VISION_URL: the main backend


def test_long_context_above_the_threshold_only() -> None:
    s = settings(ROUTE_LONG_CONTEXT="big", LONG_CONTEXT_TOKENS="1000")
    assert estimate_tokens(LONG) > 1000 >= estimate_tokens(1000 * CHARS_PER_TOKEN)
    assert route(s, size=LONG) == ("big", "long_context")
    assert route(s, size=1000 * CHARS_PER_TOKEN) == ("default", "default")
    assert route(settings(), size=10**9) == ("default", "default")  # rule not configured


@pytest.mark.parametrize("model", ["small", "SMALL", "Small"])
def test_model_by_backend_name_any_case(model: str) -> None:
    assert route(settings(), model) == ("small", "model")


def test_model_by_configured_model_name_is_exact() -> None:
    s = settings()
    assert route(s, "small-model") == ("small", "model")
    assert route(s, "text-model") == ("default", "model")
    assert route(s, "SMALL-MODEL") == ("default", "default")  # model ids are case-sensitive


def test_model_by_served_name_for_discovered_backends() -> None:
    s = settings()
    assert route(s, "Org/Big-Model") == ("default", "default")
    assert route(s, "Org/Big-Model", served={"big": "Org/Big-Model"}) == ("big", "model")
    # A stale entry for a backend the settings do not know is ignored, never a KeyError later.
    assert route(s, "ghost-model", served={"ghost": "ghost-model"}) == ("default", "default")


def test_a_discovered_backend_is_not_matched_by_its_placeholder() -> None:
    # BACKEND_BIG_MODEL unset means "ask the backend"; the literal "default" is not its model name.
    assert route(settings(), "default") == ("default", "model")  # the backend *named* default


def test_model_map_globs_first_match_wins_case_insensitive() -> None:
    s = settings(MODEL_MAP="claude-opus-*=big, claude-*=small, *=default")
    assert route(s, "claude-opus-4-1") == ("big", "model_map")
    assert route(s, "Claude-Opus-4-1") == ("big", "model_map")
    assert route(s, "claude-sonnet-4") == ("small", "model_map")
    assert route(s, "anything") == ("default", "model_map")


def test_background_is_haiku_class_only() -> None:
    s = settings(ROUTE_BACKGROUND="small")
    assert route(s, "claude-haiku-4-5-20251001") == ("small", "background")
    assert route(s, "Claude-3-5-HAIKU") == ("small", "background")
    assert route(s, "claude-sonnet-4") == ("default", "default")
    assert route(settings(), "claude-haiku-4-5") == ("default", "default")


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, True),
        ({"thinking": {"type": "adaptive"}}, True),
        ({"thinking": {"type": "disabled"}}, False),
        ({"thinking": "enabled"}, False),
        ({"reasoning_effort": "high"}, True),
        ({"reasoning_effort": "none"}, False),
        ({"chat_template_kwargs": {"enable_thinking": True}}, True),
        ({"chat_template_kwargs": {"thinking": True}}, True),
        ({"chat_template_kwargs": {"enable_thinking": False}}, False),
        ({}, False),
    ],
)
def test_think_in_both_dialects(extra: dict, expected: bool) -> None:
    assert thinking_enabled(extra) is expected
    s = settings(ROUTE_THINK="big")
    assert route(s, **extra) == (("big", "think") if expected else ("default", "default"))


@pytest.mark.parametrize("model", ["no-such-model", "", None, 42, ["small"]])
def test_unknown_or_missing_model_goes_to_default(model: Any) -> None:
    assert route(load_settings(ALL, env_file=None), model) == ("default", "default")


# --- precedence: each rule beats every rule below it -------------------------------------------------


def test_precedence_with_every_rule_configured() -> None:
    s = load_settings(ALL, env_file=None)
    haiku, opus = "claude-haiku-4-5", "claude-opus-4-1"
    # vision beats everything, long context included
    assert route(s, "small", image=True, size=LONG, thinking=THINK) == ("vision", "vision")
    # long context beats an explicit backend, a map entry, background and think
    assert route(s, "small", size=LONG) == ("big", "long_context")
    assert route(s, "claude-sonnet-4", size=LONG) == ("big", "long_context")
    assert route(s, haiku, size=LONG) == ("big", "long_context")
    # an explicit backend or model beats MODEL_MAP, background and think
    assert route(s, "default", thinking=THINK) == ("default", "model")
    assert route(s, "text-model") == ("default", "model")
    assert route(s, "vision") == ("vision", "model")  # by name, even without an image
    # MODEL_MAP beats background and think
    assert route(s, "claude-opus-4-haiku-edition") == ("big", "model_map")  # background would say small
    assert route(s, "claude-sonnet-4", thinking=THINK) == ("small", "model_map")  # think would say big
    assert route(s, opus) == ("big", "model_map")
    # background beats think
    s2 = load_settings({**ALL, "ROUTE_BACKGROUND": "small", "ROUTE_THINK": "big"}, env_file=None)
    assert route(s2, haiku, thinking=THINK) == ("small", "background")
    # think beats the default
    assert route(s, "claude-3-7-something", thinking=THINK) == ("big", "think")
    assert route(s, "claude-3-7-something") == ("default", "default")


def test_every_rule_name_is_reachable() -> None:
    s = load_settings(ALL, env_file=None)
    seen = {
        route(s, image=True)[1],
        route(s, size=LONG)[1],
        route(s, "small")[1],
        route(s, "claude-opus-4")[1],
        route(s, "claude-haiku-4-5")[1],
        route(s, thinking=THINK)[1],
        route(s)[1],
    }
    assert seen == set(RULES)


# --- images in OpenAI requests -----------------------------------------------------------------------

PNG = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVQI12P4z8AAAAMBAQAY3Y2wAAAAAElFTkSuQmCC"


def test_openai_image_parts_anywhere() -> None:
    text = {"role": "user", "content": "hello"}
    image = {
        "role": "user",
        "content": [{"type": "text", "text": "?"}, {"type": "image_url", "image_url": {"url": PNG}}],
    }
    tool = {
        "role": "tool",
        "tool_call_id": "c1",
        "content": [{"type": "image_url", "image_url": {"url": PNG}}],
    }
    assert not has_openai_image({"messages": [text]})
    assert has_openai_image({"messages": [text, image]})
    assert has_openai_image({"messages": [text, tool]})
    assert has_openai_image(
        {"messages": [{"role": "user", "content": [{"type": "video_url", "video_url": {}}]}]}
    )
    assert not has_openai_image({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]})


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"messages": None},
        {"messages": "x"},
        {"messages": [None, 1, "s"]},
        {"messages": [{"content": [1, None]}]},
    ],
)
def test_openai_image_detection_never_raises(body: Any) -> None:
    assert has_openai_image(body) is False


# --- configuration -----------------------------------------------------------------------------------


@pytest.mark.parametrize("var", ["ROUTE_BACKGROUND", "ROUTE_THINK", "ROUTE_LONG_CONTEXT"])
def test_route_to_an_unknown_backend_stops_start_up(var: str) -> None:
    with pytest.raises(
        ConfigError, match=rf"{var} names unknown backend 'ghost' \(configured: big, default, small\)"
    ):
        load_settings({**BASE, var: "ghost"}, env_file=None)


def test_model_map_to_an_unknown_backend_stops_start_up() -> None:
    with pytest.raises(ConfigError, match="MODEL_MAP names unknown backend 'vision'"):
        load_settings({**BASE, "MODEL_MAP": "*=small,*vl*=vision"}, env_file=None)  # no VISION_URL set
    assert load_settings({**BASE, "VISION_URL": "http://v:1", "MODEL_MAP": "*vl*=vision"}, env_file=None)
