"""Retention by kind on the ClickHouse engine (issue #26): captured content expires before the
usage rows, both from .env; the TTL merges are forced with OPTIMIZE ... FINAL."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.clickhouse_schema.files import INITDB_DIR
from scripts.clickhouse_schema.retention import (
    CONTENT_DAYS_KEY,
    USAGE_DAYS_KEY,
    Retention,
    RetentionError,
)
from tests.support.chdb_engine import FreshOtelDatabase
from tests.support.span_rows import exporter_span_row, insert_span_rows

DAY_NS = 86_400 * 1_000_000_000
RETENTION_SH = INITDB_DIR / "131_retention.sh"


@pytest.fixture
def db() -> Iterator[FreshOtelDatabase]:
    yield FreshOtelDatabase()


def _store(db: FreshOtelDatabase, days_ago: int, marker: str) -> None:
    """One call as the collector splits it: its usage row and its content row."""
    start = time.time_ns() - days_ago * DAY_NS
    usage = exporter_span_row(
        start_ns=start, duration_ns=1, name="chat m", attributes={"litellm.call_id": marker}
    )
    content = {
        **usage,
        "SpanAttributes": {"litellm.call_id": marker, "gen_ai.input.messages": f"[{marker}]"},
    }
    insert_span_rows(db.execute, [usage])
    insert_span_rows(db.execute, [content], table="otel.otel_traces_content")


def _left(db: FreshOtelDatabase, table: str) -> list[str]:
    rows = db.rows(
        f"SELECT SpanAttributes['litellm.call_id'] AS id FROM otel.{table} "
        f"ORDER BY id SETTINGS final = 0"
    )
    return [row["id"] for row in rows]


def _expire(db: FreshOtelDatabase) -> None:
    for table in ("otel_traces", "otel_traces_content"):
        db.execute(f"OPTIMIZE TABLE otel.{table} FINAL")


def test_content_goes_after_its_days_while_usage_stays(db: FreshOtelDatabase) -> None:
    for days_ago, marker in ((1, "a-1d"), (8, "b-8d"), (31, "c-31d")):
        _store(db, days_ago, marker)
    _expire(db)
    assert _left(db, "otel_traces_content") == ["a-1d"]  # 7 days (130_privacy.sql)
    assert _left(db, "otel_traces") == ["a-1d", "b-8d"]  # 30 days (010_traces.sql)


def test_a_changed_retention_reaches_the_stored_rows(db: FreshOtelDatabase) -> None:
    for days_ago, marker in ((1, "a-1d"), (3, "b-3d"), (6, "c-6d")):
        _store(db, days_ago, marker)
    retention = Retention.from_env({USAGE_DAYS_KEY: "5", CONTENT_DAYS_KEY: "2"})
    for statement in retention.statements():  # what `make schema` runs
        db.execute(statement)
    _expire(db)
    assert _left(db, "otel_traces_content") == ["a-1d"]
    assert _left(db, "otel_traces") == ["a-1d", "b-3d"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({USAGE_DAYS_KEY: "ten"}, "whole number of days"),
        ({CONTENT_DAYS_KEY: "0"}, "whole number of days"),
        ({USAGE_DAYS_KEY: "5", CONTENT_DAYS_KEY: "6"}, "must not outlive"),
    ],
)
def test_retention_values_that_cannot_work_are_refused(
    values: dict[str, str], message: str
) -> None:
    with pytest.raises(RetentionError, match=message):
        Retention.from_env(values)


def test_defaults_equal_the_migrations_and_the_first_start_script() -> None:
    defaults = Retention.from_env({})
    assert (defaults.usage_days, defaults.content_days) == (30, 7)
    assert "toIntervalDay(7)" in (INITDB_DIR / "130_privacy.sql").read_text()
    assert "toIntervalDay(30)" in (INITDB_DIR / "010_traces.sql").read_text()
    # The fresh-volume script runs the statements `make schema` runs, with .env's values.
    script = RETENTION_SH.read_text()
    lines = [line.rstrip(";") for line in script.splitlines() if line.startswith("ALTER TABLE")]
    rendered = [
        re.sub(r"\$\{(usage|content)\}", lambda m: {"usage": "12", "content": "3"}[m[1]], line)
        for line in lines
    ]
    assert rendered == Retention(usage_days=12, content_days=3).statements()
    assert f"${{{USAGE_DAYS_KEY}:-30}}" in script and f"${{{CONTENT_DAYS_KEY}:-7}}" in script


def _run_first_start_script(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """131_retention.sh as the server image runs it, its clickhouse-client a stand-in that
    prints the SQL it was given."""
    stub = tmp_path / "clickhouse-client"
    stub.write_text("#!/bin/sh\ncat\n")
    stub.chmod(0o755)
    return subprocess.run(
        ["bash", str(RETENTION_SH)],
        env={"PATH": f"{tmp_path}:/usr/bin:/bin", "CLICKHOUSE_USER": "admin", **env},
        capture_output=True,
        text=True,
        check=False,
    )


def test_first_start_script_applies_env_values_and_refuses_bad_ones(tmp_path: Path) -> None:
    done = _run_first_start_script(tmp_path, **{USAGE_DAYS_KEY: "12", CONTENT_DAYS_KEY: "3"})
    assert done.returncode == 0, done.stderr
    assert done.stdout == "".join(
        f"{s};\n" for s in Retention(usage_days=12, content_days=3).statements()
    )
    refused = _run_first_start_script(tmp_path, **{USAGE_DAYS_KEY: "2", CONTENT_DAYS_KEY: "3"})
    assert refused.returncode == 1 and "must not outlive" in refused.stderr
    assert _run_first_start_script(tmp_path, **{CONTENT_DAYS_KEY: "x"}).returncode == 1
