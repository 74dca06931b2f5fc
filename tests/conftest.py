"""Shared fixtures: the native stack and the guard that real components exist."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.native_stack.harness import NativeStack, StackOptions
from scripts.native_stack.paths import COLLECTOR_BIN
from tests.support.ci import IN_CI
from tests.support.compose_loader import build_compose_config

# Fixtures that start the proxy, the collector or the Docker stack: their tests are `stack`.
STACK_FIXTURES = {"stack", "make_stack", "lf_stack", "engine"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if STACK_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.stack)


def require_collector() -> None:
    """Locally a missing collector skips; under CI a real component that is absent fails."""
    if COLLECTOR_BIN.exists():
        return
    message = f"collector binary {COLLECTOR_BIN} missing: run `make collector`"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def compose_config() -> Path:
    """Compose's own loader, built once (tests/support/compose_loader.py)."""
    return build_compose_config()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeStack]:
    """One default stack per test module (the proxy takes ~10 s to start)."""
    require_collector()
    with NativeStack(tmp_path_factory.mktemp("stack")) as running:
        yield running


@pytest.fixture
def make_stack(tmp_path: Path) -> Iterator[object]:
    """Start a stack with custom options inside one test; stopped at the end of it."""
    require_collector()
    started: list[NativeStack] = []

    def factory(**options: object) -> NativeStack:
        running = NativeStack(tmp_path / f"stack{len(started)}", StackOptions(**options))  # type: ignore[arg-type]
        started.append(running)
        return running.start()

    yield factory
    for running in started:
        running.stop()
