"""What an answer carries: status, body and ClickHouse's headers, for results and errors."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from .compression import compress_result
from .errors import HTTP_STATUS_BY_NAME, AdapterError

_TEXT = "text/plain; charset=UTF-8"
_BINARY_FORMATS = (
    "native",
    "rowbinary",
    "parquet",
    "arrow",
    "orc",
    "avro",
    "msgpack",
    "protobuf",
    "capnproto",
)


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    statement: str = ""  # decoded statement, for the request log
    note: str = ""  # who, where and which body encoding, for the request log


@dataclass
class Outcome:
    """A statement's result before it is framed for the client."""

    body: bytes
    stats: dict[str, int]
    out_format: str = "TabSeparated"
    produces_result: bool = False


def content_type(fmt: str) -> str:
    f = fmt.lower()
    if f.startswith("json") or f.startswith("ndjson"):
        return "application/json; charset=UTF-8"
    if f.startswith(("tabseparated", "tsv")):
        return "text/tab-separated-values; charset=UTF-8"
    if f.startswith("csv"):
        return "text/csv; charset=UTF-8"
    if f.startswith(_BINARY_FORMATS):
        return "application/octet-stream"
    return _TEXT


def plain(status: int, text: str) -> Response:
    """A health-check or routing answer (ClickHouse sends these as text/html)."""
    return Response(status, text.encode(), {"Content-Type": "text/html; charset=UTF-8"})


def error_response(err: AdapterError, version: str) -> Response:
    """`Code: N. DB::Exception: message (NAME) (version V)` with ClickHouse's HTTP status."""
    message = err.message
    if err.name and not message.endswith(f"({err.name})"):
        message = f"{message} ({err.name})"
    body = f"Code: {err.code}. DB::Exception: {message} (version {version})\n".encode()
    status = HTTP_STATUS_BY_NAME.get(err.name, 500)
    headers = {"Content-Type": _TEXT, "X-ClickHouse-Exception-Code": str(err.code)}
    return Response(status, body, headers)


@dataclass(frozen=True)
class ServerInfo:
    """What every result names of the server."""

    display_name: str
    timezone: str


def result_response(
    outcome: Outcome,
    params: Mapping[str, str],
    headers: Mapping[str, str],
    server: ServerInfo,
    started: float,
) -> Response:
    """A 200 answer with ClickHouse's result headers, compressed as the request asks."""
    summary = {
        **{k: str(v) for k, v in outcome.stats.items()},
        "total_rows_to_read": "0",
        "elapsed_ns": str(int((time.monotonic() - started) * 1e9)),
    }
    response_headers = {
        "Content-Type": content_type(outcome.out_format) if outcome.produces_result else _TEXT,
        "X-ClickHouse-Server-Display-Name": server.display_name,
        "X-ClickHouse-Query-Id": params.get("query_id") or str(uuid.uuid4()),
        "X-ClickHouse-Timezone": server.timezone,
        "X-ClickHouse-Summary": json.dumps(summary, separators=(",", ":")),
    }
    if outcome.produces_result:
        response_headers["X-ClickHouse-Format"] = outcome.out_format
    body, applied = compress_result(outcome.body, params, headers)
    if applied:
        response_headers["Content-Encoding"] = applied
    return Response(200, body, response_headers)
