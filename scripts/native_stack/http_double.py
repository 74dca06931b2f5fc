"""One local HTTP server for every stand-in (test doubles and the bench's fake upstream).

A stdlib `ThreadingHTTPServer` that answers each request through an `app(request) -> Reply`
callable and records what it received. Stdlib only: `make bench` runs the fake upstream from it,
and the Docker tests mount it into a bare Python container.

    with LocalServer(lambda req: Reply(body={"ok": True})) as server:
        urllib.request.urlopen(server.url + "/anything")
        server.requests[0].path  # "/anything"

A reply's body is sent as is (str, bytes), as JSON (anything else), or, when it is an iterator
of byte chunks, streamed with chunked transfer encoding, each chunk flushed as it is produced.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

__all__ = ["App", "LocalServer", "Reply", "Request"]


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # as sent, query string included
    headers: dict[str, str]  # names lower-cased
    body: bytes
    received_at: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    @property
    def route(self) -> str:
        """The path without its query string."""
        return urlsplit(self.path).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.path).query)


@dataclass
class Reply:
    status: int = 200
    body: Any = ""  # str | bytes: as is; an iterator of bytes: streamed; else sent as JSON
    headers: dict[str, str] = field(default_factory=dict)


App = Callable[[Request], Reply]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (a timeout on a stalled answer) leaves a broken pipe: expected.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class LocalServer:
    """`app` served on host:port (port 0: a free one) from a background thread."""

    def __init__(
        self, app: App, host: str = "127.0.0.1", port: int = 0, name: str = "http-double"
    ) -> None:
        self.app = app
        self.name = name
        self.requests: list[Request] = []
        self._httpd = _Server((host, port), _handler_for(self))
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        # A short poll interval keeps stop() (test teardown) fast.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=self.name,
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread (a stand-in run as its own process)."""
        self._httpd.serve_forever()

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _encode(body: Any) -> tuple[bytes, str | None]:
    """The bytes to send and the Content-Type they imply (None: the app's own, if any)."""
    if isinstance(body, bytes):
        return body, None
    if isinstance(body, str):
        return body.encode(), None
    return json.dumps(body).encode(), "application/json"


def _is_stream(body: Any) -> bool:
    return isinstance(body, Iterator) or (
        isinstance(body, Iterable) and not isinstance(body, str | bytes | dict | list | tuple)
    )


def _handler_for(server: LocalServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in separate writes; without this each keep-alive
            # response stalls ~40 ms on Nagle's algorithm.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return  # keep test output clean; requests are recorded instead

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            request = Request(
                self.command,
                self.path,
                {k.lower(): v for k, v in self.headers.items()},
                self.rfile.read(length) if length else b"",
            )
            server.requests.append(request)
            reply = server.app(request)
            self.send_response(reply.status)
            for key, value in reply.headers.items():
                self.send_header(key, value)
            if _is_stream(reply.body):
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for chunk in reply.body:
                    self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                return
            data, content_type = _encode(reply.body)
            if content_type and not any(k.lower() == "content-type" for k in reply.headers):
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve  # noqa: N815 - stdlib naming

    return Handler
