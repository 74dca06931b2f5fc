"""An OTLP/HTTP receiver that keeps nothing: it answers every POST with an empty success and
counts what it got (`GET /count`). The bench's proxies export to it when what is measured is the
proxy alone: under valgrind, and with `--receiver sink` (no collector or ClickHouse work at all
while a mode is measured). Stdlib only. Run as its own process:
`python -m scripts.bench.sink --port N`.
"""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# An empty ExportTraceServiceResponse (and metrics, logs): no partial_success field.
EMPTY_PROTOBUF = b""


class Sink:
    """Counts POSTs and their bytes; serves from a daemon thread (`start`) or the caller's."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.posts = 0
        self.bytes = 0
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((host, port), _handler(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def count(self) -> tuple[int, int]:
        with self._lock:
            return self.posts, self.bytes

    def received(self, size: int) -> None:
        with self._lock:
            self.posts += 1
            self.bytes += size

    def start(self) -> Sink:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread = None
        self._httpd.server_close()


def _handler(sink: Sink) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            size = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(size)
            sink.received(size)
            json_body = "json" in (self.headers.get("Content-Type") or "")
            self._reply(b"{}" if json_body else EMPTY_PROTOBUF, json_body)

        def do_GET(self) -> None:
            posts, size = sink.count()
            self._reply(json.dumps({"posts": posts, "bytes": size}).encode(), True)

        def _reply(self, body: bytes, json_body: bool) -> None:
            self.send_response(200)
            kind = "application/json" if json_body else "application/x-protobuf"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    Sink(port=parser.parse_args().port).serve_forever()


if __name__ == "__main__":
    main()
