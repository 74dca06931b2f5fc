"""OTLP/HTTP trace exports as the stand-in receivers keep them: protobuf decoded into flat spans.

Needs only `opentelemetry-proto`, so the AgentOps stand-in image carries it without the rest of
the tests.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue


@dataclass(frozen=True)
class ReceivedSpan:
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: int
    start_ns: int
    end_ns: int
    status_code: int
    status_message: str
    scope: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    received_at: float  # time.monotonic() when the export that carried it was accepted

    @property
    def is_llm(self) -> bool:
        return "gen_ai.operation.name" in self.attributes


def _any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    if kind is None:
        return None
    return getattr(value, kind)


def _attributes(items: Iterable[KeyValue]) -> dict[str, Any]:
    return {item.key: _any_value(item.value) for item in items}


def decode_protobuf(body: bytes, received_at: float) -> list[ReceivedSpan]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    out = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for s in scope_spans.spans:
                out.append(
                    ReceivedSpan(
                        trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(),
                        parent_span_id=s.parent_span_id.hex(),
                        name=s.name,
                        kind=int(s.kind),
                        start_ns=s.start_time_unix_nano,
                        end_ns=s.end_time_unix_nano,
                        status_code=int(s.status.code),
                        status_message=s.status.message,
                        scope=scope_spans.scope.name,
                        attributes=_attributes(s.attributes),
                        resource=resource,
                        received_at=received_at,
                    )
                )
    return out
