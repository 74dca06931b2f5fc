"""Compression on the wire: ClickHouse's compressed blocks and HTTP Content-Encoding.

- `compress=1` / `decompress=1`: ClickHouse block framing (CityHash128 checksum, LZ4 or ZSTD per
  `network_compression_method`).
- `enable_http_compression=1` with `Accept-Encoding`, and request `Content-Encoding`:
  zstd/lz4/gzip/deflate, and `br` only if the `brotli` module is importable.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Mapping
from typing import cast

import lz4.block
import lz4.frame

from .cityhash import cityhash128
from .errors import AdapterError

try:  # Python 3.14+ ships zstd; 3.11 has it from the backports.zstd wheel.
    from compression import zstd as _zstd  # type: ignore[import-not-found]  # 3.14+ only
except ImportError:  # pragma: no cover - depends on the interpreter
    try:
        from backports import zstd as _zstd
    except ImportError:
        _zstd = None

try:
    import brotli as _brotli
except ImportError:
    _brotli = None

_METHOD_NONE, _METHOD_LZ4, _METHOD_ZSTD = 0x02, 0x82, 0x90
_FRAME_HEADER = 9  # method byte + compressed size + uncompressed size
_MAX_FRAME_DATA = 1 << 20  # ClickHouse and ch-go cap one block at about 1 MiB of data


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
        # These decoders carry no type information (see pyproject.toml, [tool.mypy]).
        if enc == "zstd" and _zstd is not None:
            return cast(bytes, _zstd.decompress(data))
        if enc == "lz4":
            return cast(bytes, lz4.frame.decompress(data))
        if enc == "br" and _brotli is not None:
            return cast(bytes, _brotli.decompress(data))
    except AdapterError:
        raise
    except Exception as exc:
        raise AdapterError(
            271, "CANNOT_DECOMPRESS", f"Cannot decompress {enc} request body: {exc}"
        ) from exc
    raise AdapterError(
        48, "NOT_IMPLEMENTED", f"Content-Encoding '{encoding}' is not supported by the chdb adapter"
    )


def http_compress(data: bytes, accept: str) -> tuple[bytes, str | None]:
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


def decode_request_body(
    body: bytes, params: Mapping[str, str], headers: Mapping[str, str]
) -> bytes:
    """Undo the body's Content-Encoding, then its block framing (`decompress=1`)."""
    encoding = headers.get("content-encoding", "")
    if encoding and body:
        body = decode_content_encoding(body, encoding)
    if params.get("decompress") == "1" and body:
        body = decode_ch_blocks(body)
    return body


def block_method(params: Mapping[str, str]) -> str:
    """The block codec a `compress=1` answer uses."""
    return params.get("network_compression_method", "lz4").lower()


def compress_result(
    body: bytes, params: Mapping[str, str], headers: Mapping[str, str]
) -> tuple[bytes, str | None]:
    """A result body framed per `compress=1`, then HTTP-compressed; the Content-Encoding used."""
    if not body:
        return body, None
    if params.get("compress") == "1":
        body = encode_ch_blocks(body, block_method(params))
    if params.get("enable_http_compression") == "1":
        return http_compress(body, headers.get("accept-encoding", ""))
    return body, None
