"""The chdb HTTP adapter against real clients: clickhouse-connect and the collector's exporter.

The adapter stands in for ClickHouse in CI, so these tests prove it with the clients the stack
really uses: clickhouse-connect (scripts, tests) and clickhouse-go v2 inside the real collector
binary (the `clickhouse` exporter, with its own DDL and with pre-created tables).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import clickhouse_connect
import httpx
import pytest
import yaml
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from scripts.native_stack.chdb_http_adapter import AdapterProcess, encode_ch_blocks
from scripts.native_stack.paths import COLLECTOR_BIN
from scripts.native_stack.procs import ManagedProcess, free_port, wait_for_http

OTELCOL = COLLECTOR_BIN
IN_CI = os.environ.get("CI", "").lower() == "true"

USERS: dict[str, dict[str, Any]] = {
    "admin": {"password": "admin-pw"},
    "otel_writer": {"password": "writer-pw"},
    "otel_reader": {"password": "reader-pw", "readonly": True},
}
ADMIN_AUTH = ("admin", "admin-pw")


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdapterProcess]:
    workdir = tmp_path_factory.mktemp("chdb-adapter")
    proc = AdapterProcess(
        workdir / "data", users=USERS, verbose=True, log_path=workdir / "adapter.log"
    )
    proc.start(timeout=30)
    try:
        yield proc
    finally:
        proc.stop()


def connect(
    adapter: AdapterProcess, user: str = "admin", password: str = "admin-pw", **kwargs: Any
) -> Client:
    return clickhouse_connect.get_client(
        host="127.0.0.1",
        port=adapter.port,
        username=user,
        password=password,
        connect_timeout=5,
        send_receive_timeout=20,
        **kwargs,
    )


def wait_until(probe: Callable[[], Any], timeout: float, what: str, log: Callable[[], str]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; log tail:\n{log()}")


# ------------------------------------------------------------------------------------------------
# Plain HTTP behaviour
# ------------------------------------------------------------------------------------------------
def test_ping_and_plain_http(adapter: AdapterProcess) -> None:
    assert httpx.get(f"{adapter.url}/ping").text == "Ok.\n"
    assert httpx.get(f"{adapter.url}/").text == "Ok.\n"
    answer = httpx.get(f"{adapter.url}/", params={"query": "SELECT 40 + 2"}, auth=ADMIN_AUTH)
    assert (answer.status_code, answer.text) == (200, "42\n")
    # Credentials as ClickHouse takes them: headers, URL parameters.
    by_header = httpx.post(
        f"{adapter.url}/",
        content="SELECT 'h'",
        headers={"X-ClickHouse-User": "admin", "X-ClickHouse-Key": "admin-pw"},
    )
    assert by_header.text == "h\n"
    by_params = httpx.post(f"{adapter.url}/?user=admin&password=admin-pw", content="SELECT 'p'")
    assert by_params.text == "p\n"

    missing = httpx.post(f"{adapter.url}/", content="SELECT * FROM no_such_table", auth=ADMIN_AUTH)
    assert missing.status_code == 404
    assert missing.headers["X-ClickHouse-Exception-Code"] == "60"
    assert missing.text.startswith("Code: 60. DB::Exception:") and "(UNKNOWN_TABLE)" in missing.text

    syntax = httpx.post(f"{adapter.url}/", content="SELEC 1", auth=ADMIN_AUTH)
    assert (syntax.status_code, syntax.headers["X-ClickHouse-Exception-Code"]) == (400, "62")

    # GET implies readonly, as in ClickHouse.
    get_ddl = httpx.get(
        f"{adapter.url}/",
        params={"query": "CREATE TABLE g (a UInt8) ENGINE = Memory"},
        auth=ADMIN_AUTH,
    )
    assert get_ddl.headers["X-ClickHouse-Exception-Code"] == "164"
    assert "method GET implies readonly" in get_ddl.text

    bad_auth = httpx.post(f"{adapter.url}/", content="SELECT 1", auth=("admin", "wrong"))
    assert bad_auth.status_code == 403
    assert bad_auth.headers["X-ClickHouse-Exception-Code"] == "516"
    assert "Authentication failed" in bad_auth.text

    # `database=` selects the default database per request, not per server.
    httpx.post(f"{adapter.url}/", content="CREATE DATABASE IF NOT EXISTS plain_db", auth=ADMIN_AUTH)
    assert (
        httpx.post(
            f"{adapter.url}/?database=plain_db", content="SELECT currentDatabase()", auth=ADMIN_AUTH
        ).text
        == "plain_db\n"
    )
    assert (
        httpx.post(f"{adapter.url}/", content="SELECT currentDatabase()", auth=ADMIN_AUTH).text
        == "default\n"
    )
    assert (
        httpx.post(
            f"{adapter.url}/",
            content="SELECT currentDatabase()",
            auth=ADMIN_AUTH,
            headers={"X-ClickHouse-Database": "plain_db"},
        ).text
        == "plain_db\n"
    )
    unknown_db = httpx.post(f"{adapter.url}/?database=nope_db", content="SELECT 1", auth=ADMIN_AUTH)
    assert unknown_db.headers["X-ClickHouse-Exception-Code"] == "81"


def test_block_compressed_request_and_response(adapter: AdapterProcess) -> None:
    """`decompress=1` bodies and `compress=1` answers use ClickHouse block framing."""
    httpx.post(
        f"{adapter.url}/",
        content="CREATE TABLE IF NOT EXISTS framed (a UInt32, s String) "
        "ENGINE = MergeTree ORDER BY a",
        auth=ADMIN_AUTH,
    ).raise_for_status()
    rows = "".join(f"{i}\tv{i}\n" for i in range(1000)).encode()
    for method in ("lz4", "zstd", "none"):
        httpx.post(
            f"{adapter.url}/",
            params={"query": "INSERT INTO framed FORMAT TabSeparated", "decompress": "1"},
            content=encode_ch_blocks(rows, method),
            auth=ADMIN_AUTH,
        ).raise_for_status()
    corrupt = bytearray(encode_ch_blocks(rows, "lz4"))
    corrupt[-1] ^= 0xFF
    broken = httpx.post(
        f"{adapter.url}/",
        params={"query": "INSERT INTO framed FORMAT TabSeparated", "decompress": "1"},
        content=bytes(corrupt),
        auth=ADMIN_AUTH,
    )
    assert broken.headers["X-ClickHouse-Exception-Code"] == "40"  # CHECKSUM_DOESNT_MATCH

    answer = httpx.post(
        f"{adapter.url}/",
        params={"compress": "1"},
        content="SELECT count(), sum(a) FROM framed",
        auth=ADMIN_AUTH,
    )
    assert answer.content != b"3000\t1498500\n"
    assert encode_ch_blocks(b"3000\t1498500\n", "lz4") == answer.content


def test_bad_requests_get_answers_and_the_server_lives_on(adapter: AdapterProcess) -> None:
    url = f"{adapter.url}/"
    garbage = httpx.post(url, params={"decompress": "1"}, content=b"\x00" * 40, auth=ADMIN_AUTH)
    assert garbage.status_code >= 400 and garbage.text.startswith("Code: ")
    bad_gzip = httpx.post(
        url, content=b"not gzip", auth=ADMIN_AUTH, headers={"Content-Encoding": "gzip"}
    )
    assert bad_gzip.headers["X-ClickHouse-Exception-Code"] == "271"  # CANNOT_DECOMPRESS
    brotli = httpx.post(
        url,
        content=b"\x0b\x02\x80SELECT 1\x03",
        auth=ADMIN_AUTH,
        headers={"Content-Encoding": "br"},
    )
    assert brotli.status_code >= 400 and "Code: " in brotli.text  # no brotli module here
    empty = httpx.post(url, content=b"", auth=ADMIN_AUTH)
    assert empty.headers["X-ClickHouse-Exception-Code"] == "62"
    assert httpx.get(f"{adapter.url}/play").status_code == 404
    # A raw, malformed chunked body must not take the server down.
    with socket.create_connection(("127.0.0.1", adapter.port), timeout=5) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 ")
    assert httpx.get(f"{adapter.url}/ping").text == "Ok.\n"
    # Every statement is logged with its status (--verbose).
    assert "[chdb-adapter] POST 404" in adapter.log_text()


def test_concurrent_clients(adapter: AdapterProcess) -> None:
    """Requests from many threads, each with its own default database, stay independent."""
    admin = connect(adapter)
    for name in ("conc_a", "conc_b"):
        admin.command(f"CREATE DATABASE IF NOT EXISTS {name}")
        admin.command(
            f"CREATE TABLE IF NOT EXISTS {name}.t (v UInt64) ENGINE = MergeTree ORDER BY v"
        )
    admin.close()

    def worker(index: int) -> tuple[str, int]:
        database = ("conc_a", "conc_b")[index % 2]
        client = connect(adapter, database=database)
        try:
            for value in range(10):
                client.insert("t", [(index * 100 + value,)], column_names=["v"])
                assert client.command("SELECT currentDatabase()") == database
            return database, int(
                client.command(f"SELECT count() FROM t WHERE intDiv(v, 100) = {index}")
            )
        finally:
            client.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(worker, range(8)))
    assert results == [(("conc_a", "conc_b")[i % 2], 10) for i in range(8)]


# ------------------------------------------------------------------------------------------------
# clickhouse-connect
# ------------------------------------------------------------------------------------------------
TYPES_DDL = """
CREATE TABLE IF NOT EXISTS typed_db.typed (
    i Int64, u UInt32, f Float64, s String,
    m Map(LowCardinality(String), String),
    ts DateTime64(9),
    arr Array(String), nums Array(Float64),
    lc LowCardinality(String), n Nullable(Int32)
) ENGINE = MergeTree ORDER BY i
"""
TYPED_ROWS: list[tuple[Any, ...]] = [
    (
        1,
        7,
        1.5,
        "alpha",
        {"gen_ai.operation.name": "chat", "k": "v"},
        dt.datetime(2026, 11, 27, 9, 30, 1, 123456),
        ["x", "y"],
        [0.1, 2.5],
        "lc-a",
        None,
    ),
    (-2, 4_000_000_000, -2.25, "bêta ✓", {}, dt.datetime(2025, 1, 2, 3, 4, 5), [], [], "lc-b", 5),
]


@pytest.mark.parametrize("compress", [True, False, "lz4", "zstd", "gzip"])
def test_clickhouse_connect_roundtrip(adapter: AdapterProcess, compress: bool | str) -> None:
    client = connect(adapter, compress=compress)
    assert client.protocol_version == 54405  # the Native probe was answered at its revision
    client.command("CREATE DATABASE IF NOT EXISTS typed_db")
    client.command(TYPES_DDL)
    client.command("TRUNCATE TABLE typed_db.typed")
    summary = client.insert(
        "typed_db.typed",
        TYPED_ROWS,
        column_names=["i", "u", "f", "s", "m", "ts", "arr", "nums", "lc", "n"],
    )
    assert summary.written_rows == 2
    result = client.query("SELECT * FROM typed_db.typed ORDER BY i DESC")
    assert result.result_rows == TYPED_ROWS
    assert result.column_types[5].name == "DateTime64(9)"
    # Nanoseconds survive the round trip through DateTime64(9).
    expected_ns = int(TYPED_ROWS[0][5].replace(tzinfo=dt.UTC).timestamp()) * 10**9 + 123456000
    assert (
        client.command("SELECT toUnixTimestamp64Nano(ts) FROM typed_db.typed WHERE i = 1")
        == expected_ns
    )
    assert client.command("SELECT count() FROM typed_db.typed") == 2
    assert client.query(
        "SELECT s FROM typed_db.typed WHERE i = {i:Int64}", parameters={"i": -2}
    ).result_rows == [("bêta ✓",)]
    # Several Native blocks (chdb splits at ~65k rows) keep their framing.
    big = client.query(
        "SELECT number, toString(number) AS s, [number] AS a, "
        "toLowCardinality(toString(number % 5)) AS l FROM numbers(150000)"
    )
    assert big.row_count == 150000 and big.result_rows[-1] == (149999, "149999", [149999], "4")
    client.close()


def test_clickhouse_connect_database_and_errors(adapter: AdapterProcess) -> None:
    client = connect(adapter)
    client.command("CREATE DATABASE IF NOT EXISTS typed_db")
    client.command(TYPES_DDL)
    scoped = connect(adapter, database="typed_db")
    assert scoped.command("SELECT currentDatabase()") == "typed_db"
    assert scoped.query("SELECT count() FROM typed").result_rows[0][0] >= 0
    with pytest.raises(DatabaseError) as missing:
        client.query("SELECT * FROM typed_db.no_such_table")
    assert "UNKNOWN_TABLE" in str(missing.value) and "Code: 60" in str(missing.value)
    client.close()
    scoped.close()


def test_wrong_password_is_clickhouse_516(adapter: AdapterProcess) -> None:
    with pytest.raises(DatabaseError) as failure:
        connect(adapter, user="admin", password="not-the-password")
    text = str(failure.value)
    assert "516" in text and "Authentication failed" in text
    with pytest.raises(DatabaseError) as unknown:
        connect(adapter, user="nobody", password="")
    assert "516" in str(unknown.value)


def test_readonly_user_reads_but_cannot_write(adapter: AdapterProcess) -> None:
    admin = connect(adapter)
    admin.command("CREATE DATABASE IF NOT EXISTS typed_db")
    admin.command(TYPES_DDL)
    reader = connect(adapter, user="otel_reader", password="reader-pw")
    assert reader.command("SELECT count() FROM typed_db.typed") >= 0
    with pytest.raises(DatabaseError) as denied:
        reader.insert(
            "typed_db.typed",
            [TYPED_ROWS[0]],
            column_names=["i", "u", "f", "s", "m", "ts", "arr", "nums", "lc", "n"],
        )
    assert "164" in str(denied.value) and "readonly" in str(denied.value)
    with pytest.raises(DatabaseError) as ddl:
        reader.command("DROP TABLE typed_db.typed")
    assert "Code: 164" in str(ddl.value)
    admin.close()
    reader.close()


# Native re-framing for clickhouse-go's revision, checked against an oracle that needs no type
# walking: single-column answers at revision 0, reassembled by hand.
NATIVE_EXPRESSIONS = [
    "toUInt8(number)",
    "toInt64(number) - 5",
    "toFloat32(number) / 3",
    "toString(number)",
    "toFixedString(toString(number), 3)",
    "toDate('2024-01-02')",
    "toDateTime64(number, 9, 'UTC')",
    "toDecimal64(number, 4)",
    "toUUID('00000000-0000-0000-0000-000000000001')",
    "toIPv6('::1')",
    "[number, number + 1]",
    "[['a'], ['b', toString(number)]]",
    "map('k', toString(number))",
    "CAST(map('k', toString(number)), 'Map(LowCardinality(String), String)')",
    "CAST([map('k', 'v'), map()], 'Array(Map(LowCardinality(String), String))')",
    "toLowCardinality(toString(number % 2))",
    "if(number % 2 = 0, NULL, number)",
    "CAST(if(number = 1, NULL, 'v'), 'LowCardinality(Nullable(String))')",
    "tuple(number, toString(number))",
    "CAST((number, 'x'), 'Tuple(a UInt64, b String)')",
    "NULL",
    "[]",
    "number % 2 = 0",
    "CAST('b', 'Enum8(\\'a\\' = 1, \\'b\\' = 2)')",
    "toInt128(number)",
    "(toFloat64(number), 1.0)::Point",
]


def test_native_reframing_matches_single_column_oracle(adapter: AdapterProcess) -> None:
    def native(sql: str, revision: int) -> bytes:
        answer = httpx.post(
            f"{adapter.url}/",
            params={"client_protocol_version": str(revision), "default_format": "Native"},
            content=sql,
            auth=ADMIN_AUTH,
        )
        assert answer.status_code == 200, answer.text
        return answer.content

    def varint(data: bytes, pos: int) -> tuple[int, int]:
        shift = value = 0
        while True:
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value, pos
            shift += 7

    def single_column(expression: str, alias: str) -> tuple[bytes, bytes]:
        data = native(f"SELECT {expression} AS {alias} FROM numbers(3)", 0)
        _cols, pos = varint(data, 0)
        _rows, pos = varint(data, pos)
        name_len, after_name = varint(data, pos)
        type_len, after_type_len = varint(data, after_name + name_len)
        header_end = after_type_len + type_len
        return data[pos:header_end], data[header_end:]

    columns = [single_column(expr, f"c{i}") for i, expr in enumerate(NATIVE_EXPRESSIONS)]
    select = ", ".join(f"{expr} AS c{i}" for i, expr in enumerate(NATIVE_EXPRESSIONS))
    sql = f"SELECT {select} FROM numbers(3)"
    block_info = b"\x01\x00\x02\xff\xff\xff\xff\x00"
    counts = bytes([len(columns), 3])
    expected_54460 = block_info + counts + b"".join(h + b"\x00" + d for h, d in columns)
    expected_54405 = block_info + counts + b"".join(h + d for h, d in columns)
    assert native(sql, 54460) == expected_54460
    assert native(sql, 54405) == expected_54405
    assert native(sql, 0) == counts + b"".join(h + d for h, d in columns)


# ------------------------------------------------------------------------------------------------
# The real collector's clickhouse exporter (clickhouse-go v2 over HTTP)
# ------------------------------------------------------------------------------------------------
def require_collector() -> None:
    if OTELCOL.exists():
        return
    message = (
        f"collector binary {OTELCOL} missing: build it from otel-collector/builder-config.yaml"
    )
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


TRACE_ID = "5b8efff798038103d269b633813fc60c"
SPAN_ID = "eee19b7ec3c1b174"


def otlp_payloads(now_ns: int, tag: str) -> dict[str, dict[str, Any]]:
    """One span, one log record, and a gauge, a sum and a histogram, as OTLP/JSON."""
    resource = {
        "attributes": [
            {"key": "service.name", "value": {"stringValue": "litellm-proxy"}},
            {"key": "test.run", "value": {"stringValue": tag}},
        ]
    }
    start, end = now_ns - 250_000_000, now_ns
    traces = {
        "resourceSpans": [
            {
                "resource": resource,
                "scopeSpans": [
                    {
                        "scope": {"name": "llm_otel", "version": "0.1.0"},
                        "spans": [
                            {
                                "traceId": TRACE_ID,
                                "spanId": SPAN_ID,
                                "name": "chat verify-mock",
                                "kind": 3,
                                "startTimeUnixNano": str(start),
                                "endTimeUnixNano": str(end),
                                "attributes": [
                                    {
                                        "key": "gen_ai.operation.name",
                                        "value": {"stringValue": "chat"},
                                    },
                                    {
                                        "key": "gen_ai.request.model",
                                        "value": {"stringValue": "verify-mock"},
                                    },
                                    {
                                        "key": "gen_ai.usage.input_tokens",
                                        "value": {"intValue": "12"},
                                    },
                                    {"key": "gen_ai.usage.cost", "value": {"doubleValue": 0.00012}},
                                    {"key": "gen_ai.request.stream", "value": {"boolValue": False}},
                                    {
                                        "key": "gen_ai.response.finish_reasons",
                                        "value": {
                                            "arrayValue": {"values": [{"stringValue": "stop"}]}
                                        },
                                    },
                                ],
                                "events": [
                                    {
                                        "timeUnixNano": str(start + 1000),
                                        "name": "first_token",
                                        "attributes": [{"key": "n", "value": {"intValue": "1"}}],
                                    }
                                ],
                                "status": {"code": 2, "message": "upstream failed"},
                            }
                        ],
                    }
                ],
            }
        ]
    }
    logs = {
        "resourceLogs": [
            {
                "resource": resource,
                "scopeLogs": [
                    {
                        "scope": {"name": "llm_otel"},
                        "logRecords": [
                            {
                                "timeUnixNano": str(end),
                                "observedTimeUnixNano": str(end),
                                "severityNumber": 9,
                                "severityText": "INFO",
                                "body": {"stringValue": "llm call finished"},
                                "attributes": [
                                    {"key": "litellm.call_id", "value": {"stringValue": "call-1"}}
                                ],
                                "traceId": TRACE_ID,
                                "spanId": SPAN_ID,
                            }
                        ],
                    }
                ],
            }
        ]
    }
    point_attrs = [{"key": "gen_ai.request.model", "value": {"stringValue": "verify-mock"}}]
    metrics = {
        "resourceMetrics": [
            {
                "resource": resource,
                "scopeMetrics": [
                    {
                        "scope": {"name": "llm_otel"},
                        "metrics": [
                            {
                                "name": "llm.in_flight",
                                "unit": "1",
                                "gauge": {
                                    "dataPoints": [
                                        {
                                            "attributes": point_attrs,
                                            "timeUnixNano": str(end),
                                            "asDouble": 3.5,
                                        }
                                    ]
                                },
                            },
                            {
                                "name": "llm.requests",
                                "unit": "1",
                                "sum": {
                                    "aggregationTemporality": 2,
                                    "isMonotonic": True,
                                    "dataPoints": [
                                        {
                                            "attributes": point_attrs,
                                            "startTimeUnixNano": str(start),
                                            "timeUnixNano": str(end),
                                            "asInt": "42",
                                        }
                                    ],
                                },
                            },
                            {
                                "name": "llm.duration",
                                "unit": "s",
                                "histogram": {
                                    "aggregationTemporality": 2,
                                    "dataPoints": [
                                        {
                                            "attributes": point_attrs,
                                            "startTimeUnixNano": str(start),
                                            "timeUnixNano": str(end),
                                            "count": "3",
                                            "sum": 1.5,
                                            "bucketCounts": ["1", "1", "1"],
                                            "explicitBounds": [0.1, 1.0],
                                            "min": 0.05,
                                            "max": 1.2,
                                        }
                                    ],
                                },
                            },
                        ],
                    }
                ],
            }
        ]
    }
    return {"traces": traces, "logs": logs, "metrics": metrics}


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
            [str(OTELCOL), "--config", str(self.config_path)],
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


def check_rows(rows: dict[str, list[tuple[Any, ...]]]) -> None:
    (span,) = rows["traces"]
    assert span[:4] == ("chat verify-mock", "Client", "litellm-proxy", "llm_otel")
    assert span[4] == {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "verify-mock",
        "gen_ai.usage.input_tokens": "12",
        "gen_ai.usage.cost": "0.00012",
        "gen_ai.request.stream": "false",
        "gen_ai.response.finish_reasons": '["stop"]',
    }
    assert span[5] == 250_000_000  # Duration in ns
    assert span[6:10] == ("Error", "upstream failed", TRACE_ID, SPAN_ID)
    assert span[10] == ["first_token"] and span[11] == [{"n": "1"}]
    assert abs(span[12] - time.time_ns()) < 600 * 10**9
    assert rows["trace_id_ts"] == [(TRACE_ID,)]  # the exporter's materialized view ran
    assert rows["logs"] == [
        (
            "llm call finished",
            "INFO",
            9,
            "litellm-proxy",
            {"litellm.call_id": "call-1"},
            TRACE_ID,
            SPAN_ID,
        )
    ]
    assert rows["gauge"] == [("llm.in_flight", 3.5, {"gen_ai.request.model": "verify-mock"})]
    assert rows["sum"] == [("llm.requests", 42.0, True, 2)]
    assert rows["histogram"] == [("llm.duration", 3, 1.5, [1, 1, 1], [0.1, 1.0], 0.05, 1.2)]


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
