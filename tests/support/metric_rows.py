"""Metric points as ClickHouse stores what the collector's clickhouse exporter writes: the
collector's own telemetry (service `otelcol`) and the gateway hook's health (scope `llm_otel`,
docs/CONTRACTS.md), for tests of the dashboards and alert rules that read them."""

from __future__ import annotations

import datetime as dt
import json

from llm_otel.contract import SCOPE_NAME
from scripts.clickhouse_schema.files import Execute

SUM_TABLE, GAUGE_TABLE = "otel.otel_metrics_sum", "otel.otel_metrics_gauge"


def metric_row(
    name: str,
    at: dt.datetime,
    value: float,
    attrs: dict[str, str] | None = None,
    instance: str = "inst-1",
    hook: bool = False,
    cumulative: bool = False,
) -> dict[str, object]:
    """One point: the collector's (ServiceName otelcol) or, with hook=True, a gateway hook's."""
    row: dict[str, object] = {
        "ServiceName": "litellm-proxy" if hook else "otelcol",
        "ScopeName": SCOPE_NAME if hook else "",
        "MetricName": name,
        "Attributes": attrs or {},
        "ResourceAttributes": {"service.instance.id": instance},
        "TimeUnix": at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "Value": value,
    }
    if cumulative:  # a monotonic counter, as the sum table stores it
        row |= {"IsMonotonic": True, "AggregationTemporality": 2}
    return row


def insert_metric_rows(execute: Execute, table: str, rows: list[dict[str, object]]) -> None:
    if not rows:
        return
    columns = sorted({c for r in rows for c in r})
    body = "\n".join(json.dumps(r) for r in rows)
    execute(f"INSERT INTO {table} ({', '.join(columns)}) FORMAT JSONEachRow\n{body}")
