"""The ClickHouse of the native stack: the real engine (chdb) behind the test-only HTTP adapter,
initialised with the repository's own schema files, with the stack's three users."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import clickhouse_connect

from scripts.clickhouse_schema.files import apply_schema

from .chdb_server import AdapterProcess, start_adapter


class StackSecrets(Protocol):
    writer_password: str
    reader_password: str
    admin_password: str


@dataclass
class NativeClickHouse:
    adapter: AdapterProcess
    secrets: StackSecrets
    database: str = "otel"

    @property
    def port(self) -> int:
        return self.adapter.port

    @property
    def endpoint(self) -> str:
        return self.adapter.url

    def client(
        self, user: str = "otel_reader", password: str | None = None, database: str | None = None
    ) -> Any:
        passwords = {
            "admin": self.secrets.admin_password,
            "otel_writer": self.secrets.writer_password,
            "otel_reader": self.secrets.reader_password,
        }
        return clickhouse_connect.get_client(
            host="127.0.0.1",
            port=self.port,
            username=user,
            password=passwords[user] if password is None else password,
            database=database or self.database,
        )

    def stop(self) -> None:
        self.adapter.stop()

    def start(self) -> None:
        """Start again on the same port and data (after `stop`, to simulate an outage)."""
        self.adapter.start()


def start_clickhouse(workdir: Path, secrets: StackSecrets) -> NativeClickHouse:
    workdir.mkdir(parents=True, exist_ok=True)
    users = {
        "admin": {"password": secrets.admin_password, "readonly": False},
        "otel_writer": {"password": secrets.writer_password, "readonly": False},
        "otel_reader": {"password": secrets.reader_password, "readonly": True},
    }
    adapter = start_adapter(workdir / "data", users=users, log_path=workdir / "adapter.log")
    clickhouse = NativeClickHouse(adapter=adapter, secrets=secrets)
    try:
        admin = clickhouse.client("admin", database="default")  # `otel` does not exist yet
        apply_schema(admin.command)
    except BaseException:
        adapter.stop()
        raise
    return clickhouse
