"""Shared fixtures: the native stack and the guard that real components exist."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.native_stack.harness import NativeStack, StackOptions
from scripts.native_stack.paths import COLLECTOR_BIN
from tests.support.chdb_engine import FreshOtelDatabase, SchemaServer
from tests.support.ci import missing_tool
from tests.support.compose_loader import build_compose_config


# Fixtures that start the proxy, the collector or the Docker stack are named `*_stack` (or are
# the Docker `engine`): tests that use one are marked `stack`.
def starts_a_stack(fixture_name: str) -> bool:
    return fixture_name.endswith("_stack") or fixture_name == "engine"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(starts_a_stack(name) for name in getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.stack)


def require_collector() -> None:
    """Locally a missing collector skips; under CI a real component that is absent fails."""
    if COLLECTOR_BIN.exists():
        return
    missing_tool(f"collector binary {COLLECTOR_BIN} missing: run `make collector`")


@pytest.fixture(scope="module")
def fresh_otel_db() -> FreshOtelDatabase:
    """The ClickHouse engine in-process (chdb) with `otel` freshly applied, once per module."""
    return FreshOtelDatabase()


@pytest.fixture(scope="module")
def schema_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SchemaServer]:
    """The schema on chdb behind the ClickHouse HTTP adapter, for clients over HTTP, per module."""
    server = SchemaServer(tmp_path_factory.mktemp("schema-server") / "data")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def compose_config() -> Path:
    """Compose's own loader, built once (tests/support/compose_loader.py)."""
    return build_compose_config()


@pytest.fixture(scope="module")
def default_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeStack]:
    """The proxy and the collector with default options, one per test module (the proxy takes
    ~10 s to start); spans land in the collector's file export, no ClickHouse."""
    require_collector()
    with NativeStack(tmp_path_factory.mktemp("stack")) as running:
        yield running


@pytest.fixture(scope="module")
def clickhouse_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeStack]:
    """The proxy, the collector and the ClickHouse engine (chdb behind the test adapter), one
    per test module."""
    require_collector()
    with NativeStack(
        tmp_path_factory.mktemp("clickhouse-stack"), StackOptions(clickhouse=True)
    ) as running:
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
