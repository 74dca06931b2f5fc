"""OTLP trace requests written straight to protobuf bytes.

The SDK's encoder builds a Python protobuf object for every span, attribute and value before
serialising (~70 us for a span of 22 attributes, measured here; docs/PERFORMANCE.md). This writer
produces the same bytes, field by field in field number order as protobuf serialises them, from
the same `ReadableSpan`s, in about a third of that: attribute keys, the resource and the scope
are encoded once and reused, common values are written inline. The collector receives
an unchanged OTLP/HTTP protobuf request; tests/hook/test_otlp_protobuf.py proves the bytes equal
the SDK encoder's for every field and value type.

Wire format: https://protobuf.dev/programming-guides/encoding/ ; messages:
opentelemetry-proto's trace/v1, common/v1 and resource/v1 (the numbers below are theirs).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext

# Tags: (field number << 3) | wire type (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32).
_LEN1 = b"\x0a"  # field 1, length-delimited: ExportTraceServiceRequest.resource_spans,
# ResourceSpans.resource, ScopeSpans.scope, Resource.attributes, KeyValue.key,
# AnyValue.string_value, ArrayValue.values, KeyValueList.values, Span.trace_id, Link.trace_id
_LEN2 = b"\x12"  # field 2: ResourceSpans.scope_spans, ScopeSpans.spans, KeyValue.value,
# InstrumentationScope.version, Span.span_id, Event.name, Link.span_id, Status.message
_LEN3 = b"\x1a"  # field 3: *.schema_url, InstrumentationScope.attributes, Span.trace_state,
# Event.attributes
# AnyValue's oneof (a set member is written even when it holds its default value).
_ANY_BOOL_FALSE = b"\x10\x00"
_ANY_BOOL_TRUE = b"\x10\x01"
_ANY_INT = b"\x18"
_ANY_DOUBLE = b"\x21"
_ANY_ARRAY = b"\x2a"
_ANY_KVLIST = b"\x32"
_ANY_BYTES = b"\x3a"
# Span
_SPAN_PARENT_ID = b"\x22"
_SPAN_NAME = b"\x2a"
_SPAN_KIND = b"\x30"
_SPAN_START = b"\x39"
_SPAN_END = b"\x41"
_SPAN_ATTRIBUTE = b"\x4a"
_SPAN_DROPPED_ATTRIBUTES = b"\x50"
_SPAN_EVENT = b"\x5a"
_SPAN_DROPPED_EVENTS = b"\x60"
_SPAN_LINK = b"\x6a"
_SPAN_DROPPED_LINKS = b"\x70"
_SPAN_STATUS = b"\x7a"
_SPAN_FLAGS = b"\x85\x01"  # field 16, fixed32
# Event
_EVENT_TIME = b"\x09"
_EVENT_DROPPED_ATTRIBUTES = b"\x20"
# Link
_LINK_ATTRIBUTE = b"\x22"
_LINK_DROPPED_ATTRIBUTES = b"\x28"
_LINK_FLAGS = b"\x35"
# Status
_STATUS_CODE = b"\x18"
# SpanFlags: the exporter always says whether the parent was remote.
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200

log = logging.getLogger("llm_otel")

_fixed64 = struct.Struct("<Q").pack
_fixed32 = struct.Struct("<I").pack
_double = struct.Struct("<d").pack
_VARINT_1 = [bytes((n,)) for n in range(128)]  # lengths below 128: one byte


def _varint(value: int) -> bytes:
    if 0 <= value < 128:
        return _VARINT_1[value]
    value &= 0xFFFFFFFFFFFFFFFF  # a negative int64 is written as its two's complement
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: bytes, body: bytes) -> bytes:
    """A length-delimited field: tag, length, body."""
    return tag + _varint(len(body)) + body


def _string(tag: bytes, text: str) -> bytes:
    return _field(tag, text.encode())


# KeyValue.key written once per distinct key: a gateway sends the same few dozen names forever.
_KEYS: dict[str, bytes] = {}
_MAX_CACHED_KEYS = 4096


def _key(key: str) -> bytes:
    encoded = _KEYS.get(key)
    if encoded is None:
        encoded = _string(_LEN1, key)
        if len(_KEYS) < _MAX_CACHED_KEYS:
            _KEYS[key] = encoded
    return encoded


def any_value(value: Any) -> bytes:
    """The body of an AnyValue, as the SDK's `_encode_value` would fill it."""
    if value is None:
        return b""
    if value is True:
        return _ANY_BOOL_TRUE
    if value is False:
        return _ANY_BOOL_FALSE
    if isinstance(value, str):
        return _string(_LEN1, value)
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise ValueError(f"{value} does not fit an int64")
        return _ANY_INT + _varint(value)
    if isinstance(value, float):
        return _ANY_DOUBLE + _double(value)
    if isinstance(value, bytes):
        return _field(_ANY_BYTES, value)
    if isinstance(value, Sequence):
        return _field(_ANY_ARRAY, b"".join([_field(_LEN1, any_value(v)) for v in value]))
    if isinstance(value, Mapping):
        pairs = [_field(_LEN1, key_value(str(k), v)) for k, v in value.items()]
        return _field(_ANY_KVLIST, b"".join(pairs))
    raise TypeError(f"an attribute value of type {type(value).__name__} cannot be exported")


