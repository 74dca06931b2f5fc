"""Shared fixtures: the native stack and the guard that real components exist."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.native_stack.harness import NativeStack, StackOptions
from scripts.native_stack.paths import COLLECTOR_BIN

IN_CI = os.environ.get("CI", "").lower() == "true"


def require_collector() -> None:
    """Locally a missing collector skips; under CI a real component that is absent fails."""
    if COLLECTOR_BIN.exists():
        return
    message = f"collector binary {COLLECTOR_BIN} missing: run `make collector`"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


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
