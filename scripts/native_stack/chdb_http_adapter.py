"""ClickHouse HTTP interface served from an in-process chdb session (test support only).

There is no ClickHouse server in CI, so this adapter speaks enough of ClickHouse's HTTP protocol
that real clients run unchanged against the real ClickHouse engine (chdb): clickhouse-connect
(queries, commands, Native inserts, its connect-time probes, HTTP compression) and clickhouse-go v2
over HTTP as used by the collector's `clickhouse` exporter (DDL, DESC TABLE, `INSERT ... FORMAT
Native` with the statement in `query=` and LZ4/ZSTD block-framed or gzip/deflate/zstd/lz4 bodies).
It is never part of the stack.

Run it as its own process (chdb allows one data path per process):

    python -m scripts.native_stack.chdb_http_adapter --data-dir DIR --port PORT [--host 127.0.0.1]
        [--users-file users.json] [--verbose]

users.json: {"name": {"password": "...", "readonly": false}, ...}; without it anyone is accepted.
From Python: `start_adapter(data_dir, users=..., verbose=...) -> AdapterProcess` (free 127.0.0.1
port, waits for `GET /ping` -> `Ok.`), then `.url`, `.port`, `.log_text()`, `.stop()`; or use
`AdapterProcess(...)` as a context manager. `--verbose` logs one line per request to stderr:
method, status, time, user, database, body encoding, client revision, statement (200 chars).

How the protocol is served, and what is not served exactly (and why):
- Native results: chdb always writes revision-0 Native. Clients that send
  `client_protocol_version=N` (clickhouse-go: 54460, clickhouse-connect's probe: 54405) decode at
  that revision, so each result block is re-framed here: a BlockInfo header per block and, from
  revision 54454 on, a "no custom serialization" byte per column. Column bytes are copied as they
  are; the column boundaries are found by walking the data by type. Types whose Native layout is
  not walked here (Dynamic, Variant, JSON/Object, AggregateFunction states) give a clean error
  (Code 48) for such clients; revision-0 clients and text formats get them unchanged. Revisions
  1..54404 would need LowCardinality columns materialized; they are framed like 54405 instead
  (no known client asks for them).
- Response compression: `compress=1` gives ClickHouse block framing (CityHash128 checksum, LZ4 or
  ZSTD per `network_compression_method`); `enable_http_compression=1` with `Accept-Encoding` gives
  zstd/lz4/gzip/deflate. Brotli (`br`) is served only if the `brotli` module is importable (it is
  not in this venv): a `br` request body is then refused with Code 48, and `br` is never chosen
  for a response.
- URL settings other than the transport ones are accepted and ignored: chdb runs with its own
  defaults (e.g. `async_insert=1` from the exporter becomes a synchronous insert, which only makes
  rows visible sooner). A readonly user is not stopped from sending settings (ClickHouse would
  refuse changed settings in readonly=1 mode); it is stopped from anything but reads.
- Users, passwords and `readonly` come from the optional users map; there are no grants/roles.
  A failed login is answered like ClickHouse: HTTP 403 (its exceptionCodeToHTTPStatus maps
  AUTHENTICATION_FAILED to 403, not 401), `X-ClickHouse-Exception-Code: 516`, plain text even
  with `compress=1` (ClickHouse fails before setting up its compressed output). GET implies
  readonly (Code 164), as in ClickHouse.
- clickhouse-go with lz4/zstd sends `compress=1` on queries and inserts but not on Exec (DDL), yet
  decodes every error body as compressed blocks: an Exec error (e.g. bad DDL) surfaces as
  "failed to read response: read next block ...". Real ClickHouse answers the same way.
- `SET` statements change the shared session for later requests (HTTP has no sessions here).
- External tables (multipart files) and HTTP sessions (`session_id`) are not supported; all
  requests share one chdb session whose current database is switched per request (`database=`).
- chdb accepts several statements in one request; ClickHouse refuses them. Not emulated.
- Errors are answered before any body byte is sent (results are fully buffered), so the
  mid-stream `__exception__` block format is never needed.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import email.parser
import email.policy
import gzip
import json
import re
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import lz4.block
import lz4.frame

try:  # Python 3.14+ ships zstd; 3.11 has it from the backports.zstd wheel.
    from compression import zstd as _zstd  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the interpreter
    try:
        from backports import zstd as _zstd  # type: ignore[import-not-found,no-redef]
    except ImportError:
        _zstd = None  # type: ignore[assignment]

try:
    import brotli as _brotli  # type: ignore[import-not-found]
except ImportError:
    _brotli = None

# ---------------------------------------------------------------------------------------------
# CityHash128, ClickHouse's variant (CityHash v1.0.2): checksum of every compressed block.
# Ported from github.com/go-faster/city (ch_128.go), which clickhouse-go verifies blocks with.
# ---------------------------------------------------------------------------------------------
_M64 = (1 << 64) - 1
_K0 = 0xC3A5C85C97CB3127
_K1 = 0xB492B66FBE98F273
_K2 = 0x9AE16A3B2F90404F
_K3 = 0xC949D7C7509E6557
_KMUL = 0x9DDFEA08EB382D69
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")


def _rot(v: int, s: int) -> int:
    return v if s == 0 else ((v >> s) | (v << (64 - s))) & _M64


def _h16(u: int, v: int) -> int:
    a = ((u ^ v) * _KMUL) & _M64
    a ^= a >> 47
    b = ((v ^ a) * _KMUL) & _M64
    b ^= b >> 47
    return (b * _KMUL) & _M64


def _smix(v: int) -> int:
    return v ^ (v >> 47)


def _ch0to16(s: bytes, n: int) -> int:
    if n > 8:
        a = _U64.unpack_from(s, 0)[0]
        b = _U64.unpack_from(s, n - 8)[0]
        return _h16(a, _rot((b + n) & _M64, n)) ^ b
    if n >= 4:
        a = _U32.unpack_from(s, 0)[0]
        return _h16((n + (a << 3)) & _M64, _U32.unpack_from(s, n - 4)[0])
    if n > 0:
        y = (s[0] + (s[n >> 1] << 8)) & 0xFFFFFFFF
        z = (n + (s[n - 1] << 2)) & 0xFFFFFFFF
        return (_smix(((y * _K2) ^ (z * _K3)) & _M64) * _K2) & _M64
    return _K2


def _ch_murmur(s: bytes, lo: int, hi: int) -> tuple[int, int]:
    n = len(s)
    a, b, c, d = lo, hi, 0, 0
    if n <= 16:
        a = (_smix((a * _K1) & _M64) * _K1) & _M64
        c = (b * _K1 + _ch0to16(s, n)) & _M64
        d = _smix((a + (_U64.unpack_from(s, 0)[0] if n >= 8 else c)) & _M64)
    else:
        c = _h16((_U64.unpack_from(s, n - 8)[0] + _K1) & _M64, a)
        d = _h16((b + n) & _M64, (c + _U64.unpack_from(s, n - 16)[0]) & _M64)
        a = (a + d) & _M64
        off, left = 0, n - 16
        while True:  # do-while over 16-byte chunks, as in the reference
            a ^= (_smix((_U64.unpack_from(s, off)[0] * _K1) & _M64) * _K1) & _M64
            a = (a * _K1) & _M64
            b ^= a
            c ^= (_smix((_U64.unpack_from(s, off + 8)[0] * _K1) & _M64) * _K1) & _M64
            c = (c * _K1) & _M64
            d ^= c
            off += 16
            left -= 16
            if left <= 0:
                break
    a = _h16(a, c)
    b = _h16(d, b)
    return a ^ b, _h16(b, a)


def _weak(s: bytes, off: int, a: int, b: int) -> tuple[int, int]:
    w, x, y, z = struct.unpack_from("<4Q", s, off)
    a = (a + w) & _M64
    b = _rot((b + a + z) & _M64, 21)
    c = a
    a = (a + x + y) & _M64
    b = (b + _rot(a, 44)) & _M64
    return (a + z) & _M64, (b + c) & _M64


def _ch128_seed(s: bytes, lo: int, hi: int) -> tuple[int, int]:
    n = len(s)
    if n < 128:
        return _ch_murmur(s, lo, hi)
    x, y, z = lo, hi, (n * _K1) & _M64
    v0 = (_rot(y ^ _K1, 49) * _K1 + _U64.unpack_from(s, 0)[0]) & _M64
    v1 = (_rot(v0, 42) * _K1 + _U64.unpack_from(s, 8)[0]) & _M64
    w0 = (_rot((y + z) & _M64, 35) * _K1 + x) & _M64
    w1 = (_rot((x + _U64.unpack_from(s, 88)[0]) & _M64, 53) * _K1) & _M64
    off = 0
    while n - off >= 128:
        for o in (off, off + 64):
            x = (_rot((x + y + v0 + _U64.unpack_from(s, o + 16)[0]) & _M64, 37) * _K1) & _M64
            y = (_rot((y + v1 + _U64.unpack_from(s, o + 48)[0]) & _M64, 42) * _K1) & _M64
            x ^= w1
            y ^= v0
            z = _rot(z ^ w0, 33)
            v0, v1 = _weak(s, o, (v1 * _K1) & _M64, (x + w0) & _M64)
            w0, w1 = _weak(s, o + 32, (z + w1) & _M64, y)
            z, x = x, z
        off += 128
    y = (y + _rot(w0, 37) * _K0 + z) & _M64
    x = (x + _rot((v0 + z) & _M64, 49) * _K0) & _M64
    i = 0
    while i < n - off:  # up to four 32-byte chunks from the end
        i += 32
        y = (_rot((y - x) & _M64, 42) * _K0 + v1) & _M64
        w0 = (w0 + _U64.unpack_from(s, n - i + 16)[0]) & _M64
        x = (_rot(x, 49) * _K0 + w0) & _M64
        w0 = (w0 + v0) & _M64
        v0, v1 = _weak(s, n - i, v0, v1)
    x = _h16(x, v0)
    y = _h16(y, w0)
    return (_h16((x + v1) & _M64, w1) + y) & _M64, _h16((x + w1) & _M64, (y + v1) & _M64)


def cityhash128(data: bytes) -> tuple[int, int]:
    """ClickHouse CityHash128 of `data` as (low, high) 64-bit halves."""
    s = bytes(data)
    n = len(s)
    if n >= 16:
        return _ch128_seed(s[16:], _U64.unpack_from(s, 0)[0] ^ _K3, _U64.unpack_from(s, 8)[0])
    if n >= 8:
        return _ch128_seed(
            b"", _U64.unpack_from(s, 0)[0] ^ ((n * _K0) & _M64), _U64.unpack_from(s, n - 8)[0] ^ _K1
        )
    return _ch128_seed(s, _K0, _K1)


# ---------------------------------------------------------------------------------------------
# ClickHouse compressed-block framing (`compress=1` / `decompress=1`).
# ---------------------------------------------------------------------------------------------
_METHOD_NONE, _METHOD_LZ4, _METHOD_ZSTD = 0x02, 0x82, 0x90
_FRAME_HEADER = 9  # method byte + compressed size + uncompressed size
_MAX_FRAME_DATA = 1 << 20  # ClickHouse and ch-go cap one block at about 1 MiB of data


class AdapterError(Exception):
    """An error answered the way ClickHouse would: code, symbolic name, message."""

    def __init__(self, code: int, name: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.name = name
        self.message = message


def decode_ch_blocks(data: bytes) -> bytes:
    """Undo ClickHouse block framing, checking every block's checksum like the server does."""
    out = bytearray()
    pos, n = 0, len(data)
    while pos < n:
        if n - pos < 16 + _FRAME_HEADER:
            raise AdapterError(
                271, "CANNOT_DECOMPRESS", "Cannot decompress: truncated block header"
            )
        method = data[pos + 16]
        size_compressed, size_plain = struct.unpack_from("<II", data, pos + 17)
        end = pos + 16 + size_compressed
        if size_compressed < _FRAME_HEADER or end > n:
            raise AdapterError(271, "CANNOT_DECOMPRESS", "Cannot decompress: truncated block")
        frame = data[pos + 16 : end]
        lo, hi = cityhash128(frame)
        if struct.pack("<QQ", lo, hi) != data[pos : pos + 16]:
            raise AdapterError(
                40,
                "CHECKSUM_DOESNT_MATCH",
                "Checksum doesn't match: corrupted data in a compressed block",
            )
        payload = frame[_FRAME_HEADER:]
        if method == _METHOD_LZ4:
            out += lz4.block.decompress(payload, uncompressed_size=size_plain)
        elif method == _METHOD_ZSTD:
            if _zstd is None:
                raise AdapterError(48, "NOT_IMPLEMENTED", "ZSTD is not available in the adapter")
            out += _zstd.decompress(payload)
        elif method == _METHOD_NONE:
            out += payload
        else:
            raise AdapterError(
                89, "UNKNOWN_COMPRESSION_METHOD", f"Unknown compression method: 0x{method:02x}"
            )
        pos = end
    return bytes(out)


