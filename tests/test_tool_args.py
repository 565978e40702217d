"""Tool-argument parsing and repair (router/tool_args.py)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.tool_args import RAW_ARGUMENTS_KEY, parse_tool_arguments


def test_valid_object_keeps_key_order() -> None:
    parsed = parse_tool_arguments('{"z": 1, "a": {"y": true, "b": null}}')
    assert parsed == {"z": 1, "a": {"y": True, "b": None}}
    assert list(parsed) == ["z", "a"] and list(parsed["a"]) == ["y", "b"]


@pytest.mark.parametrize("raw", ["", "   ", None, "\n"])
def test_empty_arguments_mean_no_parameters(raw: str | None) -> None:
    assert parse_tool_arguments(raw) == {}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"a": 1}}</tool_call>', {"a": 1}),  # trailing garbage
        ('{"a": 1} {"b": 2}', {"a": 1}),
        ('{"command": "ls -l', {"command": "ls -l"}),  # cut inside a string value
        ('{"path": "/x", "n": 12', {"path": "/x", "n": 12}),  # cut after a number
        ('{"a": [1, 2, {"b": "c', {"a": [1, 2, {"b": "c"}]}),  # nested containers
        ('{"a": "x", "b', {"a": "x"}),  # cut inside a key
        ('{"a": "x", "b": ', {"a": "x"}),  # cut after a colon
        ('{"a": 1,', {"a": 1}),  # dangling comma
        ('{"a": "tab\\', {"a": "tab"}),  # cut inside an escape
        ('{"q": "say \\"hi\\" now', {"q": 'say "hi" now'}),
        ("{'a': 'b', 'c': True, 'd': None}", {"a": "b", "c": True, "d": None}),  # Python literal
        ('"{\\"a\\": 1}"', {"a": 1}),  # double-encoded
        ('```json\n{"a": 1}\n```', {"a": 1}),  # Markdown fence
        ('Sure! {"a": 1}', {"a": 1}),  # leading chatter
    ],
)
def test_repairable_arguments(raw: str, expected: dict) -> None:
    assert parse_tool_arguments(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "96191036594135103689648321033323345932553212248177064412644",  # 36c: a bare number
        "[1, 2]",
        '"just a string"',
        "true",
        "not json at all",
        '{"a":',
        "{",
        "{'a': {1, 2}}",  # a Python set is not JSON
    ],
)
def test_irreparable_or_non_object_keeps_the_raw_text(raw: str) -> None:
    assert parse_tool_arguments(raw) == {RAW_ARGUMENTS_KEY: raw}


def test_non_string_input() -> None:
    assert parse_tool_arguments({"a": 1}) == {"a": 1}
    assert parse_tool_arguments([1, 2]) == {RAW_ARGUMENTS_KEY: "[1,2]"}
    assert parse_tool_arguments(2**70) == {RAW_ARGUMENTS_KEY: str(2**70)}


def test_large_garbage_is_handled_quickly() -> None:
    raw = '{"a": "' + "x" * 200_000 + '", "b": ' + "[" * 5000
    parsed = parse_tool_arguments(raw)
    assert parsed["a"] == "x" * 200_000


# Integers stay within 64 bits: orjson (like JavaScript, where Claude Code parses the input) does
# not keep larger ones exact.
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(max_size=6), JSON_VALUES, min_size=1, max_size=4), st.data())
def test_any_truncation_of_a_valid_object_never_raises_and_stays_an_object(
    obj: dict, data: st.DataObject
) -> None:
    text = json.dumps(obj)
    assert parse_tool_arguments(text) == obj
    cut = data.draw(st.integers(min_value=1, max_value=len(text)))
    parsed = parse_tool_arguments(text[:cut])
    assert isinstance(parsed, dict)
    if RAW_ARGUMENTS_KEY not in parsed:
        json.dumps(parsed)  # whatever was repaired is valid JSON again
