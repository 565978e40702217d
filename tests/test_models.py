"""GET /v1/models and /v1/models/{id}: one answer both official SDKs parse, listing every model a client
may ask for (backends' models and route aliases), with Anthropic paging."""

from __future__ import annotations

from datetime import datetime

import anthropic
import openai
import pytest

# The router-with-fake-backends rig is shared with the chat completions tests; pytest registers the
# `start` fixture on import.
from chat_completions_harness import KEY, Rig, Start, start_fixture  # noqa: F401
from fake_vllm import FakeVLLM

ENV = {"MODEL_MAP": "claude-opus-4-1=small, claude-*=default", "ROUTE_BACKGROUND": "small"}
IDS = ["text-model", "vision-model", "org/big-model", "small-model", "big", "small", "claude-opus-4-1"]


async def rig_with_four(start: Start) -> Rig:
    fakes = {
        "default": FakeVLLM("text-model", max_model_len=32768),
        "vision": FakeVLLM("vision-model", multimodal=True),
        "big": FakeVLLM("org/big-model", max_model_len=131072),  # discovered at start-up
        "small": FakeVLLM("small-model", max_model_len=4096),
    }
    return await start(fakes, BACKEND_SMALL_MODEL="small-model", **ENV)


async def test_anthropic_sdk_lists_every_model_and_alias(start: Start) -> None:
    rig = await rig_with_four(start)
    client = rig.anthropic()
    page = await client.models.list()
    assert [m.id for m in page.data] == IDS
    assert page.has_more is False and (page.first_id, page.last_id) == (IDS[0], IDS[-1])
    by_id = {m.id: m for m in page.data}
    big = by_id["org/big-model"]
    assert big.type == "model" and isinstance(big.created_at, datetime) and big.created_at.tzinfo is not None
    assert big.max_input_tokens == 131072 and by_id["small"].max_input_tokens == 4096
    assert by_id["text-model"].display_name == "text-model"
    assert by_id["small"].display_name == "small (small-model)"
    assert by_id["claude-opus-4-1"].display_name == "claude-opus-4-1 (small-model)"
    assert all(m.lifecycle == "active" for m in page.data)
    await client.close()


async def test_openai_sdk_lists_the_same_models(start: Start) -> None:
    rig = await rig_with_four(start)
    client = rig.openai()
    models = [m async for m in client.models.list()]
    assert [m.id for m in models] == IDS
    for m in models:
        assert m.object == "model" and isinstance(m.created, int) and m.created > 1_600_000_000
    assert {m.id: m.owned_by for m in models}["claude-opus-4-1"] == "anthropic-router:small"
    await client.close()


async def test_anthropic_paging_after_and_before(start: Start) -> None:
    rig = await rig_with_four(start)
    client = rig.anthropic()
    first = await client.models.list(limit=3)
    assert [m.id for m in first.data] == IDS[:3] and first.has_more is True and first.last_id == IDS[2]
    assert [m.id async for m in client.models.list(limit=2)] == IDS  # the SDK follows after_id
    before = await client.models.list(before_id="small", limit=2)
    assert [m.id for m in before.data] == IDS[3:5] and before.has_more is True
    start_page = await client.models.list(before_id=IDS[2], limit=5)
    assert [m.id for m in start_page.data] == IDS[:2] and start_page.has_more is False
    tail = await client.models.list(after_id=IDS[-1])
    assert tail.data == [] and tail.has_more is False and tail.first_id is None
    await client.close()


@pytest.mark.parametrize("limit", ["0", "1001", "x"])
async def test_bad_limit_is_a_400(start: Start, limit: str) -> None:
    rig = await start()
    async with rig.session.get(rig.url + f"/v1/models?limit={limit}", headers={"x-api-key": KEY}) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["type"] == "invalid_request_error"


async def test_retrieve_by_id_alias_and_slash(start: Start) -> None:
    rig = await rig_with_four(start)
    a, o = rig.anthropic(), rig.openai()
    assert (await a.models.retrieve("small")).display_name == "small (small-model)"
    assert (
        await o.models.retrieve("org/big-model")
    ).owned_by == "anthropic-router:big"  # sent as org%2Fbig-model
    async with rig.session.get(rig.url + "/v1/models/org/big-model", headers={"x-api-key": KEY}) as resp:
        assert resp.status == 200 and (await resp.json())["max_input_tokens"] == 131072
    await a.close()
    await o.close()


async def test_retrieve_names_a_rule_would_route(start: Start) -> None:
    rig = await rig_with_four(start)
    client = rig.anthropic()
    sonnet = await client.models.retrieve("claude-sonnet-4")  # MODEL_MAP glob claude-* → default
    assert sonnet.id == "claude-sonnet-4" and sonnet.display_name == "claude-sonnet-4 (text-model)"
    haiku = await client.models.retrieve("claude-haiku-4-5")  # also claude-*: MODEL_MAP beats background
    assert haiku.display_name == "claude-haiku-4-5 (text-model)"
    with pytest.raises(anthropic.NotFoundError):
        await client.models.retrieve("gpt-4o")  # only the catch-all default would take it
    await client.close()
    o = rig.openai()
    with pytest.raises(openai.NotFoundError):
        await o.models.retrieve("nope")
    await o.close()


async def test_models_need_the_api_key(start: Start) -> None:
    rig = await start()
    async with rig.session.get(rig.url + "/v1/models") as resp:
        assert resp.status == 401