def encode_ch_blocks(data: bytes, method: str = "lz4") -> bytes:
    """Frame `data` in ClickHouse compressed blocks (`compress=1` responses)."""
    out = bytearray()
    for start in range(0, len(data), _MAX_FRAME_DATA):
        chunk = data[start : start + _MAX_FRAME_DATA]
        if method == "zstd" and _zstd is not None:
            code, payload = _METHOD_ZSTD, _zstd.compress(chunk)
        elif method == "none":
            code, payload = _METHOD_NONE, chunk
        else:
            code, payload = _METHOD_LZ4, lz4.block.compress(chunk, store_size=False)
        frame = struct.pack("<BII", code, len(payload) + _FRAME_HEADER, len(chunk)) + payload
        lo, hi = cityhash128(frame)
        out += struct.pack("<QQ", lo, hi) + frame
    return bytes(out)


def decode_content_encoding(data: bytes, encoding: str) -> bytes:
    """Undo an HTTP Content-Encoding the way ClickHouse's HTTP handler accepts them."""
    enc = encoding.strip().lower()
    try:
        if enc in ("", "identity"):
            return data
        if enc in ("gzip", "x-gzip"):
            return gzip.decompress(data)
        if enc == "deflate":
            return zlib.decompress(data)
        if enc == "zstd" and _zstd is not None:
            return _zstd.decompress(data)
        if enc == "lz4":
            return lz4.frame.decompress(data)
        if enc == "br" and _brotli is not None:
            return _brotli.decompress(data)
    except AdapterError:
        raise
    except Exception as exc:
        raise AdapterError(
            271, "CANNOT_DECOMPRESS", f"Cannot decompress {enc} request body: {exc}"
        ) from exc
    raise AdapterError(
        48, "NOT_IMPLEMENTED", f"Content-Encoding '{encoding}' is not supported by the chdb adapter"
    )


