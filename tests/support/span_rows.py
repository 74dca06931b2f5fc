"""Rows exactly as the collector's clickhouse exporter stores spans (`exporter_span_row`,
`LlmCall`, `http_server_span`, `insert_span_rows`), so tests feed the views the same strings,
nanosecond durations and enum names the real pipeline writes.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import secrets
from dataclasses import dataclass, field

from scripts.clickhouse_schema.files import Execute

# As exporter_traces.go (v0.161.0) stores a span: attribute values through pcommon.Value.AsString,
# Duration = end - start in ns, SpanKind / StatusCode as ptrace's String() names.

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
