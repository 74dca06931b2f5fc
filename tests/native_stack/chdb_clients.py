"""What the chdb adapter tests share: its users, a clickhouse-connect client, a poll loop."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from scripts.native_stack.chdb_server import AdapterProcess

USERS: dict[str, dict[str, Any]] = {
    "admin": {"password": "admin-pw"},
    "otel_writer": {"password": "writer-pw"},
    "otel_reader": {"password": "reader-pw", "readonly": True},
}
ADMIN_AUTH = ("admin", "admin-pw")


def connect(
    adapter: AdapterProcess, user: str = "admin", password: str = "admin-pw", **kwargs: Any
) -> Client:
    return clickhouse_connect.get_client(
        host="127.0.0.1",
        port=adapter.port,
        username=user,
        password=password,
        connect_timeout=5,
        send_receive_timeout=20,
        **kwargs,
    )


def wait_until(probe: Callable[[], Any], timeout: float, what: str, log: Callable[[], str]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; log tail:\n{log()}")
