"""The fixture reader other tests rely on (tests/vllm_fixtures.py)."""

from __future__ import annotations

import json

import pytest
from vllm_fixtures import (
    VLLM_DIR,
    json_body,
    load_exchange,
    load_exchanges,
    parse_exchanges,
    vllm_fixture_names,
)


def test_every_recorded_file_parses() -> None:
    names = vllm_fixture_names()
    assert len(names) >= 80
    for name in names:
        exchanges = load_exchanges(name)
        assert exchanges, name
        for ex in exchanges:
            assert ex["method"] in {"GET", "POST"} and ex["path"].startswith("/"), name
            assert 200 <= ex["status"] < 600, name
            if "content-length" in ex["headers"]:
                assert len(ex["body"]) == int(ex["headers"]["content-length"]), name
            if ex["headers"].get("content-type", "").startswith("text/event-stream"):
                assert ex["body"].startswith((b"data: ", b"event: ")) and ex["body"].endswith(b"\n\n"), name
            elif ex["body"]:
                json.loads(ex["body"])


def test_fields_of_one_exchange() -> None:
    ex = load_exchange("12_chat_stream_no_stream_options.txt")
    assert (ex["method"], ex["path"], ex["status"]) == ("POST", "/v1/chat/completions", 200)
    assert ex["note"] == "no usage chunk expected"
    assert ex["request"]["stream"] is True and ex["headers"]["content-type"].startswith("text/event-stream")
    assert ex["body"].endswith(b"data: [DONE]\n\n")


def test_non_json_requests_and_empty_bodies() -> None:
    invalid = load_exchange("60_err_invalid_json")
    assert invalid["request"] is None and invalid["request_raw"] == b'{"model": "tiny", "messages": ['
    assert load_exchange("73_err_405_method")["request_raw"] == b""
    health = load_exchange("00_health")
    assert health["body"] == b"" and health["status"] == 200
    assert json_body(load_exchange("02_version"))["version"] == "0.32.0"


def test_several_exchanges_in_one_file() -> None:
    parts = ["11_chat_basic_stream_usage", "10_chat_basic", "00_health", "15_chat_stop_sequence_stream"]
    data = b"".join((VLLM_DIR / f"{p}.txt").read_bytes() for p in parts)
    exchanges = parse_exchanges(data)
    assert [e["body"] for e in exchanges] == [load_exchange(p)["body"] for p in parts]


def test_garbage_is_rejected() -> None:
    with pytest.raises(ValueError):
        parse_exchanges(b"hello\n")
    with pytest.raises(ValueError):
        parse_exchanges(b">>> GET /x\nno status\n")
