"""The Native format's block framing: chdb's revision-0 blocks re-framed for a client's revision.

chdb always writes revision-0 Native. A client that sends `client_protocol_version=N` decodes at
that revision, so each block gets a BlockInfo header and, from revision 54454 on, a "no custom
serialization" byte per column. Column bytes are copied as they are; the column boundaries are
found by walking the data by type (`native_types`).
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from .errors import AdapterError
from .native_types import (
    FIXED_SIZES,
    NativeType,
    UnsupportedNativeTypeError,
    children,
    decimal_size,
    inner,
    parse_type,
)

REVISION_WITH_BLOCK_INFO = 51903
REVISION_WITH_CUSTOM_SERIALIZATION = 54454
# BlockInfo as the server writes it: field 1 is_overflows=0, field 2 bucket_num=-1, end marker.
_BLOCK_INFO = b"\x01\x00\x02\xff\xff\xff\xff\x00"
_U64 = struct.Struct("<Q")


def _skip_prefix(t: NativeType, buf: memoryview, pos: int) -> int:
    """Skip the per-column state prefix written before the column data."""
    name = t.name
    if name == "LowCardinality":
        return pos + 8  # keys serialization version
    if name in ("Array", "Nullable", "SimpleAggregateFunction"):
        return _skip_prefix(inner(t), buf, pos)
    if name in ("Map", "Tuple", "Nested"):
        for child in children(t):
            pos = _skip_prefix(child, buf, pos)
        return pos
    if name in ("Dynamic", "Variant", "JSON", "Object", "AggregateFunction"):
        raise UnsupportedNativeTypeError(f"{name} columns")
    return pos


def _read_uvarint(buf: memoryview, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _skip_data(t: NativeType, buf: memoryview, pos: int, rows: int) -> int:
    """Skip `rows` values of type `t` in Native bulk layout and return the new position."""
    if rows == 0:
        return pos
    size = _fixed_width(t)
    if size is not None:
        return pos + size * rows
    skip = _VARIABLE_WIDTH.get(t.name)
    if skip is None:
        raise UnsupportedNativeTypeError(f"{t.name} columns")
    return skip(t, buf, pos, rows)


def _fixed_width(t: NativeType) -> int | None:
    """Bytes per value of a fixed-width type; None for the others."""
    size = FIXED_SIZES.get(t.name)
    if size is not None:
        return size
    if t.name == "FixedString":
        return int(t.args[0])
    if t.name == "Decimal":
        return decimal_size(int(t.args[0]))
    return None


def _skip_strings(t: NativeType, buf: memoryview, pos: int, rows: int) -> int:
    for _ in range(rows):
        length, pos = _read_uvarint(buf, pos)
        pos += length
    return pos


def _skip_nullable(t: NativeType, buf: memoryview, pos: int, rows: int) -> int:
    return _skip_data(inner(t), buf, pos + rows, rows)  # a null-map byte per row first


def _skip_wrapped(t: NativeType, buf: memoryview, pos: int, rows: int) -> int:
    return _skip_data(inner(t), buf, pos, rows)


def _skip_offsets_then_values(t: NativeType, buf: memoryview, pos: int, rows: int) -> int:
    """Array, Map, Nested: one cumulative UInt64 offset per row, then the flattened values."""
    total: int = _U64.unpack_from(buf, pos + 8 * (rows - 1))[0]
    pos += 8 * rows
    if t.name == "Array":
        return _skip_data(inner(t), buf, pos, total)
    for child in children(t):
        pos = _skip_data(child, buf, pos, total)
    return pos


def _skip_tuple(t: NativeType, buf: memoryview, pos: int, rows: int) -> int:
    for child in children(t):
        pos = _skip_data(child, buf, pos, rows)
    return pos


def _skip_low_cardinality(t: NativeType, buf: memoryview, pos: int, rows: int) -> int:
    flags: int = _U64.unpack_from(buf, pos)[0]
    pos += 8
    if flags & (1 << 9):  # has additional keys: a dictionary of the non-Nullable type
        keys = _U64.unpack_from(buf, pos)[0]
        dict_type = inner(t)
        if dict_type.name == "Nullable":
            dict_type = inner(dict_type)
        pos = _skip_data(dict_type, buf, pos + 8, keys)
    count: int = _U64.unpack_from(buf, pos)[0]
    return pos + 8 + count * (1 << (flags & 0xFF))


_VARIABLE_WIDTH: dict[str, Callable[[NativeType, memoryview, int, int], int]] = {
    "String": _skip_strings,
    "Nullable": _skip_nullable,
    "SimpleAggregateFunction": _skip_wrapped,
    "Array": _skip_offsets_then_values,
    "Map": _skip_offsets_then_values,
    "Nested": _skip_offsets_then_values,
    "Tuple": _skip_tuple,
    "LowCardinality": _skip_low_cardinality,
}


def native_for_revision(data: bytes, revision: int) -> bytes:
    """Re-frame revision-0 Native blocks (chdb's output) for a client at `revision`."""
    if revision <= 0 or not data:
        return data
    buf = memoryview(data)
    out = bytearray()
    pos, end = 0, len(data)
    custom = revision >= REVISION_WITH_CUSTOM_SERIALIZATION
    while pos < end:
        out += _BLOCK_INFO
        start = pos
        columns, pos = _read_uvarint(buf, pos)
        rows, pos = _read_uvarint(buf, pos)
        out += buf[start:pos]
        for _ in range(columns):
            start = pos
            name_len, pos = _read_uvarint(buf, pos)
            pos += name_len
            type_len, pos = _read_uvarint(buf, pos)
            type_name = bytes(buf[pos : pos + type_len]).decode()
            pos += type_len
            out += buf[start:pos]
            if custom:
                out.append(0)  # no custom (sparse) serialization: chdb wrote plain columns
            start = pos
            if rows:
                column_type = parse_type(type_name)
                pos = _skip_data(column_type, buf, _skip_prefix(column_type, buf, pos), rows)
            if pos > end:
                raise UnsupportedNativeTypeError(
                    f"column type {type_name} ran past the end of data"
                )
            out += buf[start:pos]
    return bytes(out)


def native_for_client(data: bytes, client_revision: int, server_revision: int) -> bytes:
    """`native_for_revision` at the revision both sides speak; a layout not walked is Code 48."""
    revision = min(client_revision, server_revision)
    try:
        return native_for_revision(data, revision)
    except (UnsupportedNativeTypeError, IndexError, struct.error, ValueError) as exc:
        raise AdapterError(
            48,
            "NOT_IMPLEMENTED",
            f"chdb adapter cannot re-frame Native output for client revision {revision}: {exc}",
        ) from exc
