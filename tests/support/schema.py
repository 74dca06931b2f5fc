"""Apply the owned ClickHouse schema (clickhouse/initdb/*.sql) to any SQL executor.

The server image runs these files through `clickhouse-client --multiquery` on a fresh volume.
Tests and the native harness run the very same files against chdb (ClickHouse in-process),
statement by statement, through `apply_schema(execute)`, where `execute(sql)` runs one
statement: `chdb_executor(session)`, a clickhouse-connect `client.command`, or anything else.

It also builds rows exactly as the collector's clickhouse exporter stores spans
(`exporter_span_row`, `LlmCall`, `http_server_span`, `insert_span_rows`), so tests feed the
views the same strings, nanosecond durations and enum names the real pipeline writes.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
INITDB_DIR = REPO_ROOT / "clickhouse" / "initdb"

TELEMETRY_DATABASE = "otel"  # fixed in the initdb files; CLICKHOUSE_DATABASE must match

Execute = Callable[[str], Any]

# chdb keeps one engine per process; its data path is fixed by the first Session opened.
_PATH_CONFLICT = re.compile(r"already initialized with path '([^']*)'")


def split_sql(text: str) -> list[str]:
    """Split a multi-statement SQL script on top-level semicolons.

    Semicolons inside quoted strings ('...', with '' or backslash escapes), quoted identifiers
    (`...`, "..."), `--` line comments and /* ... */ block comments do not end a statement.
    (ClickHouse also reads `#` comments; the initdb files do not use them.) Pieces holding
    nothing but comments and whitespace are dropped, so a file may end with a comment.
    """
    statements: list[str] = []
    current: list[str] = []
    has_code = False
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "-" and text.startswith("--", i):
            end = text.find("\n", i)
            end = n if end == -1 else end
            current.append(text[i:end])
            i = end
        elif ch == "/" and text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end == -1 else end + 2
            current.append(text[i:end])
            i = end
        elif ch in "'`\"":
            end = _end_of_quoted(text, i)
            current.append(text[i:end])
            has_code = True
            i = end
        elif ch == ";":
            if has_code:
                statements.append("".join(current).strip())
            current, has_code = [], False
            i += 1
        else:
            current.append(ch)
            has_code = has_code or not ch.isspace()
            i += 1
    if has_code:
        statements.append("".join(current).strip())
    return statements


def _end_of_quoted(text: str, start: int) -> int:
    """Index just past the quoted token opening at `start` (doubled quote or backslash escapes)."""
    quote = text[start]
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == quote:
            if i + 1 < len(text) and text[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    raise ValueError(f"unterminated {quote} quote starting at offset {start}")


def initdb_files(directory: Path = INITDB_DIR) -> list[Path]:
    """The initdb SQL files in the order the image's entrypoint runs them (by name)."""
    files = sorted(directory.glob("*.sql"), key=lambda p: p.name)
    if not files:
        raise FileNotFoundError(f"no *.sql files in {directory}")
    return files


def apply_schema(execute: Execute, directory: Path = INITDB_DIR) -> list[str]:
    """Run every statement of every initdb file in order; return the file names applied.

    A failing statement raises RuntimeError naming the file and the statement, with the
    engine's error chained, so a broken migration points at its own line of SQL.
    """
    applied: list[str] = []
    for path in initdb_files(directory):
        for statement in split_sql(path.read_text(encoding="utf-8")):
            try:
                execute(statement)
            except Exception as exc:
                raise RuntimeError(
                    f"{path.name}: statement failed: {exc}\n---\n{statement}"
                ) from exc
        applied.append(path.name)
    return applied


def chdb_session() -> Any:
    """A chdb Session on the process-wide engine (whatever data path it was opened with).

    Sessions in one process share a single engine, so callers isolate themselves by database
    (drop and re-create `otel`) rather than by session.
    """
    from chdb import session as chdb_session_mod

    try:
        return chdb_session_mod.Session()
    except Exception as exc:
        match = _PATH_CONFLICT.search(str(exc))
        if not match:
            raise
        return chdb_session_mod.Session(match.group(1))


