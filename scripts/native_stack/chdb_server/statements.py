"""SQL statement handling: a request's text read as one statement, run by a handler per kind.

ClickHouse joins the `query` parameter and the body with a newline; an `INSERT ... FORMAT name`
takes its data from what follows. `HANDLERS` maps a statement's kind (its first keyword, or
`INSERT_DATA` for an insert with inline data) to the function that runs it on the chdb session.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import AdapterError
from .response import Outcome
from .sql_lexing import InsertSplit, first_keyword, split_insert, trailing_format

INSERT_DATA = "INSERT ... FORMAT"  # the kind of an insert whose data follows the statement
# Statements that answer with a result set (Content-Type and X-ClickHouse-Format follow it).
RESULT_KEYWORDS = frozenset(
    {"SELECT", "WITH", "SHOW", "DESC", "DESCRIBE", "EXISTS", "EXPLAIN", "CHECK"}
)
# After these the session's current database may have moved: the adapter re-selects it.
MOVES_DATABASE = frozenset({"USE", "DROP", "DETACH", "RENAME", "EXCHANGE"})
_HEAD_BYTES = 65536  # an INSERT's FORMAT clause is looked for in this much of the text


@dataclass(frozen=True)
class Statement:
    text: bytes  # the `query` parameter and the body, joined as ClickHouse joins them
    sql: str  # what chdb runs: for an insert, the statement without its FORMAT clause
    keyword: str
    insert: InsertSplit | None

    @property
    def kind(self) -> str:
        return INSERT_DATA if self.insert is not None else self.keyword

    @property
    def log_line(self) -> str:
        return f"{self.sql} FORMAT {self.insert.fmt} <data>" if self.insert else self.sql


def join_query(query: str | None, body: bytes) -> bytes:
    """ClickHouse concatenates the `query` parameter and the body, newline-separated."""
    if query is None:
        return body
    return query.encode() + b"\n" + body if body else query.encode()


def read_statement(query: str | None, body: bytes) -> Statement:
    text = join_query(query, body)
    if not text.strip():
        raise AdapterError(62, "SYNTAX_ERROR", "Empty query")
    head = text[:_HEAD_BYTES].decode("latin-1")  # byte offsets stay byte offsets
    insert = split_insert(head)
    sql = (
        insert.statement.encode("latin-1").decode("utf-8", "replace")
        if insert
        else text.decode("utf-8", "replace")
    )
    return Statement(text, sql, first_keyword(sql), insert)


@dataclass(frozen=True)
class Call:
    """One statement with the request settings its handler reads."""

    statement: Statement
    params: Mapping[str, str]
    headers: Mapping[str, str]
    query_params: dict[str, str]

    @property
    def default_format(self) -> str:
        return (
            self.params.get("default_format")
            or self.headers.get("x-clickhouse-format")
            or "TabSeparated"
        )


Handler = Callable[[Any, Call], Outcome]  # (chdb session, call)


def _insert(session: Any, call: Call) -> Outcome:
    """Stream the inline data into chdb's inserter; on error cancel it and report the insert's."""
    insert = call.statement.insert
    assert insert is not None
    data = call.statement.text[insert.data_start :]
    inserter = session.send_insert(call.statement.sql, insert.fmt)
    try:
        if data:
            inserter.append(data)
        result = inserter.finish()
    except Exception:
        with contextlib.suppress(Exception):  # the insert error is the one to report
            inserter.cancel()
        raise
    stats = {
        "read_rows": 0,
        "read_bytes": 0,
        "written_rows": int(getattr(result, "rows_written", 0) or 0),
        "written_bytes": int(getattr(result, "bytes_written", 0) or 0),
        "result_rows": 0,
        "result_bytes": 0,
    }
    return Outcome(b"", stats)


def _query(session: Any, call: Call, produces_result: bool) -> Outcome:
    sql = call.statement.sql
    result = session.query(sql, call.default_format, params=call.query_params or None)
    body = result.bytes() or b""
    stats = {
        "read_rows": result.rows_read(),
        "read_bytes": result.bytes_read(),
        "written_rows": result.rows_written(),
        "written_bytes": result.bytes_written(),
        "result_rows": result.rows_read() if produces_result else 0,
        "result_bytes": len(body),
    }
    out_format = trailing_format(sql) or call.default_format
    return Outcome(body, stats, out_format, produces_result)


def _select(session: Any, call: Call) -> Outcome:
    return _query(session, call, produces_result=True)


def _command(session: Any, call: Call) -> Outcome:
    return _query(session, call, produces_result=False)


HANDLERS: dict[str, Handler] = {INSERT_DATA: _insert, **dict.fromkeys(RESULT_KEYWORDS, _select)}


def handler_for(statement: Statement) -> Handler:
    """The handler of a statement's kind; any other statement runs as a command."""
    return HANDLERS.get(statement.kind, _command)
