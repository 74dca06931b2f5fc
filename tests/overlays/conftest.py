"""Fixtures of the overlay tests: a fake Langfuse and a native stack exporting to it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scripts.native_stack import collector as collector_support
from scripts.native_stack.harness import (
    StackOptions,
)
from tests.conftest import require_collector
from tests.doubles.fake_langfuse import FakeLangfuse
from tests.overlays.langfuse_support import (
    PUBLIC_KEY,
    SECRET_KEY,
    WITH_LANGFUSE,
    LangfuseStack,
)


@pytest.fixture(scope="module")
def langfuse() -> Iterator[FakeLangfuse]:
    with FakeLangfuse(PUBLIC_KEY, SECRET_KEY) as fake:
        yield fake


@pytest.fixture(scope="module")
def langfuse_stack(
    tmp_path_factory: pytest.TempPathFactory, langfuse: FakeLangfuse
) -> Iterator[LangfuseStack]:
    require_collector()
    with pytest.MonkeyPatch.context() as mp:
        # The collector runs with config.langfuse.yaml as its own --config, as in compose.
        mp.setattr(collector_support, "COLLECTOR_CONFIGS", WITH_LANGFUSE)
        running = LangfuseStack(tmp_path_factory.mktemp("langfuse-stack"), langfuse, StackOptions())
        with running:
            yield running