def chdb_executor(session: Any) -> Execute:
    """Adapt a chdb Session to the execute(sql) callable apply_schema expects."""

    def execute(sql: str) -> Any:
        return session.query(sql, "CSV")

    return execute


def reset_schema(execute: Execute) -> list[str]:
    """Drop the telemetry database and apply the schema from scratch.

    Test isolation on chdb's shared engine: every module that needs a clean `otel` calls this.
    """
    execute(f"DROP DATABASE IF EXISTS `{TELEMETRY_DATABASE}` SYNC")
    return apply_schema(execute)


# ---------------------------------------------------------------- exporter-shaped span rows
#
# Rows as the contrib clickhouse exporter stores a span (exporter_traces.go at v0.161.0):
# every attribute value goes through pcommon.Value.AsString, Duration is end - start in ns,
# SpanKind / StatusCode are ptrace's String() names ("Client", "Server"; "Unset", "Ok", "Error").

SPAN_KINDS = ("Unspecified", "Internal", "Server", "Client", "Producer", "Consumer")
STATUS_CODES = ("Unset", "Ok", "Error")


def otel_attribute_string(value: object) -> str:
    """pcommon.Value.AsString: bools 'true'/'false', ints decimal, doubles ES6-like, arrays JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float_string(value)
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def _go_float_string(value: float) -> str:
    """float64AsString: shortest round-trip digits, exponent only below 1e-6 or from 1e21 up."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        mantissa, exponent = repr(value).split("e") if "e" in repr(value) else (repr(value), "0")
        mantissa = mantissa.removesuffix(".0")
        sign = "-" if exponent.startswith("-") else "+"
        return f"{mantissa}e{sign}{int(exponent.lstrip('+-'))}"
    text = format(decimal.Decimal(repr(value)), "f")
    return text.removesuffix(".0") if "." in text and text.endswith(".0") else text


def exporter_span_row(
    *,
    start_ns: int,
    duration_ns: int,
    name: str,
    attributes: dict[str, object],
    kind: str = "Client",
    status: str = "Unset",
    status_message: str = "",
    service: str = "litellm-proxy",
    scope: str = "llm_otel",
    trace_id: str | None = None,
    span_id: str | None = None,
    parent_span_id: str = "",
    resource: dict[str, object] | None = None,
) -> dict[str, object]:
    """One otel_traces row exactly as the exporter would write it."""
    assert kind in SPAN_KINDS and status in STATUS_CODES, (kind, status)
    resource_attrs = {"service.name": service, **(resource or {})}
    return {
        # "seconds.nanoseconds" parses exactly into DateTime64(9) whatever the session timezone.
        "Timestamp": f"{start_ns // 1_000_000_000}.{start_ns % 1_000_000_000:09d}",
        "TraceId": trace_id or secrets.token_hex(16),
        "SpanId": span_id or secrets.token_hex(8),
        "ParentSpanId": parent_span_id,
        "TraceState": "",
        "SpanName": name,
        "SpanKind": kind,
        "ServiceName": service,
        "ResourceAttributes": {k: otel_attribute_string(v) for k, v in resource_attrs.items()},
        "ScopeName": scope,
        "ScopeVersion": "",
        "SpanAttributes": {k: otel_attribute_string(v) for k, v in attributes.items()},
        "Duration": duration_ns,
        "StatusCode": status,
        "StatusMessage": status_message,
    }


def insert_span_rows(
    execute: Execute, rows: list[dict[str, object]], table: str = "otel.otel_traces"
) -> None:
    """INSERT the rows in one block, as one exporter batch would arrive."""
    if not rows:
        return
    columns = ", ".join(f"`{c}`" for c in rows[0])
    body = "\n".join(json.dumps(row, ensure_ascii=False) for row in rows)
    execute(f"INSERT INTO {table} ({columns}) FORMAT JSONEachRow\n{body}")