def key_value(key: str, value: Any) -> bytes:
    return _key(key) + _field(_LEN2, any_value(value))


def attributes(tag: bytes, attrs: Mapping[str, Any] | None) -> list[bytes]:
    """Each attribute as a KeyValue field with `tag`. The hot path of the encoder: strings,
    ints, floats and booleans are written inline, anything else through `any_value`."""
    if not attrs:
        return []
    # The SDK's BoundedAttributes takes its lock for every item read; the plain dict it wraps
    # cannot change any more once the span has ended.
    items = getattr(attrs, "_dict", attrs).items()
    out = []
    for key, value in items:
        encoded_key = _KEYS.get(key) or _key(key)
        kind = type(value)
        if kind is str:
            text = value.encode()
            size = len(text)
            if size < 126:  # AnyValue and KeyValue.value lengths fit one byte each
                kv = encoded_key + b"\x12" + _VARINT_1[size + 2] + b"\x0a" + _VARINT_1[size] + text
            else:
                kv = encoded_key + _field(_LEN2, _field(_LEN1, text))
        elif kind is int and 0 <= value < 128:
            kv = encoded_key + b"\x12\x02\x18" + _VARINT_1[value]
        elif kind is float:
            kv = encoded_key + b"\x12\x09\x21" + _double(value)
        elif kind is bool:
            kv = encoded_key + (b"\x12\x02\x10\x01" if value else b"\x12\x02\x10\x00")
        else:
            try:
                kv = encoded_key + _field(_LEN2, any_value(value))
            except (TypeError, ValueError) as exc:
                # As the SDK's encoder does: the attribute is left out, with a log.
                log.error("llm_otel: attribute %s not exported: %s", key, exc)
                continue
        out.append(tag + _varint(len(kv)) + kv)
    return out


def _flags(parent: SpanContext | None) -> bytes:
    return _fixed32(_HAS_IS_REMOTE | _IS_REMOTE if parent and parent.is_remote else _HAS_IS_REMOTE)


def _trace_state(context: SpanContext) -> bytes:
    state = context.trace_state
    if not state:
        return b""
    return _string(_LEN3, ",".join(f"{k}={v}" for k, v in state.items()))


