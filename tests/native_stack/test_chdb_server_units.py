"""The adapter's seams in-process, without chdb: statement kinds and their handlers, readonly
rules, credentials, block framing and Native re-framing."""

from __future__ import annotations

import base64

import pytest

from scripts.native_stack.chdb_server import (
    AdapterError,
    UserSpec,
    compression,
    decode_ch_blocks,
    statements,
    users,
)
from scripts.native_stack.chdb_server.native_framing import native_for_revision


def test_statement_kinds_pick_their_handlers() -> None:
    insert = statements.read_statement("INSERT INTO t FORMAT TabSeparated", b"1\n2\n")
    assert (insert.kind, insert.sql, insert.text[insert.insert.data_start :]) == (
        statements.INSERT_DATA,
        "INSERT INTO t",
        b"1\n2\n",
    )
    assert statements.handler_for(insert) is statements.HANDLERS[statements.INSERT_DATA]
    select = statements.read_statement(None, b"  -- note\nSELECT 1 FORMAT JSON")
    assert select.keyword == "SELECT"
    assert statements.handler_for(select) is statements.HANDLERS["SELECT"]
    values = statements.read_statement("INSERT INTO t VALUES (1)", b"")
    assert values.insert is None and statements.handler_for(values) not in (
        statements.HANDLERS[statements.INSERT_DATA],
        statements.HANDLERS["SELECT"],
    )
    with pytest.raises(AdapterError) as empty:
        statements.read_statement(None, b"  \n")
    assert empty.value.code == 62


def test_query_parameter_and_body_join_with_a_newline() -> None:
    assert statements.join_query("SELECT", b"1") == b"SELECT\n1"
    assert statements.join_query("SELECT 1", b"") == b"SELECT 1"
    assert statements.join_query(None, b"SELECT 2") == b"SELECT 2"


def test_readonly_rules() -> None:
    reader, writer = UserSpec("pw", readonly=True), UserSpec("pw")
    users.check_readonly("r", reader, "POST", {}, "SELECT")
    users.check_readonly("w", writer, "GET", {}, "SET")  # GET implies readonly, SET passes
    users.check_readonly("w", writer, "POST", {}, "DROP")
    for spec, method, params in (
        (reader, "POST", {}),
        (writer, "GET", {}),
        (writer, "POST", {"readonly": "1"}),
    ):
        with pytest.raises(AdapterError) as denied:
            users.check_readonly("u", spec, method, params, "DROP")
        assert denied.value.code == 164


def test_credentials_in_clickhouse_order() -> None:
    basic = "Basic " + base64.b64encode(b"admin:pw").decode()
    assert users.credentials({"authorization": basic, "x-clickhouse-user": "x"}, {}) == (
        "admin",
        "pw",
    )
    assert users.credentials(
        {"x-clickhouse-user": "u", "x-clickhouse-key": "k"}, {"user": "p"}
    ) == ("u", "k")
    assert users.credentials({}, {"user": "p", "password": "q"}) == ("p", "q")
    assert users.credentials({}, {}) == ("default", "")
    with pytest.raises(AdapterError) as wrong:
        users.authenticate({"admin": UserSpec("pw")}, {}, {"user": "admin", "password": "no"})
    assert wrong.value.code == 516


@pytest.mark.parametrize("method", ["lz4", "zstd", "none"])
def test_block_framing_round_trips(method: str) -> None:
    data = bytes(range(256)) * 5000  # over one 1 MiB block
    assert decode_ch_blocks(compression.encode_ch_blocks(data, method)) == data


def test_native_reframing_adds_block_info_and_serialization_byte() -> None:
    # One UInt8 column `a` with two rows, as chdb writes revision-0 Native.
    block = b"\x01\x02" + b"\x01a" + b"\x05UInt8" + b"\x07\x08"
    info = b"\x01\x00\x02\xff\xff\xff\xff\x00"
    assert native_for_revision(block, 0) == block
    assert native_for_revision(block, 54405) == info + block
    assert native_for_revision(block, 54460) == info + b"\x01\x02\x01a\x05UInt8\x00\x07\x08"
