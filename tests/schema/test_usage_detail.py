"""The views after 110_usage_and_apps.sql, on the real engine (chdb): only well-known GenAI
operations count as LLM calls, cached and reasoning tokens reach llm_calls and the daily
aggregate, and a volume made by the earlier files upgrades in place, keeping its data."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from llm_otel.attributes import WELL_KNOWN_OPERATIONS
from llm_otel.contract import GEN_AI_OPERATION_NAME
from scripts.clickhouse_schema.files import INITDB_DIR, Execute, apply_schema
from tests.support.chdb_engine import FreshOtelDatabase
from tests.support.span_rows import LlmCall, insert_span_rows

NOON = dt.datetime.now(dt.UTC).replace(hour=12, minute=0, second=0, microsecond=0)


def phantom() -> LlmCall:
    """What a refused keyless `GET /v1/models` used to become: a failed 'call' named by route."""
    return LlmCall(
        model="", start=NOON, duration_ms=1, operation="/v1/models", error_type="Exception"
    )


def cached_reasoning() -> LlmCall:
    return LlmCall(
        model="qwen/qwen3",
        start=NOON,
        duration_ms=900,
        input_tokens=2048,
        output_tokens=300,
        cost=0.01,
        cache_read=1536,
        cache_creation=100,
        reasoning=256,
    )


def plain() -> LlmCall:
    return LlmCall(
        model="qwen/qwen3",
        start=NOON,
        duration_ms=100,
        input_tokens=10,
        output_tokens=5,
        cost=0.001,
    )


def one(execute: Any, sql: str) -> tuple[Any, ...]:
    return tuple(execute(sql).bytes().decode().strip().split(","))


@pytest.fixture
def execute(fresh_otel_db: FreshOtelDatabase) -> Execute:
    """`otel` emptied for each test: every test counts all rows."""
    fresh_otel_db.reset()
    return fresh_otel_db.execute


def test_only_well_known_operations_are_llm_calls(execute: Any) -> None:
    insert_span_rows(execute, [phantom().row(), plain().row()])
    assert one(execute, "SELECT count(), sum(is_error) FROM otel.llm_calls") == ("1", "0")
    assert one(execute, "SELECT sum(calls), sum(errors) FROM otel.llm_usage_daily") == ("1", "0")


def test_cached_and_reasoning_tokens_reach_both_views(execute: Any) -> None:
    insert_span_rows(execute, [cached_reasoning().row(), plain().row()])
    got = one(
        execute,
        "SELECT sum(input_tokens), sum(cache_read_input_tokens), "
        "sum(cache_creation_input_tokens), sum(output_tokens), "
        "sum(reasoning_output_tokens) FROM otel.llm_calls",
    )
    assert got == ("2058", "1536", "100", "305", "256")
    daily = one(
        execute,
        "SELECT sum(input_tokens), sum(cache_read_input_tokens), "
        "sum(cache_creation_input_tokens), sum(output_tokens), "
        "sum(reasoning_output_tokens) FROM otel.llm_usage_daily",
    )
    assert daily == got


def test_a_volume_made_by_the_earlier_files_upgrades_in_place(execute: Any, tmp_path: Path) -> None:
    earlier = tmp_path / "initdb-before-110"
    earlier.mkdir()
    for path in INITDB_DIR.glob("*.sql"):
        if path.name < "110":
            shutil.copy(path, earlier / path.name)
    execute("DROP DATABASE IF EXISTS otel SYNC")
    apply_schema(execute, earlier)
    insert_span_rows(execute, [plain().row(), phantom().row()])
    before = one(execute, "SELECT count() FROM otel.otel_traces")

    assert "110_usage_and_apps.sql" in apply_schema(execute)  # what `make schema` runs
    apply_schema(execute)  # and again: idempotent

    assert one(execute, "SELECT count() FROM otel.otel_traces") == before  # nothing rewritten
    newest = max(int(path.name.split("_")[0]) for path in INITDB_DIR.glob("*.sql"))
    assert one(execute, "SELECT max(version) FROM otel.schema_version") == (str(newest),)
    # The old phantom span is still stored but no longer counted; aggregated days keep their rows.
    assert one(execute, "SELECT count() FROM otel.llm_calls") == ("1",)
    insert_span_rows(execute, [cached_reasoning().row()])
    assert one(
        execute,
        "SELECT sum(cache_read_input_tokens), sum(reasoning_output_tokens) "
        "FROM otel.llm_usage_daily",
    ) == ("1536", "256")


def test_views_count_every_operation_the_hook_emits() -> None:
    """The hook's operations and the views' filter are two lists: an operation the hook emits but
    the views leave out would vanish from llm_calls and the daily aggregate without a word."""
    sql = (INITDB_DIR / "110_usage_and_apps.sql").read_text()
    filters = re.findall(rf"\['{re.escape(GEN_AI_OPERATION_NAME)}'\] IN \(([^)]*)\)", sql)
    assert len(filters) == 2  # llm_calls and the daily aggregate's materialized view
    for listed in filters:
        assert set(re.findall(r"'([a-z_]+)'", listed)) >= WELL_KNOWN_OPERATIONS


def test_rows_stored_under_the_older_names_read_the_same(execute: Any) -> None:
    """llm_otel 0.1 stored gen_ai.usage.cost and gen_ai.usage.cache_creation.input_tokens;
    0.2 stores gen_ai.usage.cost.amount and gen_ai.usage.cache_write.input_tokens. The views and
    the daily aggregate read both, so a volume holding both generations sums them together."""
    old, new = cached_reasoning(), cached_reasoning()
    old.legacy_names = True
    insert_span_rows(execute, [old.row(), new.row()])
    assert one(
        execute,
        "SELECT round(sum(cost_usd), 6), sum(cache_creation_input_tokens) FROM otel.llm_calls",
    ) == ("0.02", "200")
    assert one(
        execute,
        "SELECT round(sum(cost_usd), 6), sum(cache_creation_input_tokens) "
        "FROM otel.llm_usage_daily",
    ) == ("0.02", "200")