def span(s: ReadableSpan) -> bytes:
    """The body of one Span message."""
    context = s.get_span_context()
    assert context is not None  # an SDK span always has one
    parent = s.parent
    parts = [
        b"\x0a\x10" + context.trace_id.to_bytes(16, "big"),
        b"\x12\x08" + context.span_id.to_bytes(8, "big"),
        _trace_state(context),
        _SPAN_PARENT_ID + b"\x08" + parent.span_id.to_bytes(8, "big") if parent else b"",
        _string(_SPAN_NAME, s.name) if s.name else b"",
        _SPAN_KIND + _VARINT_1[s.kind.value + 1],
        _SPAN_START + _fixed64(s.start_time) if s.start_time else b"",
        _SPAN_END + _fixed64(s.end_time) if s.end_time else b"",
        # `attributes` wraps the span's own mapping in a read-only proxy; the mapping itself is
        # read directly (the bytes are the same, tested; the proxy costs a call per item).
        *attributes(_SPAN_ATTRIBUTE, getattr(s, "_attributes", None) or s.attributes),
    ]
    if s.dropped_attributes:
        parts.append(_SPAN_DROPPED_ATTRIBUTES + _varint(s.dropped_attributes))
    for event in s.events:
        body = [
            _EVENT_TIME + _fixed64(event.timestamp) if event.timestamp else b"",
            _string(_LEN2, event.name) if event.name else b"",
            *attributes(_LEN3, event.attributes),
        ]
        if event.dropped_attributes:
            body.append(_EVENT_DROPPED_ATTRIBUTES + _varint(event.dropped_attributes))
        parts.append(_field(_SPAN_EVENT, b"".join(body)))
    if s.dropped_events:
        parts.append(_SPAN_DROPPED_EVENTS + _varint(s.dropped_events))
    for link in s.links:
        body = [
            b"\x0a\x10" + link.context.trace_id.to_bytes(16, "big"),
            b"\x12\x08" + link.context.span_id.to_bytes(8, "big"),
            *attributes(_LINK_ATTRIBUTE, link.attributes),
        ]
        if link.dropped_attributes:
            body.append(_LINK_DROPPED_ATTRIBUTES + _varint(link.dropped_attributes))
        body.append(_LINK_FLAGS + _flags(link.context))
        parts.append(_field(_SPAN_LINK, b"".join(body)))
    if s.dropped_links:
        parts.append(_SPAN_DROPPED_LINKS + _varint(s.dropped_links))
    status = s.status
    code = status.status_code.value
    status_body = (_string(_LEN2, status.description) if status.description else b"") + (
        _STATUS_CODE + _VARINT_1[code] if code else b""
    )
    parts.append(_field(_SPAN_STATUS, status_body))
    parts.append(_SPAN_FLAGS + _flags(parent))
    return b"".join(parts)


def _resource(resource: Resource) -> bytes:
    return b"".join(attributes(_LEN1, resource.attributes))


def _scope(scope: InstrumentationScope | None) -> bytes:
    if scope is None:
        return b""
    return b"".join(
        [
            _string(_LEN1, scope.name) if scope.name else b"",
            _string(_LEN2, scope.version) if scope.version else b"",
            *attributes(_LEN3, scope.attributes),
        ]
    )


# A process has one resource and a few scopes: their encodings are kept (by identity, the
# objects live as long as the tracer provider; equal copies are simply encoded again).
_HEADERS: dict[int, tuple[object, bytes]] = {}


def _cached(obj: object, encode: Any) -> bytes:
    hit = _HEADERS.get(id(obj))
    if hit is not None and hit[0] is obj:
        return hit[1]
    encoded: bytes = encode(obj)
    if len(_HEADERS) < 64:
        _HEADERS[id(obj)] = (obj, encoded)
    return encoded


def encode_spans(spans: Sequence[ReadableSpan]) -> bytes:
    """An ExportTraceServiceRequest holding `spans`, serialised; grouped by resource, then by
    instrumentation scope, in order of first appearance, as the SDK's encoder groups them."""
    grouped: dict[Resource, dict[InstrumentationScope | None, list[bytes]]] = {}
    for s in spans:
        scopes = grouped.setdefault(s.resource, {})
        scopes.setdefault(s.instrumentation_scope or None, []).append(_field(_LEN2, span(s)))
    out = []
    for resource, scopes in grouped.items():
        body = [_field(_LEN1, _cached(resource, _resource))]
        for scope, encoded in scopes.items():
            scope_body = [_field(_LEN1, _cached(scope, _scope)), *encoded]
            if scope is not None and scope.schema_url:
                scope_body.append(_string(_LEN3, scope.schema_url))
            body.append(_field(_LEN2, b"".join(scope_body)))
        if resource.schema_url:
            body.append(_string(_LEN3, resource.schema_url))
        out.append(_field(_LEN1, b"".join(body)))
    return b"".join(out)
