"""ClickHouse's HTTP interface served from an in-process chdb session (tests and the native stack).

Real clients (clickhouse-connect, clickhouse-go in the collector) run unchanged against the real
engine. Never part of the Docker stack. What it emulates, and where each concern lives: README.md.
"""

from .adapter import ChdbHttpAdapter
from .compression import decode_ch_blocks, encode_ch_blocks
from .errors import AdapterError
from .http_server import serve
from .process import AdapterProcess, start_adapter
from .response import Response
from .users import UserSpec, load_users

__all__ = [
    "AdapterError",
    "AdapterProcess",
    "ChdbHttpAdapter",
    "Response",
    "UserSpec",
    "decode_ch_blocks",
    "encode_ch_blocks",
    "load_users",
    "serve",
    "start_adapter",
]
