"""The chdb adapter as a child process, one per test module (module-scoped)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scripts.native_stack.chdb_server import AdapterProcess

from .chdb_clients import USERS


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdapterProcess]:
    workdir = tmp_path_factory.mktemp("chdb-adapter")
    proc = AdapterProcess(
        workdir / "data", users=USERS, verbose=True, log_path=workdir / "adapter.log"
    )
    proc.start(timeout=30)
    try:
        yield proc
    finally:
        proc.stop()
