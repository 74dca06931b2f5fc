"""The chdb adapter against clickhouse-connect (scripts, tests): types, databases, errors,
readonly users, and the Native re-framing for a client's protocol revision."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from llm_otel.contract import GEN_AI_OPERATION_NAME
from scripts.native_stack.chdb_server import AdapterProcess

from .chdb_clients import ADMIN_AUTH, connect

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
        {GEN_AI_OPERATION_NAME: "chat", "k": "v"},
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