def _http_compress(data: bytes, accept: str) -> tuple[bytes, str | None]:
    """Compress a response per Accept-Encoding, in ClickHouse's order of preference."""
    methods = accept.lower()
    if "zstd" in methods and _zstd is not None:
        return _zstd.compress(data), "zstd"
    if "br" in methods and _brotli is not None:
        return _brotli.compress(data), "br"
    if "lz4" in methods:
        return lz4.frame.compress(data), "lz4"
    if "gzip" in methods:
        return gzip.compress(data, compresslevel=3), "gzip"
    if "deflate" in methods:
        return zlib.compress(data, 3), "deflate"
    return data, None


# ---------------------------------------------------------------------------------------------
# Native format: re-frame chdb's revision-0 blocks for a client's protocol revision.
# ---------------------------------------------------------------------------------------------
REVISION_WITH_BLOCK_INFO = 51903
REVISION_WITH_CUSTOM_SERIALIZATION = 54454
# BlockInfo as the server writes it: field 1 is_overflows=0, field 2 bucket_num=-1, end marker.
_BLOCK_INFO = b"\x01\x00\x02\xff\xff\xff\xff\x00"

_FIXED_SIZES: dict[str, int] = {
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
class _Type:
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


def _parse_type(text: str) -> _Type:
    text = text.strip()
    paren = text.find("(")
    if paren < 0:
        alias = _GEO_ALIASES.get(text)
        return _parse_type(alias) if alias else _Type(text)
    if not text.endswith(")"):
        raise UnsupportedNativeTypeError(f"cannot parse type {text!r}")
    return _Type(text[:paren].strip(), tuple(_split_args(text[paren + 1 : -1])))


def _element_type(arg: str) -> _Type:
    """A Tuple/Nested element: `name Type` or a bare `Type`."""
    m = _NAMED_ELEMENT.match(arg)
    if m and not arg[m.end() :].startswith(("(", "=")):
        return _parse_type(arg[m.end() :])
    return _parse_type(arg)


def _decimal_size(precision: int) -> int:
    return 4 if precision <= 9 else 8 if precision <= 18 else 16 if precision <= 38 else 32


def _inner(t: _Type) -> _Type:
    return _parse_type(t.args[-1])


def _children(t: _Type) -> list[_Type]:
    """Element types, in serialization order, of composite types that share the Array layout."""
    if t.name == "Map":
        return [_parse_type(t.args[0]), _parse_type(t.args[1])]
    return [_element_type(a) for a in t.args]


def _skip_prefix(t: _Type, buf: memoryview, pos: int) -> int:
    """Skip the per-column state prefix written before the column data."""
    name = t.name
    if name == "LowCardinality":
        return pos + 8  # keys serialization version
    if name in ("Array", "Nullable", "SimpleAggregateFunction"):
        return _skip_prefix(_inner(t), buf, pos)
    if name in ("Map", "Tuple", "Nested"):
        for child in _children(t):
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


def _skip_data(t: _Type, buf: memoryview, pos: int, rows: int) -> int:
    """Skip `rows` values of type `t` in Native bulk layout and return the new position."""
    if rows == 0:
        return pos
    name = t.name
    size = _FIXED_SIZES.get(name)
    if size is not None:
        return pos + size * rows
    if name == "String":
        for _ in range(rows):
            length, pos = _read_uvarint(buf, pos)
            pos += length
        return pos
    if name == "FixedString":
        return pos + int(t.args[0]) * rows
    if name == "Decimal":
        return pos + _decimal_size(int(t.args[0])) * rows
    if name in ("Nullable",):
        return _skip_data(_inner(t), buf, pos + rows, rows)
    if name == "SimpleAggregateFunction":
        return _skip_data(_inner(t), buf, pos, rows)
    if name in ("Array", "Map", "Nested"):
        total = _U64.unpack_from(buf, pos + 8 * (rows - 1))[0]
        pos += 8 * rows
        if name == "Array":
            return _skip_data(_inner(t), buf, pos, total)
        for child in _children(t):
            pos = _skip_data(child, buf, pos, total)
        return pos
    if name == "Tuple":
        for child in _children(t):
            pos = _skip_data(child, buf, pos, rows)
        return pos
    if name == "LowCardinality":
        flags = _U64.unpack_from(buf, pos)[0]
        pos += 8
        if flags & (1 << 9):  # has additional keys: a dictionary of the non-Nullable type
            keys = _U64.unpack_from(buf, pos)[0]
            dict_type = _inner(t)
            if dict_type.name == "Nullable":
                dict_type = _inner(dict_type)
            pos = _skip_data(dict_type, buf, pos + 8, keys)
        count = _U64.unpack_from(buf, pos)[0]
        return pos + 8 + count * (1 << (flags & 0xFF))
    raise UnsupportedNativeTypeError(f"{name} columns")


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
                column_type = _parse_type(type_name)
                pos = _skip_data(column_type, buf, _skip_prefix(column_type, buf, pos), rows)
            if pos > end:
                raise UnsupportedNativeTypeError(
                    f"column type {type_name} ran past the end of data"
                )
            out += buf[start:pos]
    return bytes(out)


# ---------------------------------------------------------------------------------------------
# Just enough SQL lexing to find statement kinds, FORMAT clauses and where INSERT data starts.
# ---------------------------------------------------------------------------------------------
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _words(sql: str) -> Iterator[tuple[str, int, int, int]]:
    """Yield (UPPER word, start, end, paren depth), skipping strings, quoted names, comments."""
    i, n, depth = 0, len(sql), 0
    while i < n:
        ch = sql[i]
        if ch in "'\"`":
            i += 1
            while i < n and sql[i] != ch:
                i += 2 if sql[i] == "\\" else 1
            i += 1
        elif sql.startswith("--", i) or ch == "#":
            nl = sql.find("\n", i)
            i = n if nl < 0 else nl + 1
        elif sql.startswith("/*", i):
            close = sql.find("*/", i + 2)
            i = n if close < 0 else close + 2
        elif ch == "(":
            depth += 1
            i += 1
        elif ch == ")":
            depth -= 1
            i += 1
        elif ch.isalpha() or ch == "_":
            m = _WORD.match(sql, i)
            assert m is not None
            yield m.group().upper(), i, m.end(), depth
            i = m.end()
        elif ch.isdigit():
            while i < n and (sql[i].isalnum() or sql[i] in "._"):
                i += 1
        else:
            i += 1


def first_keyword(sql: str) -> str:
    for word, _s, _e, _d in _words(sql):
        return word
    return ""


_READ_KEYWORDS = {"SELECT", "WITH", "SHOW", "DESC", "DESCRIBE", "EXISTS", "EXPLAIN", "USE", "CHECK"}
_RESULT_KEYWORDS = {"SELECT", "WITH", "SHOW", "DESC", "DESCRIBE", "EXISTS", "EXPLAIN", "CHECK"}


def trailing_format(sql: str) -> str | None:
    """The output format named by a top-level `FORMAT name` clause, if any."""
    found, prev = None, ""
    for word, start, end, depth in _words(sql):
        if depth == 0 and prev == "FORMAT":
            found = sql[start:end]
        prev = word if depth == 0 else ""
    return found


@dataclass
class InsertSplit:
    statement: str  # the INSERT without its FORMAT clause, as chdb's send_insert wants it
    fmt: str
    data_start: int  # byte offset of the inline data in the request text


def split_insert(head: str) -> InsertSplit | None:
    """Find `INSERT ... FORMAT name` and where its data begins (ClickHouse's parser rules)."""
    words = _words(head)
    first = next(words, None)
    if first is None or first[0] != "INSERT":
        return None
    prev: tuple[str, int, int, int] | None = None
    for word in words:
        if word[3] == 0 and word[0] in ("VALUES", "SELECT", "WITH"):
            return None
        if prev is not None and prev[0] == "FORMAT" and prev[3] == 0 and word[3] == 0:
            # Data starts after the format name: spaces/tabs, then at most one CR LF/LF.
            pos = word[2]
            while pos < len(head) and head[pos] in " \t\f":
                pos += 1
            if head.startswith("\r", pos):
                pos += 1
            if head.startswith("\n", pos):
                pos += 1
            return InsertSplit(head[: prev[1]].rstrip(), head[word[1] : word[2]], pos)
        prev = word
    return None


# ---------------------------------------------------------------------------------------------
# The adapter: one chdb session, ClickHouse HTTP semantics.
# ---------------------------------------------------------------------------------------------
_HTTP_STATUS_BY_NAME: dict[str, int] = {
    "REQUIRED_PASSWORD": 401,
    **dict.fromkeys(
        (
            "UNKNOWN_USER",
            "WRONG_PASSWORD",
            "AUTHENTICATION_FAILED",
            "SET_NON_GRANTED_ROLE",
            "ACCESS_DENIED",
        ),
        403,
    ),
    **dict.fromkeys(
        (
            "BAD_ARGUMENTS",
            "CANNOT_COMPILE_REGEXP",
            "CANNOT_PARSE_TEXT",
            "CANNOT_PARSE_ESCAPE_SEQUENCE",
            "CANNOT_PARSE_QUOTED_STRING",
            "CANNOT_PARSE_DATE",
            "CANNOT_PARSE_DATETIME",
            "CANNOT_PARSE_NUMBER",
            "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING",
            "CANNOT_PARSE_IPV4",
            "CANNOT_PARSE_IPV6",
            "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
            "CANNOT_PARSE_UUID",
            "DUPLICATE_COLUMN",
            "ILLEGAL_COLUMN",
            "UNKNOWN_ELEMENT_IN_AST",
            "UNKNOWN_TYPE_OF_AST_NODE",
            "THERE_IS_NO_COLUMN",
            "TOO_DEEP_AST",
            "TOO_BIG_AST",
            "UNEXPECTED_AST_STRUCTURE",
            "SYNTAX_ERROR",
            "INCORRECT_DATA",
            "TYPE_MISMATCH",
            "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
        ),
        400,
    ),
    **dict.fromkeys(
        (
            "UNKNOWN_TABLE",
            "UNKNOWN_FUNCTION",
            "UNKNOWN_IDENTIFIER",
            "UNKNOWN_TYPE",
            "UNKNOWN_STORAGE",
            "UNKNOWN_DATABASE",
            "UNKNOWN_SETTING",
            "UNKNOWN_DIRECTION_OF_SORTING",
            "UNKNOWN_AGGREGATE_FUNCTION",
            "UNKNOWN_FORMAT",
            "UNKNOWN_DATABASE_ENGINE",
            "UNKNOWN_TYPE_OF_QUERY",
            "UNKNOWN_ROLE",
        ),
        404,
    ),
    "QUERY_IS_TOO_LARGE": 413,
    "NOT_IMPLEMENTED": 501,
    "SOCKET_TIMEOUT": 503,
    "CANNOT_OPEN_FILE": 503,
    "CANNOT_SCHEDULE_TASK": 503,
    "HTTP_LENGTH_REQUIRED": 411,
    "TIMEOUT_EXCEEDED": 408,
    "UNSUPPORTED_MEDIA_TYPE": 415,
}
_CHDB_ERROR = re.compile(r"Code: (\d+)\. (?:DB::Exception: )?(.*)", re.S)
_ERROR_NAME = re.compile(r"\(([A-Z][A-Z0-9_]+)\)\s*$")


@dataclass
class UserSpec:
    password: str = ""
    readonly: bool = False


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    statement: str = ""  # decoded statement, for the request log
    note: str = ""  # who, where and which body encoding, for the request log


def load_users(raw: Mapping[str, Any]) -> dict[str, UserSpec]:
    """{name: {password, readonly}} (a bare string value is taken as the password)."""
    users: dict[str, UserSpec] = {}
    for name, spec in raw.items():
        if isinstance(spec, str):
            users[name] = UserSpec(password=spec)
        else:
            users[name] = UserSpec(
                password=str(spec.get("password", "")), readonly=bool(spec.get("readonly", False))
            )
    return users


def _content_type(fmt: str) -> str:
    f = fmt.lower()
    if f.startswith("json") or f.startswith("ndjson"):
        return "application/json; charset=UTF-8"
    if f.startswith(("tabseparated", "tsv")):
        return "text/tab-separated-values; charset=UTF-8"
    if f.startswith("csv"):
        return "text/csv; charset=UTF-8"
    if f.startswith(
        (
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
    ):
        return "application/octet-stream"
    return "text/plain; charset=UTF-8"


class ChdbHttpAdapter:
    """ClickHouse HTTP semantics over one persistent chdb session; HTTP-server independent."""

    def __init__(
        self,
        data_dir: str | Path,
        users: Mapping[str, UserSpec] | None = None,
        verbose: bool = False,
    ) -> None:
        import chdb.session  # imported here: importing the module must not start an engine

        Path(data_dir).mkdir(parents=True, exist_ok=True)
        self._session = chdb.session.Session(str(data_dir))
        self._lock = threading.Lock()
        self._current_db: str | None = None
        self.users = dict(users) if users is not None else None
        self.verbose = verbose
        row = (
            self._session.query(
                "SELECT version(), revision(), timezone(), displayName()", "TabSeparated"
            )
            .bytes()
            .decode()
            .rstrip("\n")
            .split("\t")
        )
        self.version, self.revision, self.timezone, self.display_name = (
            row[0],
            int(row[1]),
            row[2],
            row[3],
        )

    def close(self) -> None:
        with self._lock:
            self._session.close()

    def run(self, statement: str) -> None:
        """Run one statement as the engine's own superuser (volume initialisation)."""
        with self._lock:
            self._current_db = None  # the statement may switch databases
            try:
                self._session.query(statement, "TabSeparated")
            except Exception as exc:
                raise self._error_from_text(str(exc)) from exc

    # -- errors ------------------------------------------------------------------------------
    def _error_from_text(self, text: str) -> AdapterError:
        m = _CHDB_ERROR.search(text)
        if not m:
            return AdapterError(1001, "STD_EXCEPTION", text.strip() or "unknown chdb error")
        message = m.group(2).strip()
        name_match = _ERROR_NAME.search(message)
        name = name_match.group(1) if name_match else ""
        return AdapterError(int(m.group(1)), name, message)

    def error_response(self, err: AdapterError, user: str | None = None) -> Response:
        message = err.message
        if err.name and not message.endswith(f"({err.name})"):
            message = f"{message} ({err.name})"
        body = f"Code: {err.code}. DB::Exception: {message} (version {self.version})\n".encode()
        status = _HTTP_STATUS_BY_NAME.get(err.name, 500)
        return Response(
            status,
            body,
            {
                "Content-Type": "text/plain; charset=UTF-8",
                "X-ClickHouse-Exception-Code": str(err.code),
            },
        )

    # -- auth --------------------------------------------------------------------------------
    def authenticate(
        self, headers: Mapping[str, str], params: Mapping[str, str]
    ) -> tuple[str, UserSpec]:
        user, password = "default", ""
        auth = headers.get("authorization", "")
        if auth.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(auth[6:].strip()).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise AdapterError(194, "REQUIRED_PASSWORD", "Invalid Basic authorization") from exc
        elif "x-clickhouse-user" in headers:
            user, password = headers["x-clickhouse-user"], headers.get("x-clickhouse-key", "")
        elif "user" in params:
            user, password = params["user"], params.get("password", "")
        if self.users is None:
            return user, UserSpec(password=password)
        spec = self.users.get(user)
        if spec is None or spec.password != password:
            raise AdapterError(
                516,
                "AUTHENTICATION_FAILED",
                f"{user}: Authentication failed: password is incorrect, or there is "
                "no user with such name.",
            )
        return user, spec

    # -- request handling --------------------------------------------------------------------
    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Response:
        """Answer one HTTP request (`headers` keys lower-case)."""
        url = urlsplit(target)
        params: dict[str, str] = {}
        for key, value in parse_qsl(url.query, keep_blank_values=True):
            params[key] = value
        path = url.path or "/"
        if path in ("/ping", "/replicas_status") or (
            path == "/" and method in ("GET", "HEAD") and "query" not in params and not body
        ):
            return Response(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
        if path != "/":
            text = (
                f"There is no handle {path}\n\nUse / or /ping for health checks.\n"
                "Or /replicas_status for more sophisticated health checks.\n\n"
                "Send queries from your program with POST method or GET /?query=...\n"
            )
            return Response(404, text.encode(), {"Content-Type": "text/html; charset=UTF-8"})
        try:
            user, spec = self.authenticate(headers, params)
        except AdapterError as err:
            return self.error_response(err)  # before output setup: never block-compressed
        compress = params.get("compress") == "1"
        log: dict[str, str] = {}
        encodings = [headers.get("content-encoding", "")]
        encodings += ["ch-blocks"] if params.get("decompress") == "1" else []
        note = (
            f"user={user} db={params.get('database') or headers.get('x-clickhouse-database') or ''}"
            f" enc={'+'.join(e for e in encodings if e) or '-'}"
            f" rev={params.get('client_protocol_version', '0')}"
        )
        try:
            response = self._execute(method, params, headers, body, user, spec, log)
            response.statement, response.note = log.get("statement", ""), note
            return response
        except AdapterError as err:
            response = self.error_response(err, user)
        except Exception as err:  # noqa: BLE001 - an adapter bug must still be an answer
            response = self.error_response(AdapterError(1001, "STD_EXCEPTION", f"adapter: {err!r}"))
        response.statement, response.note = log.get("statement", ""), note
        if compress:
            response.body = encode_ch_blocks(
                response.body, params.get("network_compression_method", "lz4").lower()
            )
        return response

    def _execute(
        self,
        method: str,
        params: dict[str, str],
        headers: Mapping[str, str],
        body: bytes,
        user: str,
        spec: UserSpec,
        log: dict[str, str],
    ) -> Response:
        started = time.monotonic()
        encoding = headers.get("content-encoding", "")
        if encoding and body:
            body = decode_content_encoding(body, encoding)
        if params.get("decompress") == "1" and body:
            body = decode_ch_blocks(body)
        query = params.get("query")
        query_params = {k[6:]: v for k, v in params.items() if k.startswith("param_")}
        content_type = headers.get("content-type", "")
        if content_type.lower().startswith("multipart/form-data"):
            query, body = self._multipart(content_type, body, query, query_params)

        # ClickHouse concatenates the `query` parameter and the body, newline-separated.
        if query is not None and body:
            text = query.encode() + b"\n" + body
        elif query is not None:
            text = query.encode()
        else:
            text = body
        if not text.strip():
            raise AdapterError(62, "SYNTAX_ERROR", "Empty query")

        head = text[:65536].decode("latin-1")  # byte offsets stay byte offsets
        insert = split_insert(head)
        statement = (
            insert.statement.encode("latin-1").decode("utf-8", "replace")
            if insert
            else text.decode("utf-8", "replace")
        )
        log["statement"] = f"{statement} FORMAT {insert.fmt} <data>" if insert else statement
        keyword = first_keyword(statement)
        get_readonly = method in ("GET", "HEAD")
        readonly = spec.readonly or params.get("readonly", "0") not in ("0", "")
        if (
            (readonly or get_readonly)
            and keyword not in _READ_KEYWORDS
            and not (get_readonly and not readonly and keyword == "SET")
        ):
            message = f"{user}: Cannot execute query in readonly mode"
            if get_readonly and not readonly:
                message += (
                    ". For queries over HTTP, method GET implies readonly. "
                    "You should use method POST for modifying queries"
                )
            raise AdapterError(164, "READONLY", message)

        database = params.get("database") or headers.get("x-clickhouse-database") or "default"
        query_id = params.get("query_id") or str(uuid.uuid4())
        out_format = "TabSeparated"
        produces_result = keyword in _RESULT_KEYWORDS
        with self._lock:
            self._use(database)
            try:
                if insert is not None:
                    result_body, stats = self._insert(
                        statement, insert.fmt, text[insert.data_start :]
                    )
                else:
                    default_format = (
                        params.get("default_format")
                        or headers.get("x-clickhouse-format")
                        or "TabSeparated"
                    )
                    out_format = trailing_format(statement) or default_format
                    result = self._session.query(
                        statement, default_format, params=query_params or None
                    )
                    result_body = result.bytes() or b""
                    stats = {
                        "read_rows": result.rows_read(),
                        "read_bytes": result.bytes_read(),
                        "written_rows": result.rows_written(),
                        "written_bytes": result.bytes_written(),
                        "result_rows": result.rows_read() if produces_result else 0,
                        "result_bytes": len(result_body),
                    }
            except AdapterError:
                raise
            except Exception as exc:
                raise self._error_from_text(str(exc)) from exc
            finally:
                if keyword in ("USE", "DROP", "DETACH", "RENAME", "EXCHANGE"):
                    self._current_db = None  # the session's database may have moved: re-select

        if out_format.lower() == "native" and result_body:
            revision = min(int(params.get("client_protocol_version") or 0), self.revision)
            try:
                result_body = native_for_revision(result_body, revision)
            except (UnsupportedNativeTypeError, IndexError, struct.error, ValueError) as exc:
                raise AdapterError(
                    48,
                    "NOT_IMPLEMENTED",
                    f"chdb adapter cannot re-frame Native output for client revision "
                    f"{revision}: {exc}",
                ) from exc

        response_headers = {
            "Content-Type": _content_type(out_format)
            if produces_result
            else "text/plain; charset=UTF-8",
            "X-ClickHouse-Server-Display-Name": self.display_name,
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Timezone": self.timezone,
            "X-ClickHouse-Summary": json.dumps(
                {
                    **{k: str(v) for k, v in stats.items()},
                    "total_rows_to_read": "0",
                    "elapsed_ns": str(int((time.monotonic() - started) * 1e9)),
                },
                separators=(",", ":"),
            ),
        }
        if produces_result:
            response_headers["X-ClickHouse-Format"] = out_format
        if params.get("compress") == "1" and result_body:
            result_body = encode_ch_blocks(
                result_body, params.get("network_compression_method", "lz4").lower()
            )
        if params.get("enable_http_compression") == "1" and result_body:
            result_body, applied = _http_compress(result_body, headers.get("accept-encoding", ""))
            if applied:
                response_headers["Content-Encoding"] = applied
        return Response(200, result_body, response_headers)

    def _use(self, database: str) -> None:
        if database == self._current_db:
            return
        quoted = "`" + database.replace("\\", "\\\\").replace("`", "\\`") + "`"
        try:
            self._session.query(f"USE {quoted}", "TabSeparated")
        except Exception as exc:
            self._current_db = None
            raise self._error_from_text(str(exc)) from exc
        self._current_db = database

    def _insert(self, statement: str, fmt: str, data: bytes) -> tuple[bytes, dict[str, int]]:
        inserter = self._session.send_insert(statement, fmt)
        try:
            if data:
                inserter.append(data)
            result = inserter.finish()
        except Exception:
            with contextlib.suppress(Exception):  # the insert error is the one to report
                inserter.cancel()
            raise
        written = int(getattr(result, "rows_written", 0) or 0)
        written_bytes = int(getattr(result, "bytes_written", 0) or 0)
        return b"", {
            "read_rows": 0,
            "read_bytes": 0,
            "written_rows": written,
            "written_bytes": written_bytes,
            "result_rows": 0,
            "result_bytes": 0,
        }

    @staticmethod
    def _multipart(
        content_type: str, body: bytes, query: str | None, query_params: dict[str, str]
    ) -> tuple[str | None, bytes]:
        """Form-encoded requests: `query` and `param_*` fields (external tables unsupported)."""
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + body
        )
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True) or b""
            if part.get_filename() is not None:
                raise AdapterError(
                    48, "NOT_IMPLEMENTED", "External tables are not supported by the chdb adapter"
                )
            if name == "query":
                query = payload.decode()
            elif isinstance(name, str) and name.startswith("param_"):
                query_params[name[6:]] = payload.decode()
        return query, b""


# ---------------------------------------------------------------------------------------------
# HTTP server.
# ---------------------------------------------------------------------------------------------
class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], adapter: ChdbHttpAdapter | None) -> None:
        super().__init__(address, _Handler)
        self.adapter: ChdbHttpAdapter = adapter  # type: ignore[assignment] # set before serving

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up mid-answer is routine; one line instead of a traceback.
        exc = sys.exc_info()[1]
        sys.stderr.write(f"[chdb-adapter] connection from {client_address}: {exc!r}\n")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like ClickHouse
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in one write, and Nagle must not hold back small answers.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # the adapter logs statements itself (--verbose)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_POST(self) -> None:
        self._serve("POST")

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = bytearray()
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return bytes(chunks)
                chunks += self.rfile.read(size)
                self.rfile.readline(3)  # CRLF after the chunk
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _serve(self, method: str) -> None:
        adapter = self.server.adapter
        started = time.monotonic()
        try:
            body = self._read_body()
        except (ValueError, OSError) as exc:
            self.close_connection = True
            response = adapter.error_response(
                AdapterError(1001, "STD_EXCEPTION", f"bad request body: {exc}")
            )
            body = b""
        else:
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                response = adapter.handle(method, self.path, headers, body)
            except Exception as exc:  # noqa: BLE001 - one request must not take the server down
                response = adapter.error_response(
                    AdapterError(1001, "STD_EXCEPTION", f"adapter: {exc!r}")
                )
        if adapter.verbose:
            statement = " ".join(response.statement.split())[:200]
            sys.stderr.write(
                f"[chdb-adapter] {method} {response.status} "
                f"{(time.monotonic() - started) * 1000:.1f}ms {response.note} {statement!r}\n"
            )
            sys.stderr.flush()
        self._send(method, response)

    def _send(self, method: str, response: Response) -> None:
        reason = self.responses.get(response.status, ("",))[0]
        lines = [
            f"HTTP/1.1 {response.status} {reason}",
            f"Date: {self.date_time_string()}",
            "Connection: Keep-Alive" if not self.close_connection else "Connection: close",
            "Keep-Alive: timeout=10",
            f"Content-Length: {len(response.body)}",
        ]
        lines += [f"{k}: {v}" for k, v in response.headers.items()]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        self.wfile.write(head if method == "HEAD" else head + response.body)


