"""Fixtures for the Docker flows: an engine (or a skip, never under CI), the stand-in images,
and one compose stack per test module, always torn down with its volumes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docker.images import Choice, choose, shipped_images, wants_shipped
from tests.docker.stack import (
    FAKE_OPENROUTER_OVERLAY,
    PROVIDER_MODEL,
    SANDBOX_NOFILE,
    ComposeStack,
    copy_repository,
    engine_problem,
    standin_settings,
)
from tests.support.ci import IN_CI


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.docker)
            item.add_marker(pytest.mark.stack)


@pytest.fixture(scope="session")
def engine() -> None:
    """A Docker engine and Compose v2 answer; else a skip saying why (a failure under CI)."""
    problem = engine_problem()
    if problem:
        if IN_CI:
            pytest.fail(f"Docker tests need an engine under CI: {problem}")
        pytest.skip(f"Docker tests skipped: {problem}")


_CHOSEN: list[Choice] = []


@pytest.fixture(scope="session")
def standins(engine: None) -> dict[str, str]:
    """The images' .env lines: the stand-ins (building them needs root, debootstrap, the first
    time), or the shipped images where asked for (STANDINS=0) or already on the engine."""
    try:
        choice = choose(standin_settings(), shipped_images(), wants_shipped())
    except RuntimeError as exc:
        if IN_CI or wants_shipped():
            raise
        pytest.skip(f"Docker tests skipped: {str(exc).splitlines()[0]}")
    _CHOSEN.append(choice)
    return choice.images


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say which images the flows ran (stand-in or shipped), once per run."""
    for choice in _CHOSEN:
        terminalreporter.write_line(choice.describe())


def stack_settings(standins: dict[str, str]) -> dict[str, str]:
    """Everything a test stack adds to what `make init` writes: only `.env` values."""
    images = ("LITELLM_BASE_IMAGE", "OTEL_COLLECTOR_IMAGE", "CLICKHOUSE_IMAGE")
    return {
        **{key: standins[key] for key in images},
        "CLICKHOUSE_NOFILE_LIMIT": SANDBOX_NOFILE,
        "COMPOSE_FILE": f"docker-compose.yml:{FAKE_OPENROUTER_OVERLAY}",
        "OPENROUTER_API_BASE": "http://fake-openrouter:8080/v1",
        "OPENROUTER_API_KEY": "sk-or-fake-for-tests-0123456789",
        "OPENROUTER_MODEL_NAME": PROVIDER_MODEL,
    }


@pytest.fixture(scope="module")
def fresh_clone(
    tmp_path_factory: pytest.TempPathFactory, standins: dict[str, str]
) -> Iterator[tuple[ComposeStack, dict[str, str]]]:
    """A copy of the repository with no .env, and the settings the test will give it; the
    stack it starts is removed at the end, volumes included."""
    stack = ComposeStack(copy_repository(tmp_path_factory.mktemp("clone")))
    settings = {**stack_settings(standins), "COMPOSE_PROJECT_NAME": stack.project}
    try:
        yield stack, settings
    finally:
        stack.destroy()


@pytest.fixture(scope="module")
def running(fresh_clone: tuple[ComposeStack, dict[str, str]]) -> ComposeStack:
    """A stack started with `make up` from a copy with .env written by `make init`."""
    stack, settings = fresh_clone
    stack.make("init").ok()
    stack.set_env(settings)
    stack.make("up").ok()
    return stack
