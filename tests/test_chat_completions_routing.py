"""The routing rules through HTTP: each request lands on the right backend with that backend's model,
on the OpenAI route and on the Anthropic one (images in Anthropic tool results included)."""

from __future__ import annotations

import orjson
import pytest
from chat_completions_harness import HELLO, PNG, Start, start_fixture  # noqa: F401  (the `start` fixture)
from fake_vllm import FakeVLLM


async def test_openai_image_goes_to_the_vision_backend(start: Start) -> None:
    rig = await start()
    client = rig.openai()
    content = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    ]
    raw = await client.chat.completions.with_raw_response.create(
        model="small", messages=[{"role": "user", "content": content}]
    )
    assert raw.parse().choices[0].message.content
    assert raw.headers["x-router-backend"] == "vision" and raw.headers["x-router-model"] == "vision-model"
    assert rig.counts() == {"default": 0, "small": 0, "vision": 1}
    assert rig.fakes["vision"].requests[0]["model"] == "vision-model"
    await client.close()


async def test_images_go_to_the_main_backend_without_vision_url(start: Start) -> None:
    rig = await start({"default": FakeVLLM("text-model", multimodal=True)})
    content = [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]
    async with await rig.post({"model": "m", "messages": [{"role": "user", "content": content}]}) as resp:
        assert resp.status == 200 and resp.headers["x-router-backend"] == "default"


async def test_image_in_an_anthropic_tool_result_goes_to_the_vision_backend(start: Start) -> None:
    rig = await start()
    client = rig.anthropic()
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    messages = [
        {"role": "user", "content": "take a screenshot"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "shot", "input": {}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": [image]}]},
    ]
    raw = await client.messages.with_raw_response.create(
        model="claude-sonnet-4", max_tokens=64, messages=messages
    )
    assert (await raw.parse()).content[0].text  # type: ignore[union-attr]
    assert raw.headers["x-router-backend"] == "vision" and raw.headers["x-router-model"] == "vision-model"
    assert rig.counts() == {"default": 0, "small": 0, "vision": 1}
    sent = orjson.dumps(rig.fakes["vision"].requests[0]["messages"])
    assert PNG.encode() in sent and rig.fakes["vision"].requests[0]["model"] == "vision-model"
    await client.close()


ROUTES = {
    "BACKEND_SMALL_MODEL": "small-model",  # configured; the other backends' models are discovered
    "MODEL_MAP": "claude-opus-*=vision, *sonnet*=small",
    "ROUTE_BACKGROUND": "small",
    "ROUTE_THINK": "vision",
    "ROUTE_LONG_CONTEXT": "vision",
    "LONG_CONTEXT_TOKENS": "2000",
}


@pytest.mark.parametrize(
    ("extra", "backend", "rule"),
    [
        ({"model": "gpt-4o"}, "default", "default"),
        ({"model": "small"}, "small", "model"),
        ({"model": "small-model"}, "small", "model"),
        ({"model": "claude-opus-4-1"}, "vision", "model_map"),
        ({"model": "claude-sonnet-4"}, "small", "model_map"),
        ({"model": "claude-haiku-4-5"}, "small", "background"),
        ({"model": "claude-3-7", "reasoning_effort": "high"}, "vision", "think"),
        ({"model": "small", "user": "x" * 9000}, "vision", "long_context"),
        ({"model": "claude-haiku-4-5", "reasoning_effort": "high"}, "small", "background"),
        ({"model": "claude-sonnet-4", "reasoning_effort": "high"}, "small", "model_map"),
    ],
)
async def test_each_route_rule_lands_on_its_backend(
    start: Start, extra: dict, backend: str, rule: str
) -> None:
    rig = await start(**ROUTES)
    async with await rig.post({"messages": HELLO, **extra}) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.headers["x-router-backend"] == backend
        assert resp.headers["x-router-model"] == rig.fakes[backend].config.model
    assert rig.counts() == {name: int(name == backend) for name in rig.fakes}
    assert rig.fakes[backend].requests[0]["model"] == rig.fakes[backend].config.model
    assert (await rig.telemetry.last()).route_rule == rule


async def test_anthropic_route_rules_through_messages(start: Start) -> None:
    rig = await start(**ROUTES)
    client = rig.anthropic()
    for model, thinking, backend in [
        ("claude-haiku-4-5", None, "small"),
        ("claude-opus-4-1", None, "vision"),
        ("some-unknown-model", None, "default"),
        ("claude-3-7", {"type": "enabled", "budget_tokens": 1024}, "vision"),
    ]:
        extra = {"thinking": thinking} if thinking else {}
        raw = await client.messages.with_raw_response.create(
            model=model, max_tokens=2048, messages=HELLO, **extra
        )
        await raw.parse()
        assert raw.headers["x-router-backend"] == backend, model
    assert rig.counts() == {"default": 1, "small": 1, "vision": 2}
    await client.close()