# ---------------------------------------------------------------------------------------------
# Process management for test harnesses.
# ---------------------------------------------------------------------------------------------
REPO_ROOT = Path(__file__).resolve().parents[2]


class AdapterProcess:
    """The adapter as a child process on 127.0.0.1 (one chdb data path per process)."""

    def __init__(
        self,
        data_dir: str | Path,
        *,
        port: int | None = None,
        users: Mapping[str, Mapping[str, Any] | str] | None = None,
        verbose: bool = False,
        log_path: str | Path | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        from scripts.native_stack.procs import free_port

        self.data_dir = Path(data_dir)
        self.host = host
        self._fixed_port = port is not None
        self.port = port or free_port(host)
        self.users = users
        self.verbose = verbose
        self.log_path = (
            Path(log_path) if log_path else self.data_dir.parent / f"chdb-adapter-{self.port}.log"
        )
        self._proc: Any = None
        self._users_file: Path | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> AdapterProcess:
        """Start the subprocess and wait until `GET /ping` answers `Ok.`."""
        from scripts.native_stack.procs import ManagedProcess, free_port, wait_for_http

        if self.users is not None and self._users_file is None:
            handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - removed in stop()
                "w", suffix=".json", prefix="chdb-adapter-users-", delete=False
            )
            with handle:
                json.dump(dict(self.users), handle)
            self._users_file = Path(handle.name)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # A port picked free can be taken before the child binds it: then try another one.
        attempts = 1 if self._fixed_port else 3
        for attempt in range(attempts):
            argv = [
                sys.executable,
                "-m",
                "scripts.native_stack.chdb_http_adapter",
                "--data-dir",
                str(self.data_dir),
                "--host",
                self.host,
                "--port",
                str(self.port),
            ]
            if self._users_file is not None:
                argv += ["--users-file", str(self._users_file)]
            if self.verbose:
                argv.append("--verbose")
            self._proc = ManagedProcess(
                f"chdb-adapter:{self.port}", argv, log_path=self.log_path, cwd=REPO_ROOT
            )
            try:
                wait_for_http(f"{self.url}/ping", timeout=timeout, proc=self._proc)
                if self._proc.poll() is None:
                    return self
                raise RuntimeError(f"chdb adapter exited at start:\n{self._proc.log_tail()}")
            except RuntimeError:
                port_taken = "Address already in use" in self._proc.log_text()
                self._proc.stop()
                self._proc = None
                if not port_taken or attempt == attempts - 1:
                    self.stop()
                    raise
                self.port = free_port(self.host)
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")

    def log_text(self) -> str:
        return self._proc.log_text() if self._proc is not None else ""

    def stop(self, timeout: float = 10.0) -> None:
        if self._proc is not None:
            self._proc.stop(timeout=timeout)
            self._proc = None
        if self._users_file is not None:
            self._users_file.unlink(missing_ok=True)
            self._users_file = None

    def __enter__(self) -> AdapterProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_adapter(
    data_dir: str | Path,
    *,
    port: int | None = None,
    users: Mapping[str, Mapping[str, Any] | str] | None = None,
    verbose: bool = False,
    log_path: str | Path | None = None,
    timeout: float = 30.0,
) -> AdapterProcess:
    """Start the adapter subprocess on a free 127.0.0.1 port and wait for `GET /ping`."""
    return AdapterProcess(
        data_dir, port=port, users=users, verbose=verbose, log_path=log_path
    ).start(timeout=timeout)


