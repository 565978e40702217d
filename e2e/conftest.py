"""Session fixtures for the e2e tests (the stack itself lives in stack.py)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stack import VERSIONS, Stack, running_stack


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    with running_stack() as running:
        yield running
        if os.environ.get("E2E_RECORD"):
            from record_fixture import write

            for path in write(running.exchanges()):
                print(f"\nrecorded {path}")


@pytest.fixture(scope="session", params=VERSIONS, ids=[f"cc{v}" for v in VERSIONS])
def version(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Checks over the whole session's logs (marked ``last``) run after every scenario."""
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "last: run after all other e2e tests")
