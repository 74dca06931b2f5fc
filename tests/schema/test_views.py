"""otel.llm_calls and the daily usage aggregate, over spans stored exactly as the exporter does.

Runs on the real ClickHouse engine in-process (chdb): the rows go into otel.otel_traces, the
materialized view fires on insert, and the views are read back with plain SQL.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

import pytest

from llm_otel.contract import GEN_AI_USAGE_COST_AMOUNT
from tests.support.chdb_engine import FreshOtelDatabase
from tests.support.span_rows import LlmCall, http_server_span, insert_span_rows, quantile_linear


def day_noon(days_ago: int) -> dt.datetime:
    """Noon UTC `days_ago` days back: a fixed UTC day, well inside the 30-day TTL."""
    today = dt.datetime.now(dt.UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    return today - dt.timedelta(days=days_ago)


def first_batch() -> list[LlmCall]:
    d1, d2 = day_noon(1), day_noon(2)
    t1 = {
        "team_id": "team-1",
        "team_alias": "Research",
        "key_hash": "hash-alice",
        "key_alias": "alice",
    }
    t2 = {"team_id": "team-2", "team_alias": "Support", "key_hash": "hash-bob", "key_alias": "bob"}
    return [
        LlmCall("gpt-mini", d1, 200.0, 100, 50, 0.0015, **t1),
        LlmCall(
            "gpt-mini",
            d1 + dt.timedelta(minutes=1),
            400.0,
            200,
            80,
            0.003,
            stream=True,
            ttft_s=0.12,
            **t1,
        ),
        LlmCall("gpt-mini", d1 + dt.timedelta(minutes=2), 50.0, error_type="RateLimitError", **t2),
        LlmCall(
            "gpt-mini",
            d1 + dt.timedelta(minutes=3),
            1000.0,
            300,
            120,
            0.0045,
            stream=True,
            ttft_s=0.3,
            **t2,
        ),
        # A cost below 1e-6 reaches ClickHouse in exponent form ("5e-7").
        LlmCall(
            "verify-mock",
            d1 + dt.timedelta(minutes=4),
            100.0,
            10,
            5,
            5e-7,
            stream=True,
            ttft_s=0.05,
        ),
        LlmCall(
            "verify-mock", d1 + dt.timedelta(minutes=5), 300.0, 20, 10, 0.00001, end_user="user-9"
        ),
        LlmCall(
            "text-embed",
            d1 + dt.timedelta(minutes=6),
            20.0,
            30,
            0,
            0.000003,
            operation="embeddings",
            **t1,
        ),
        # The second day: same model and team, to prove days stay apart.
        LlmCall("gpt-mini", d2, 250.0, 40, 20, 0.0006, **t1),
        LlmCall(
            "gpt-mini",
            d2 + dt.timedelta(minutes=1),
            30.0,
            error_type="APIConnectionError",
            stream=True,
            **t1,
        ),
    ]


def second_batch() -> list[LlmCall]:
    """Arrives later for the same day and keys: the aggregate must fold it into the same rows."""
    d1 = day_noon(1) + dt.timedelta(hours=3)
    t1 = {
        "team_id": "team-1",
        "team_alias": "Research",
        "key_hash": "hash-alice",
        "key_alias": "alice",
    }
    return [
        LlmCall("gpt-mini", d1, 600.0, 500, 200, 0.0075, stream=True, ttft_s=0.2, **t1),
        LlmCall("gpt-mini", d1 + dt.timedelta(minutes=1), 150.0, 50, 25, 0.00075, **t1),
        LlmCall("gpt-mini", d1 + dt.timedelta(minutes=2), 75.0, error_type="Timeout", **t1),
        LlmCall(
            "verify-mock", d1 + dt.timedelta(minutes=3), 90.0, 10, 5, 5e-7, stream=True, ttft_s=0.04
        ),
    ]


# ---------------------------------------------------------------- engine helpers


@pytest.fixture(scope="module")
def loaded(fresh_otel_db: FreshOtelDatabase) -> dict[str, list[LlmCall]]:
    """First batch of LLM calls plus HTTP server spans, in one insert."""
    calls = first_batch()
    noise = [
        http_server_span(c.start - dt.timedelta(milliseconds=5), c.duration_ms + 10) for c in calls
    ]
    noise.append(http_server_span(day_noon(1), 12.0, status="Error"))
    insert_span_rows(fresh_otel_db.execute, [c.row() for c in calls] + noise)
    return {"first": calls}


# ---------------------------------------------------------------- llm_calls


def test_only_llm_spans_appear(
    fresh_otel_db: FreshOtelDatabase, loaded: dict[str, list[LlmCall]]
) -> None:
    got = {r["span_id"] for r in fresh_otel_db.rows("SELECT span_id FROM otel.llm_calls")}
    assert got == {c.span_id for c in loaded["first"]}
    total = fresh_otel_db.rows("SELECT count() AS n FROM otel.otel_traces")[0]["n"]
    assert int(total) == 2 * len(loaded["first"]) + 1, (
        "the HTTP spans were stored but must be filtered out"
    )


def test_tokens_and_cost_by_model(
    fresh_otel_db: FreshOtelDatabase, loaded: dict[str, list[LlmCall]]
) -> None:
    expected: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0.0])
    for c in loaded["first"]:
        expected[c.model][0] += c.input_tokens if not c.error_type else 0
        expected[c.model][1] += c.output_tokens if not c.error_type else 0
        expected[c.model][2] += c.cost or 0.0
    got = fresh_otel_db.rows(
        """
        SELECT request_model, sum(input_tokens) AS i, sum(output_tokens) AS o,
               sum(total_tokens) AS t, sum(cost_usd) AS cost, toTypeName(cost_usd) AS cost_type
        FROM otel.llm_calls GROUP BY request_model""",
    )
    assert {r["request_model"] for r in got} == set(expected)
    for r in got:
        i, o, cost = expected[r["request_model"]]
        assert (int(r["i"]), int(r["o"]), int(r["t"])) == (i, o, i + o), r
        assert r["cost"] == pytest.approx(cost, rel=1e-12, abs=1e-15), r
        assert r["cost_type"] == "Float64"


def test_tiny_cost_in_exponent_form_is_parsed(
    fresh_otel_db: FreshOtelDatabase, loaded: dict[str, list[LlmCall]]
) -> None:
    cost = f"SpanAttributes['{GEN_AI_USAGE_COST_AMOUNT}']"
    raw = fresh_otel_db.rows(f"SELECT {cost} AS raw FROM otel.otel_traces WHERE {cost} LIKE '%e-%'")
    assert [r["raw"] for r in raw] == ["5e-7"]
    got = fresh_otel_db.rows(
        "SELECT cost_usd FROM otel.llm_calls WHERE request_model = 'verify-mock' AND is_stream",
    )
    assert got[0]["cost_usd"] == pytest.approx(5e-7)


def test_duration_percentiles(
    fresh_otel_db: FreshOtelDatabase, loaded: dict[str, list[LlmCall]]
) -> None:
    by_model: dict[str, list[float]] = defaultdict(list)
    for c in loaded["first"]:
        by_model[c.model].append(c.duration_ms)
    got = fresh_otel_db.rows(
        """
        SELECT request_model, quantile(0.5)(duration_ms) AS p50, quantile(0.95)(duration_ms) AS p95
        FROM otel.llm_calls GROUP BY request_model""",
    )
    for r in got:
        durations = by_model[r["request_model"]]
        assert r["p50"] == pytest.approx(quantile_linear(durations, 0.5)), r
        assert r["p95"] == pytest.approx(quantile_linear(durations, 0.95)), r


def test_ttft_only_for_streams(
    fresh_otel_db: FreshOtelDatabase, loaded: dict[str, list[LlmCall]]
) -> None:
    got = fresh_otel_db.rows("SELECT span_id, is_stream, ttft_ms FROM otel.llm_calls")
    by_span = {c.span_id: c for c in loaded["first"]}
    for r in got:
        call = by_span[r["span_id"]]
        assert bool(r["is_stream"]) == call.stream
        if call.ttft_s is None:
            assert r["ttft_ms"] is None, (
                f"{call.model} (stream={call.stream}) has TTFT {r['ttft_ms']}"
            )
        else:
            assert call.stream and r["ttft_ms"] == pytest.approx(call.ttft_s * 1000)
    types = fresh_otel_db.rows("SELECT toTypeName(ttft_ms) AS t FROM otel.llm_calls LIMIT 1")
    assert types[0]["t"] == "Nullable(Float64)"


def test_errors_and_streams_counted(
    fresh_otel_db: FreshOtelDatabase, loaded: dict[str, list[LlmCall]]
) -> None:
    got = fresh_otel_db.rows(
        """
        SELECT request_model, countIf(is_error) AS errors, countIf(is_stream) AS streams,
               countIf(NOT is_stream) AS non_streams, groupArrayIf(error_type, is_error) AS types
        FROM otel.llm_calls GROUP BY request_model ORDER BY request_model""",
    )
    expected: dict[str, dict[str, Any]] = {}
    for c in loaded["first"]:
        e = expected.setdefault(c.model, {"errors": 0, "streams": 0, "non_streams": 0, "types": []})
        e["errors"] += bool(c.error_type)
        e["streams"] += c.stream
        e["non_streams"] += not c.stream
        if c.error_type:
            e["types"].append(c.error_type)
    for r in got:
        e = expected[r["request_model"]]
        assert (int(r["errors"]), int(r["streams"]), int(r["non_streams"])) == (
            e["errors"],
            e["streams"],
            e["non_streams"],
        )
        assert sorted(r["types"]) == sorted(e["types"])


def test_identity_columns(
    fresh_otel_db: FreshOtelDatabase, loaded: dict[str, list[LlmCall]]
) -> None:
    got = fresh_otel_db.rows(
        """
        SELECT team_id, team_alias, api_key_hash, api_key_alias, end_user, provider, service,
               environment, operation, response_model, finish_reasons, status_code, span_name
        FROM otel.llm_calls WHERE end_user = 'user-9'""",
    )
    assert got == [
        {
            "team_id": "",
            "team_alias": "",
            "api_key_hash": "litellm_proxy_master_key",
            "api_key_alias": "",
            "end_user": "user-9",
            "provider": "openai",
            "service": "litellm-proxy",
            "environment": "test",
            "operation": "chat",
            "response_model": "verify-mock-2026-01-01",
            "finish_reasons": '["stop"]',
            "status_code": "Unset",
            "span_name": "chat verify-mock",
        }
    ]


# ---------------------------------------------------------------- the daily aggregate

DIMENSIONS = "day, request_model, provider, team_id, team_alias, api_key_hash, api_key_alias"

DIRECT = f"""
    SELECT {DIMENSIONS},
           count() AS calls, countIf(is_error) AS errors, countIf(is_stream) AS streamed_calls,
           sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
           sum(total_tokens) AS total_tokens, sum(cost_usd) AS cost_usd,
           quantile(0.5)(duration_ms) AS p50_duration_ms,
           quantile(0.95)(duration_ms) AS p95_duration_ms,
           quantile(0.99)(duration_ms) AS p99_duration_ms, max(duration_ms) AS max_duration_ms,
           quantile(0.5)(ttft_ms) AS p50_ttft_ms, quantile(0.95)(ttft_ms) AS p95_ttft_ms
    FROM otel.llm_calls GROUP BY {DIMENSIONS} ORDER BY {DIMENSIONS}"""

FROM_AGGREGATE = f"""
    SELECT {DIMENSIONS}, calls, errors, streamed_calls, input_tokens, output_tokens, total_tokens,
           cost_usd, p50_duration_ms, p95_duration_ms, p99_duration_ms, max_duration_ms,
           p50_ttft_ms, p95_ttft_ms
    FROM otel.llm_usage_daily ORDER BY {DIMENSIONS}"""

FLOATS = {
    "cost_usd",
    "p50_duration_ms",
    "p95_duration_ms",
    "p99_duration_ms",
    "max_duration_ms",
    "p50_ttft_ms",
    "p95_ttft_ms",
}


def assert_aggregate_matches_direct(db: FreshOtelDatabase) -> None:
    direct, agg = db.rows(DIRECT), db.rows(FROM_AGGREGATE)
    assert len(agg) == len(direct), f"{len(agg)} daily rows, {len(direct)} groups in llm_calls"
    for want, got in zip(direct, agg, strict=True):
        for key, value in want.items():
            if key in FLOATS and value is not None:
                assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), (key, want, got)
            else:
                assert got[key] == value, (key, want, got)


def test_daily_aggregate_equals_direct_group_by(
    fresh_otel_db: FreshOtelDatabase, loaded: dict[str, list[LlmCall]]
) -> None:
    assert_aggregate_matches_direct(fresh_otel_db)
    days = fresh_otel_db.rows("SELECT DISTINCT day FROM otel.llm_usage_daily ORDER BY day")
    assert [r["day"] for r in days] == [
        day_noon(2).date().isoformat(),
        day_noon(1).date().isoformat(),
    ]


def test_daily_aggregate_after_second_batch(
    fresh_otel_db: FreshOtelDatabase, loaded: dict[str, list[LlmCall]]
) -> None:
    before = fresh_otel_db.rows("SELECT count() AS n FROM otel.llm_usage_daily_agg")[0]["n"]
    later = second_batch()
    insert_span_rows(fresh_otel_db.execute, [c.row() for c in later])
    loaded["second"] = later
    parts = fresh_otel_db.rows("SELECT count() AS n FROM otel.llm_usage_daily_agg")[0]["n"]
    assert int(parts) > int(before), "the second batch must add state rows, merged at read time"
    assert_aggregate_matches_direct(fresh_otel_db)

    # Background merges must not change the answer.
    fresh_otel_db.query("OPTIMIZE TABLE otel.llm_usage_daily_agg FINAL")
    assert_aggregate_matches_direct(fresh_otel_db)

    alice = fresh_otel_db.rows(
        f"""
        SELECT calls, errors, input_tokens, cost_usd FROM otel.llm_usage_daily
        WHERE day = '{day_noon(1).date().isoformat()}' AND request_model = 'gpt-mini'
          AND api_key_alias = 'alice'""",
    )
    assert len(alice) == 1
    alice_calls = [
        c
        for c in loaded["first"] + later
        if c.key_alias == "alice" and c.model == "gpt-mini" and c.start.date() == day_noon(1).date()
    ]
    assert int(alice[0]["calls"]) == len(alice_calls) == 5
    assert int(alice[0]["errors"]) == 1
    assert alice[0]["cost_usd"] == pytest.approx(sum(c.cost or 0 for c in alice_calls))


def test_daily_view_column_types(
    fresh_otel_db: FreshOtelDatabase, loaded: dict[str, list[LlmCall]]
) -> None:
    got = {
        r["name"]: r["type"]
        for r in fresh_otel_db.rows(
            "SELECT name, type FROM system.columns "
            "WHERE database = 'otel' AND table = 'llm_usage_daily'",
        )
    }
    assert got["cost_usd"] == got["max_duration_ms"] == got["p95_duration_ms"] == "Float64"
    assert got["calls"] == got["errors"] == got["total_tokens"] == "UInt64"
    assert got["p50_ttft_ms"] == "Nullable(Float64)"


LLM_CALLS_COLUMNS = {
    "timestamp": "DateTime64(9)",
    "day": "Date",
    "trace_id": "String",
    "span_id": "String",
    "parent_span_id": "String",
    "service": "LowCardinality(String)",
    "environment": "String",
    "span_name": "LowCardinality(String)",
    "operation": "String",
    "request_model": "String",
    "response_model": "String",
    "model_group": "String",
    "provider": "String",
    "input_tokens": "UInt64",
    "output_tokens": "UInt64",
    "total_tokens": "UInt64",
    "cache_read_input_tokens": "UInt64",
    "cache_creation_input_tokens": "UInt64",
    "reasoning_output_tokens": "UInt64",
    "cost_usd": "Float64",
    "duration_ms": "Float64",
    "ttft_ms": "Nullable(Float64)",
    "is_stream": "UInt8",
    "is_error": "UInt8",
    "attempts": "UInt32",
    "is_fallback": "UInt8",
    "client_disconnected": "UInt8",
    "http_status_code": "UInt16",
    "failed_attempt_events": "Array(Tuple(DateTime64(9), Map(String, String)))",
    "status_code": "LowCardinality(String)",
    "status_message": "String",
    "error_type": "String",
    "finish_reasons": "String",
    "response_id": "String",
    "call_id": "String",
    "api_key_hash": "String",
    "api_key_alias": "String",
    "team_id": "String",
    "team_alias": "String",
    "end_user": "String",
    "user_id": "String",
    "app": "String",
    "conversation_id": "String",
    "request_tags": "Array(String)",
}


def test_llm_calls_columns_are_the_contract(fresh_otel_db: FreshOtelDatabase) -> None:
    """scripts/report.py, dashboards and docs read these names: a rename breaks them."""
    got = fresh_otel_db.rows(
        "SELECT name, type FROM system.columns "
        "WHERE database = 'otel' AND table = 'llm_calls' ORDER BY position",
    )
    assert {r["name"]: r["type"] for r in got} == LLM_CALLS_COLUMNS