@dataclass
class LlmCall:
    """An LLM call as the llm_otel hook reports it; `row()`: its span as the exporter stores it."""

    model: str
    start: dt.datetime
    duration_ms: float
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float | None = None
    stream: bool = False
    ttft_s: float | None = None
    error_type: str = ""
    provider: str = "openai"
    operation: str = "chat"
    team_id: str = ""
    team_alias: str = ""
    key_hash: str = "litellm_proxy_master_key"
    key_alias: str = ""
    end_user: str = ""
    app: str = ""
    cache_read: int | None = None
    cache_creation: int | None = None
    reasoning: int | None = None
    span_id: str = field(default="")  # set by row()

    def attributes(self) -> dict[str, object]:
        attrs: dict[str, object] = {
            "gen_ai.operation.name": self.operation,
            "gen_ai.provider.name": self.provider,
            "gen_ai.request.model": self.model,
            "gen_ai.request.stream": self.stream,
            "litellm.model_group": self.model,
            "litellm.api_key_hash": self.key_hash,
        }
        if not self.error_type:
            attrs |= {
                "gen_ai.response.model": f"{self.model}-2026-01-01",
                "gen_ai.response.finish_reasons": ["stop"],
                "gen_ai.usage.input_tokens": self.input_tokens,
                "gen_ai.usage.output_tokens": self.output_tokens,
            }
        else:
            attrs["error.type"] = self.error_type
        optional = {
            "gen_ai.usage.cost": self.cost,
            "gen_ai.response.time_to_first_chunk": self.ttft_s,
            "litellm.team_id": self.team_id or None,
            "litellm.team_alias": self.team_alias or None,
            "litellm.api_key_alias": self.key_alias or None,
            "litellm.end_user": self.end_user or None,
            "litellm.app": self.app or None,
            "gen_ai.usage.cache_read.input_tokens": self.cache_read,
            "gen_ai.usage.cache_creation.input_tokens": self.cache_creation,
            "gen_ai.usage.reasoning.output_tokens": self.reasoning,
        }
        attrs |= {k: v for k, v in optional.items() if v is not None}
        return attrs

    def row(self) -> dict[str, object]:
        start_ns = int(self.start.timestamp()) * 1_000_000_000 + self.start.microsecond * 1000
        row = exporter_span_row(
            start_ns=start_ns,
            duration_ns=round(self.duration_ms * 1_000_000),
            name=f"{self.operation} {self.model}",
            kind="Client",
            status="Error" if self.error_type else "Unset",
            status_message=self.error_type,
            attributes=self.attributes(),
            resource={"deployment.environment.name": "test"},
        )
        self.span_id = str(row["SpanId"])
        return row


def http_server_span(
    start: dt.datetime, duration_ms: float, status: str = "Unset"
) -> dict[str, object]:
    """FastAPI's own SERVER span around a request: never an LLM call, whatever its route."""
    start_ns = int(start.timestamp()) * 1_000_000_000 + start.microsecond * 1000
    return exporter_span_row(
        start_ns=start_ns,
        duration_ns=int(duration_ms * 1_000_000),
        name="POST /v1/chat/completions",
        kind="Server",
        status=status,
        scope="opentelemetry.instrumentation.fastapi",
        attributes={
            "http.request.method": "POST",
            "http.route": "/v1/chat/completions",
            "http.response.status_code": 200 if status != "Error" else 500,
            "gen_ai.request.model": "gpt-mini",  # a stray gen_ai attribute must not qualify it
            "gen_ai.operation.name": "",  # set but empty: still not an LLM span
        },
    )


def quantile_linear(values: list[float], level: float) -> float:
    """ClickHouse `quantile` on fewer than 8192 values: linear interpolation between ranks."""
    ordered = sorted(values)
    pos = level * (len(ordered) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
