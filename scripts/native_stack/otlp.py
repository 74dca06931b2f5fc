"""Flatten OTLP/JSON documents (as the collector's file exporter writes them) for assertions."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from scripts.span_contract import contract


def any_value(value: dict[str, Any]) -> Any:
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [any_value(v) for v in value["arrayValue"].get("values", [])]
    if "kvlistValue" in value:
        return attributes(value["kvlistValue"].get("values", []))
    return None


def attributes(items: Iterable[dict[str, Any]] | None) -> dict[str, Any]:
    return {item["key"]: any_value(item.get("value", {})) for item in items or []}


@dataclass
class Event:
    name: str
    time_ns: int
    attributes: dict[str, Any]


@dataclass
class Span:
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str
    status_code: int
    status_message: str
    start_ns: int
    end_ns: int
    scope: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope_version: str = ""
    schema_url: str = ""
    events: list[Event] = field(default_factory=list)

    @property
    def is_llm(self) -> bool:
        return contract.GEN_AI_OPERATION_NAME in self.attributes


def spans(documents: Iterable[dict[str, Any]]) -> list[Span]:
    out = []
    for doc in documents:
        for resource_spans in doc.get("resourceSpans", []):
            resource = attributes(resource_spans.get("resource", {}).get("attributes"))
            for scope_spans in resource_spans.get("scopeSpans", []):
                scope = scope_spans.get("scope", {})
                for s in scope_spans.get("spans", []):
                    status = s.get("status", {})
                    out.append(
                        Span(
                            name=s.get("name", ""),  # proto3 JSON omits an empty name
                            kind=int(s.get("kind", 0)),
                            trace_id=s["traceId"],
                            span_id=s["spanId"],
                            parent_span_id=s.get("parentSpanId", ""),
                            status_code=int(status.get("code", 0)),
                            status_message=status.get("message", ""),
                            start_ns=int(s.get("startTimeUnixNano", 0)),
                            end_ns=int(s.get("endTimeUnixNano", 0)),
                            scope=scope.get("name", ""),
                            attributes=attributes(s.get("attributes")),
                            resource=resource,
                            scope_version=scope.get("version", ""),
                            schema_url=scope_spans.get("schemaUrl", ""),
                            events=[
                                Event(
                                    name=e.get("name", ""),
                                    time_ns=int(e.get("timeUnixNano", 0)),
                                    attributes=attributes(e.get("attributes")),
                                )
                                for e in s.get("events", [])
                            ],
                        )
                    )
    return out


@dataclass
class Metric:
    name: str
    scope: str
    kind: str
    unit: str
    points: list[dict[str, Any]]
    resource: dict[str, Any]
    scope_version: str = ""


def metrics(documents: Iterable[dict[str, Any]]) -> list[Metric]:
    out = []
    for doc in documents:
        for resource_metrics in doc.get("resourceMetrics", []):
            resource = attributes(resource_metrics.get("resource", {}).get("attributes"))
            for scope_metrics in resource_metrics.get("scopeMetrics", []):
                scope = scope_metrics.get("scope", {})
                for m in scope_metrics.get("metrics", []):
                    kind = next(
                        (
                            k
                            for k in (
                                "sum",
                                "gauge",
                                "histogram",
                                "exponentialHistogram",
                                "summary",
                            )
                            if k in m
                        ),
                        "",
                    )
                    points = []
                    for p in (m.get(kind) or {}).get("dataPoints", []):
                        point = dict(p)
                        point["attributes"] = attributes(p.get("attributes"))
                        points.append(point)
                    out.append(
                        Metric(
                            name=m["name"],
                            scope=scope.get("name", ""),
                            kind=kind,
                            unit=m.get("unit", ""),
                            points=points,
                            resource=resource,
                            scope_version=scope.get("version", ""),
                        )
                    )
    return out
