"""ClickHouse names the clickhouse hop queries. Keep these aligned with clickhouse/ (the schema):
they are the only place this package spells a table or column name."""

from __future__ import annotations

# Written by the collector's ClickHouse exporter (its default table and column names).
TRACES_TABLE = "otel_traces"
TRACES_TRACE_ID = "TraceId"  # 32 lowercase hex characters
TRACES_SPAN_NAME = "SpanName"

# The per-LLM-call view defined by the schema owner (one row per LLM span).
LLM_CALLS_TABLE = "llm_calls"
LLM_TRACE_ID = "trace_id"
LLM_REQUEST_MODEL = "request_model"
LLM_INPUT_TOKENS = "input_tokens"
LLM_OUTPUT_TOKENS = "output_tokens"
LLM_COST_USD = "cost_usd"

# Metrics, as the exporter writes them (the hook's own health is read from these).
METRICS_GAUGE_TABLE = "otel_metrics_gauge"
METRICS_SUM_TABLE = "otel_metrics_sum"
