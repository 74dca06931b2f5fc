"""The Native format's column types: a type name parsed into a tree, and fixed value sizes.

Enough of ClickHouse's type grammar for `native_framing` to walk column data by type.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FIXED_SIZES: dict[str, int] = {
    "UInt8": 1,
    "Int8": 1,
    "Bool": 1,
    "Enum8": 1,
    "UInt16": 2,
    "Int16": 2,
    "Enum16": 2,
    "Date": 2,
    "BFloat16": 2,
    "UInt32": 4,
    "Int32": 4,
    "Float32": 4,
    "Date32": 4,
    "DateTime": 4,
    "IPv4": 4,
    "Decimal32": 4,
    "Time": 4,
    "UInt64": 8,
    "Int64": 8,
    "Float64": 8,
    "DateTime64": 8,
    "Decimal64": 8,
    "Time64": 8,
    "IntervalNanosecond": 8,
    "IntervalMicrosecond": 8,
    "IntervalMillisecond": 8,
    "IntervalSecond": 8,
    "IntervalMinute": 8,
    "IntervalHour": 8,
    "IntervalDay": 8,
    "IntervalWeek": 8,
    "IntervalMonth": 8,
    "IntervalQuarter": 8,
    "IntervalYear": 8,
    "UInt128": 16,
    "Int128": 16,
    "UUID": 16,
    "IPv6": 16,
    "Decimal128": 16,
    "UInt256": 32,
    "Int256": 32,
    "Decimal256": 32,
    "Nothing": 1,  # written as one '0' byte per row
}
_GEO_ALIASES = {
    "Point": "Tuple(Float64, Float64)",
    "Ring": "Array(Point)",
    "LineString": "Array(Point)",
    "Polygon": "Array(Ring)",
    "MultiLineString": "Array(LineString)",
    "MultiPolygon": "Array(Polygon)",
}


class UnsupportedNativeTypeError(Exception):
    """A column type whose Native layout this adapter does not walk."""


@dataclass(frozen=True)
class NativeType:
    name: str
    args: tuple[str, ...] = ()


def _split_args(text: str) -> list[str]:
    """Split a type's argument list on top-level commas, respecting quotes and nesting."""
    args, depth, quote, start, i = [], 0, "", 0, 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'`\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            args.append(text[start:i].strip())
            start = i + 1
        i += 1
    tail = text[start:].strip()
    if tail:
        args.append(tail)
    return args


_NAMED_ELEMENT = re.compile(
    r"^(`(?:[^`\\]|\\.)*`|\"(?:[^\"\\]|\\.)*\"|[A-Za-z_][A-Za-z0-9_.]*)\s+(?=[A-Za-z_])"
)


def parse_type(text: str) -> NativeType:
    text = text.strip()
    paren = text.find("(")
    if paren < 0:
        alias = _GEO_ALIASES.get(text)
        return parse_type(alias) if alias else NativeType(text)
    if not text.endswith(")"):
        raise UnsupportedNativeTypeError(f"cannot parse type {text!r}")
    return NativeType(text[:paren].strip(), tuple(_split_args(text[paren + 1 : -1])))


def _element_type(arg: str) -> NativeType:
    """A Tuple/Nested element: `name Type` or a bare `Type`."""
    m = _NAMED_ELEMENT.match(arg)
    if m and not arg[m.end() :].startswith(("(", "=")):
        return parse_type(arg[m.end() :])
    return parse_type(arg)


def decimal_size(precision: int) -> int:
    return 4 if precision <= 9 else 8 if precision <= 18 else 16 if precision <= 38 else 32


def inner(t: NativeType) -> NativeType:
    return parse_type(t.args[-1])


def children(t: NativeType) -> list[NativeType]:
    """Element types, in serialization order, of composite types that share the Array layout."""
    if t.name == "Map":
        return [parse_type(t.args[0]), parse_type(t.args[1])]
    return [_element_type(a) for a in t.args]
