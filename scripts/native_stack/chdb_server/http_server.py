"""The HTTP server: a threading HTTP/1.1 server in front of one `ChdbHttpAdapter`, and `serve`."""

from __future__ import annotations

import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .adapter import ChdbHttpAdapter
from .errors import AdapterError
from .response import Response
from .users import UserSpec


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


def serve(
    data_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 8123,
    users: Mapping[str, UserSpec] | None = None,
    verbose: bool = False,
    prepare: Callable[[ChdbHttpAdapter], None] | None = None,
    tls: tuple[Path, Path] | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT, then close the chdb session cleanly.

    `prepare` runs on the open engine before the port answers (e.g. a first-start schema).
    `tls` (certificate chain, key): HTTPS instead of HTTP, as ClickHouse's 8443 port.
    """
    server = _Server((host, port), None)  # bind first: a taken port fails before chdb starts
    scheme = "http"
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    adapter = server.adapter = ChdbHttpAdapter(data_dir, users=users, verbose=verbose)
    if prepare is not None:
        prepare(adapter)

    def _stop(_signum: int, _frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    sys.stderr.write(
        f"[chdb-adapter] ClickHouse {adapter.version} (chdb) on {scheme}://{host}:{port} "
        f"data={data_dir}\n"
    )
    sys.stderr.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        adapter.close()
        sys.stderr.write("[chdb-adapter] stopped\n")
