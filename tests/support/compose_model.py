"""The compose model as Compose's loader prints it (`docker compose config --format json`), and
what the compose tests share about it: the secrets it requires and the default host ports."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

Model = dict[str, Any]

# Values for the secrets compose requires (`${VAR:?...}`); everything else keeps its default.
TEST_SECRETS: dict[str, str] = {
    "LITELLM_MASTER_KEY": "sk-test-master-key",
    "CLICKHOUSE_ADMIN_PASSWORD": "test-admin-password",
    "CLICKHOUSE_WRITER_PASSWORD": "test-writer-password",
    "CLICKHOUSE_READER_PASSWORD": "test-reader-password",
}

# Host port -> container port for each service with the .env defaults (.env.example).
DEFAULT_PORTS: dict[str, set[tuple[str, int]]] = {
    "litellm": {("4000", 4000)},
    "otel-collector": {("4317", 4317), ("4318", 4318), ("13133", 13133), ("8888", 8888)},
    "clickhouse": {("8124", 8123), ("9002", 9000)},
}


def services(model: Model) -> dict[str, Model]:
    return model["services"]


def published(model: Model, service: str) -> set[tuple[str, int]]:
    return {(p["published"], p["target"]) for p in services(model)[service].get("ports", [])}


def all_ports(model: Model) -> Iterator[tuple[str, Model]]:
    for name, service in services(model).items():
        for port in service.get("ports", []):
            yield name, port
