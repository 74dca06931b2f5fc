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

from llm_otel import contract
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
    scope: str = contract.SCOPE_NAME,
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
    user_id: str = "default_user_id"  # the key's user: LiteLLM's for the master key
    app: str = ""
    cache_read: int | None = None
    cache_creation: int | None = None
    reasoning: int | None = None
    attempts: int | None = None  # litellm.call.attempts (None: as before llm_otel 0.2.0)
    fallback: bool = False
    legacy_names: bool = False  # as llm_otel before 0.2.0 named cost and cache writes
    span_id: str = field(default="")  # set by row()

    def attributes(self) -> dict[str, object]:
        attrs: dict[str, object] = {
            contract.GEN_AI_OPERATION_NAME: self.operation,
            contract.GEN_AI_PROVIDER_NAME: self.provider,
            contract.GEN_AI_REQUEST_MODEL: self.model,
            contract.GEN_AI_REQUEST_STREAM: self.stream,
            contract.LITELLM_MODEL_GROUP: self.model,
            contract.LITELLM_API_KEY_HASH: self.key_hash,
        }
        if not self.error_type:
            attrs |= {
                contract.GEN_AI_RESPONSE_MODEL: f"{self.model}-2026-01-01",
                contract.GEN_AI_RESPONSE_FINISH_REASONS: ["stop"],
                contract.GEN_AI_USAGE_INPUT_TOKENS: self.input_tokens,
                contract.GEN_AI_USAGE_OUTPUT_TOKENS: self.output_tokens,
            }
        else:
            attrs[contract.ERROR_TYPE] = self.error_type
        optional = {
            contract.GEN_AI_USAGE_COST_AMOUNT: self.cost,
            contract.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: self.ttft_s,
            contract.LITELLM_TEAM_ID: self.team_id or None,
            contract.LITELLM_TEAM_ALIAS: self.team_alias or None,
            contract.LITELLM_API_KEY_ALIAS: self.key_alias or None,
            contract.LITELLM_END_USER: self.end_user or None,
            contract.LITELLM_USER_ID: self.user_id or None,
            contract.LITELLM_APP: self.app or None,
            contract.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: self.cache_read,
            contract.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: self.cache_creation,
            contract.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: self.reasoning,
            contract.LITELLM_CALL_ATTEMPTS: self.attempts,
            contract.LITELLM_CALL_FALLBACK: True if self.fallback else None,
        }
        attrs |= {k: v for k, v in optional.items() if v is not None}
        if self.legacy_names:
            renamed = {
                contract.GEN_AI_USAGE_COST_AMOUNT: contract.LEGACY_GEN_AI_USAGE_COST,
                contract.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: (
                    contract.LEGACY_GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS
                ),
            }
            attrs = {renamed.get(k, k): v for k, v in attrs.items()}
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
            contract.HTTP_RESPONSE_STATUS_CODE: 200 if status != "Error" else 500,
            contract.GEN_AI_REQUEST_MODEL: "gpt-mini",  # a stray gen_ai attribute: not an LLM span
            contract.GEN_AI_OPERATION_NAME: "",  # set but empty: still not an LLM span
        },
    )


def quantile_linear(values: list[float], level: float) -> float:
    """ClickHouse `quantile` on fewer than 8192 values: linear interpolation between ranks."""
    ordered = sorted(values)
    pos = level * (len(ordered) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
