"""The chdb adapter against the real collector's clickhouse exporter (clickhouse-go v2 over
HTTP): with the exporter's own DDL, and with pre-created tables over each body compression."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from scripts.native_stack.chdb_server import AdapterProcess
from scripts.native_stack.paths import COLLECTOR_BIN
from scripts.native_stack.procs import ManagedProcess, free_port, wait_for_http
from tests.conftest import require_collector

from .chdb_clients import connect, wait_until
from .exporter_signals import TRACE_ID, check_rows, otlp_payloads


class RunningCollector:
    def __init__(
        self,
        workdir: Path,
        adapter: AdapterProcess,
        *,
        database: str,
        create_schema: bool,
        compress: str | None,
    ) -> None:
        self.http_port = free_port()
        exporter: dict[str, Any] = {
            "endpoint": f"http://127.0.0.1:{adapter.port}?dial_timeout=5s",
            "username": "otel_writer",
            "password": "writer-pw",
            "database": database,
            "create_schema": create_schema,
            "timeout": "5s",
            "sending_queue": {"enabled": False},
            "retry_on_failure": {
                "enabled": True,
                "initial_interval": "200ms",
                "max_interval": "1s",
                "max_elapsed_time": "10s",
            },
        }
        if compress is not None:
            exporter["compress"] = compress
        pipeline = {"receivers": ["otlp"], "processors": ["batch"], "exporters": ["clickhouse"]}
        config = {
            "receivers": {
                "otlp": {"protocols": {"http": {"endpoint": f"127.0.0.1:{self.http_port}"}}}
            },
            "processors": {"batch": {"timeout": "100ms"}},
            "exporters": {"clickhouse": exporter},
            "service": {
                "telemetry": {"metrics": {"level": "none"}, "logs": {"level": "info"}},
                "pipelines": {"traces": pipeline, "logs": pipeline, "metrics": pipeline},
            },
        }
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "otelcol.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.proc = ManagedProcess(
            "otelcol",
            [str(COLLECTOR_BIN), "--config", str(self.config_path)],
            log_path=workdir / "otelcol.log",
        )

    def wait_ready(self) -> None:
        # The exporter runs its DDL in start(), before the receiver listens: ready means both.
        wait_for_http(
            f"http://127.0.0.1:{self.http_port}/v1/traces",
            timeout=20,
            ok=(200, 404, 405),
            proc=self.proc,
        )

    def send(self, payloads: dict[str, dict[str, Any]]) -> None:
        for signal, body in payloads.items():
            answer = httpx.post(
                f"http://127.0.0.1:{self.http_port}/v1/{signal}", json=body, timeout=10
            )
            assert answer.status_code == 200, (signal, answer.status_code, answer.text)

    def stop(self) -> None:
        self.proc.stop(timeout=10)


def run_collector(
    workdir: Path,
    adapter: AdapterProcess,
    *,
    database: str,
    create_schema: bool,
    compress: str | None,
) -> dict[str, list[tuple[Any, ...]]]:
    """Start the collector, send one of each signal, and return what landed in ClickHouse."""
    require_collector()
    tag = f"{database}-{time.time_ns()}"
    collector = RunningCollector(
        workdir, adapter, database=database, create_schema=create_schema, compress=compress
    )
    client = connect(adapter)
    try:
        collector.wait_ready()
        collector.send(otlp_payloads(time.time_ns(), tag))
        tables = [
            "otel_traces",
            "otel_logs",
            "otel_metrics_gauge",
            "otel_metrics_sum",
            "otel_metrics_histogram",
        ]

        def landed() -> bool:
            counts = [
                client.command(
                    f"SELECT count() FROM {database}.{t} "
                    f"WHERE ResourceAttributes['test.run'] = '{tag}'"
                )
                for t in tables
            ]
            return all(c == 1 for c in counts)

        wait_until(
            landed,
            20,
            f"rows in {database}",
            lambda: collector.proc.log_tail() + "\n--- adapter ---\n" + adapter.log_text()[-3000:],
        )
        where = f"WHERE ResourceAttributes['test.run'] = '{tag}'"
        return {
            "traces": client.query(
                "SELECT SpanName, SpanKind, ServiceName, ScopeName, SpanAttributes, Duration, "
                "StatusCode, StatusMessage, TraceId, SpanId, Events.Name, Events.Attributes, "
                f"toUnixTimestamp64Nano(Timestamp) FROM {database}.otel_traces {where}"
            ).result_rows,
            "trace_id_ts": client.query(
                f"SELECT TraceId FROM {database}.otel_traces_trace_id_ts "
                f"WHERE TraceId = '{TRACE_ID}'"
            ).result_rows,
            "logs": client.query(
                "SELECT Body, SeverityText, SeverityNumber, ServiceName, LogAttributes, "
                f"TraceId, SpanId FROM {database}.otel_logs {where}"
            ).result_rows,
            "gauge": client.query(
                f"SELECT MetricName, Value, Attributes FROM {database}.otel_metrics_gauge {where}"
            ).result_rows,
            "sum": client.query(
                "SELECT MetricName, Value, IsMonotonic, AggregationTemporality "
                f"FROM {database}.otel_metrics_sum {where}"
            ).result_rows,
            "histogram": client.query(
                "SELECT MetricName, Count, Sum, BucketCounts, ExplicitBounds, Min, Max "
                f"FROM {database}.otel_metrics_histogram {where}"
            ).result_rows,
        }
    finally:
        collector.stop()
        client.close()


@pytest.fixture(scope="module")
def exporter_ddl(
    adapter: AdapterProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[str]]:
    """Run the exporter with create_schema: true (default lz4 block compression), check its
    rows, and hand on the DDL it created so the create_schema: false runs can pre-create it."""
    rows = run_collector(
        tmp_path_factory.mktemp("otelcol-schema"),
        adapter,
        database="otel",
        create_schema=True,
        compress=None,
    )
    check_rows(rows)
    client = connect(adapter)
    ddl = [
        row[0]
        for row in client.query(
            "SELECT create_table_query FROM system.tables WHERE database = 'otel' "
            "ORDER BY engine = 'MaterializedView', name"
        ).result_rows
    ]
    client.close()
    yield ddl


def test_exporter_creates_schema_and_writes_all_signals(exporter_ddl: list[str]) -> None:
    joined = "\n".join(exporter_ddl)
    for table in (
        "otel_traces",
        "otel_traces_trace_id_ts",
        "otel_traces_trace_id_ts_mv",
        "otel_logs",
        "otel_metrics_gauge",
        "otel_metrics_sum",
        "otel_metrics_histogram",
        "otel_metrics_summary",
        "otel_metrics_exponential_histogram",
    ):
        assert f"otel.{table} " in joined or f"otel.{table}\n" in joined, table


@pytest.mark.parametrize("compress", ["zstd", "gzip", "deflate", "none"])
def test_exporter_with_precreated_tables(
    adapter: AdapterProcess, exporter_ddl: list[str], tmp_path: Path, compress: str
) -> None:
    """create_schema: false against tables created beforehand, over other compressions."""
    database = f"otel_pre_{compress}"
    admin = connect(adapter)
    admin.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    for statement in exporter_ddl:
        admin.command(re.sub(r"\botel\.", f"{database}.", statement))
    admin.close()
    rows = run_collector(
        tmp_path, adapter, database=database, create_schema=False, compress=compress
    )
    check_rows(rows)
    # The inserts really came with the body encoding asked for.
    encoding = {"zstd": "ch-blocks", "gzip": "gzip", "deflate": "deflate", "none": "-"}[compress]
    inserts = [
        line
        for line in adapter.log_text().splitlines()
        if "user=otel_writer " in line and f"INSERT INTO `{database}`" in line.replace('"', "`")
    ]
    assert len(inserts) >= 5 and all(f" enc={encoding} " in line for line in inserts), inserts
