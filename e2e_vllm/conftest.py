"""Fixtures and the results table of ``make e2e-vllm`` (a real vLLM; not part of ``make test`` or CI).

Each scenario runs against the router and against vLLM's own ``/v1/messages`` (the ``side``
parameter). A router failure is a failure; the same check failing on vLLM's native endpoint is an
expected failure (xfail) whose reason is the difference, so the run is green when the router is right
and the table still shows where vLLM's native endpoint falls short. The table lands in
``$E2E_VLLM_OUT/results.md`` (default ``.e2e/vllm/``) with the raw exchanges next to it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))  # anthropic_stream_check, fake_vllm, fake_vllm_wire

from vllm_stack import MODEL_DIR, OUT, THINK_MODEL_DIR, Stack, running_stack, vllm_installed  # noqa: E402

SCENARIO_TIMEOUT = 300  # seconds per test, vLLM start-up (40-70 s on 2 busy cores) included
_results: dict[str, dict[str, dict]] = {}  # scenario -> side -> {outcome, detail, notes}
_order: list[str] = []
_startup: dict[str, float] = {}  # stack name -> seconds from `serve.sh` to a healthy vLLM


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """vLLM serving the tiny tool-calling model (hermes parser), with the router in front."""
    if not vllm_installed():
        pytest.skip("no vLLM venv or tiny model: run `make e2e-vllm` (it runs e2e_vllm/setup.sh first)")
    with running_stack("main", MODEL_DIR) as running:
        _startup["main"] = running.startup_s
        yield running


@pytest.fixture(scope="module")
def think_stack() -> Iterator[Stack]:
    """vLLM serving the tiny reasoning model (deepseek_r1 parser: the template opens <think>)."""
    if not vllm_installed() or not Path(THINK_MODEL_DIR, "config.json").is_file():
        pytest.skip("no vLLM venv or tiny reasoning model: run `make e2e-vllm`")
    with running_stack("thinking", THINK_MODEL_DIR, reasoning="deepseek_r1") as running:
        _startup["thinking"] = running.startup_s
        yield running


@pytest.fixture(params=["router", "native"])
def side(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def note(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """``note(text)`` adds a line to this scenario's notes column."""

    def add(text: str) -> None:
        request.node.user_properties.append(("note", text))

    return add


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.timeout(SCENARIO_TIMEOUT))


def _scenario(item_name: str) -> tuple[str, str]:
    """("text_stream", "router") from "test_text_stream[router]"; params other than the side stay."""
    name, _, params = item_name.removeprefix("test_").partition("[")
    parts = params.rstrip("]").split("-") if params else []
    side = next((p for p in parts if p in ("router", "native")), "router")
    rest = [p for p in parts if p != side]
    return (f"{name}[{'-'.join(rest)}]" if rest else name), side


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or report.outcome != "passed":
        scenario, side = _scenario(report.nodeid.split("::")[-1])
        if hasattr(report, "wasxfail"):
            outcome, detail = "xfail", report.wasxfail
        elif report.outcome == "skipped":
            outcome = "skip"
            detail = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        elif report.outcome == "failed":
            outcome, detail = "FAIL", _short(report)
        else:
            outcome, detail = "pass", ""
        notes = [text for key, text in report.user_properties if key == "note"]
        if scenario not in _results:
            _order.append(scenario)
        entry = _results.setdefault(scenario, {}).setdefault(side, {"notes": []})
        if report.when != "teardown" or outcome == "FAIL":
            entry.update(outcome=outcome, detail=detail)
        entry["notes"] += notes


def _short(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    return " ".join(text.split())[:300]


def _cell(entry: dict | None) -> str:
    if entry is None:
        return "n/a"
    detail = entry.get("detail", "")
    return entry.get("outcome", "?") + (f": {detail}" if detail else "")


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not _results:
        return
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps({s: _results[s] for s in _order}, indent=1))
    started = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in _startup.items())
    lines = [f"vLLM start-up (serve.sh to /health 200): {started}", ""]
    lines += ["| scenario | router | vLLM native /v1/messages | notes |", "| --- | --- | --- | --- |"]
    for scenario in _order:
        sides = _results[scenario]
        notes = [
            f"{side}: {n}" for side in ("router", "native") for n in sides.get(side, {}).get("notes", [])
        ]
        cells = [_md(_cell(sides.get("router"))), _md(_cell(sides.get("native"))), _md("; ".join(notes))]
        lines.append(f"| {scenario} | " + " | ".join(cells) + " |")
    (OUT / "results.md").write_text("\n".join(lines) + "\n")


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    path = OUT / "results.md"
    if _results and path.is_file():
        terminalreporter.write_sep("=", f"real vLLM results ({path})")
        terminalreporter.write_line(path.read_text())