def serve(
    data_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 8123,
    users: Mapping[str, UserSpec] | None = None,
    verbose: bool = False,
    prepare: Callable[[ChdbHttpAdapter], None] | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT, then close the chdb session cleanly.

    `prepare` runs on the open engine before the port answers (e.g. a first-start schema).
    """
    server = _Server((host, port), None)  # bind first: a taken port fails before chdb starts
    adapter = server.adapter = ChdbHttpAdapter(data_dir, users=users, verbose=verbose)
    if prepare is not None:
        prepare(adapter)

    def _stop(_signum: int, _frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    sys.stderr.write(
        f"[chdb-adapter] ClickHouse {adapter.version} (chdb) on http://{host}:{port} "
        f"data={data_dir}\n"
    )
    sys.stderr.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        adapter.close()
        sys.stderr.write("[chdb-adapter] stopped\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, help="chdb data path (created if missing)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument(
        "--users-file", help='JSON {"name": {"password": "...", "readonly": false}}'
    )
    parser.add_argument("--verbose", action="store_true", help="log each statement and status")
    args = parser.parse_args(argv)
    users = None
    if args.users_file:
        users = load_users(json.loads(Path(args.users_file).read_text()))
    serve(args.data_dir, args.host, args.port, users, args.verbose)
    return 0


if __name__ == "__main__":
    sys.exit(main())
