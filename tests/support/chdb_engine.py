"""chdb, the ClickHouse engine in-process, for tests that run SQL on it directly."""

from __future__ import annotations

import re
from typing import Any

from scripts.clickhouse_schema.files import TELEMETRY_DATABASE, Execute, apply_schema

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


def chdb_executor(session: Any) -> Execute:
    """Adapt a chdb Session to the execute(sql) callable apply_schema expects."""

    def execute(sql: str) -> Any:
        return session.query(sql, "CSV")

    return execute


def reset_schema(execute: Execute) -> list[str]:
    """Drop the telemetry database and apply the schema from scratch.

    Test isolation on chdb's shared engine: every module that needs a clean `otel` calls this.
    """
    execute(f"DROP DATABASE IF EXISTS `{TELEMETRY_DATABASE}` SYNC")
    return apply_schema(execute)


# ---------------------------------------------------------------- exporter-shaped span rows
#
# Rows as the contrib clickhouse exporter stores a span (exporter_traces.go at v0.161.0):
# every attribute value goes through pcommon.Value.AsString, Duration is end - start in ns,
