"""Fixtures of the `make verify` tests: small real servers, a port that never answers, and
ClickHouse (chdb behind the repository's HTTP adapter) with the schema."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import pytest

from scripts.native_stack.http_double import App, LocalServer
from tests.support.chdb_engine import SchemaServer
from tests.verify.verify_context import ClickHouse


@pytest.fixture
def serve() -> Iterator[Callable[[App], LocalServer]]:
    servers: list[LocalServer] = []

    def start(app: App) -> LocalServer:
        servers.append(LocalServer(app).start())
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """Accepts connections (kernel backlog) but never answers: a hung service."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def clickhouse_adapter(schema_server: SchemaServer) -> ClickHouse:
    """The schema server with an empty second database; `admin` writes spans as the exporter
    stores them."""
    schema_server.admin.command("CREATE DATABASE IF NOT EXISTS verify_empty")
    return ClickHouse(schema_server.port, schema_server.admin)
