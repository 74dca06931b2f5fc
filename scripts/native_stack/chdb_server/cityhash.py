"""CityHash128 as ClickHouse uses it (CityHash v1.0.2): the checksum of every compressed block.

Ported from github.com/go-faster/city (ch_128.go), which clickhouse-go verifies blocks with.
"""

from __future__ import annotations

import struct

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
        b: int = _U64.unpack_from(s, n - 8)[0]
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
