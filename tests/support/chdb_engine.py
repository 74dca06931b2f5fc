"""chdb, the ClickHouse engine in-process, for tests that run SQL on it directly."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from scripts.clickhouse_schema.files import TELEMETRY_DATABASE, apply_schema
from scripts.native_stack.chdb_server import AdapterProcess

# chdb keeps one engine per process; its data path is fixed by the first Session opened.
_PATH_CONFLICT = re.compile(r"already initialized with path '([^']*)'")


def chdb_session() -> Any:
    """A chdb Session on the process-wide engine (whatever data path it was opened with).

    Sessions in one process share a single engine, so callers isolate themselves by database
    (drop and re-create `otel`) rather than by session.
    """
    from chdb import session as chdb_session_mod

    try:
        return chdb_session_mod.Session()
    except Exception as exc:
        match = _PATH_CONFLICT.search(str(exc))
        if not match:
            raise
        return chdb_session_mod.Session(match.group(1))


class FreshOtelDatabase:
    """The telemetry database (`otel`) dropped and applied from the schema files on chdb's
    process-wide engine: the test isolation every module that runs SQL on the schema uses.

    `query(sql, fmt)` is chdb's own; `execute(sql)` is the callable apply_schema expects.
    """

    def __init__(self) -> None:
        self.session = chdb_session()
        self.statements = self.reset()

    def query(self, sql: str, fmt: str = "CSV") -> Any:
        return self.session.query(sql, fmt)

    def execute(self, sql: str) -> Any:
        return self.query(sql, "CSV")

    def rows(self, sql: str) -> list[dict[str, Any]]:
        """The result as one dict per row (JSONEachRow)."""
        out = self.query(sql, "JSONEachRow").bytes().decode()
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def reset(self) -> list[str]:
        """Drop `otel` and apply the schema from scratch; the files applied, in order."""
        self.execute(f"DROP DATABASE IF EXISTS `{TELEMETRY_DATABASE}` SYNC")
        return apply_schema(self.execute)


# The ClickHouse HTTP adapter's users (scripts/native_stack/chdb_server: test-only).
ADMIN_PASSWORD = "admin-" + "6b" * 8
READER_PASSWORD = "reader-" + "7a" * 8


class SchemaServer:
    """chdb behind the repository's ClickHouse HTTP adapter, in a process of its own, with the
    schema applied: `admin` (an admin client on it) and a read-only `otel_reader`, whose
    passwords are ADMIN_PASSWORD and READER_PASSWORD."""

    def __init__(self, data_dir: Path) -> None:
        import clickhouse_connect

        users = {
            "admin": {"password": ADMIN_PASSWORD},
            "otel_reader": {"password": READER_PASSWORD, "readonly": True},
        }
        self.process = AdapterProcess(data_dir, users=users).start()
        self.host, self.port = self.process.host, self.process.port
        self.admin = clickhouse_connect.get_client(
            host=self.host,
            port=self.port,
            username="admin",
            password=ADMIN_PASSWORD,
            compress=False,
        )
        apply_schema(self.admin.command)

    def stop(self) -> None:
        self.admin.close()
        self.process.stop()


# ---------------------------------------------------------------- exporter-shaped span rows
#
# Rows as the contrib clickhouse exporter stores a span (exporter_traces.go at v0.161.0):
# every attribute value goes through pcommon.Value.AsString, Duration is end - start in ns,
