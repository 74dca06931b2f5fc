"""A stand-in for a self-hosted AgentOps collector's OTLP/HTTP receiver (test support only).

It checks what AgentOps' own collector checks (its jwtauthextension): `Authorization: Bearer
<JWT>` signed with HMAC by the shared JWT secret, not expired; the `project_id` claim names the
project. Accepted spans are decoded (protobuf) and kept with the project they were filed under.
`refuse()` answers 503 like an overloaded server; `stall(seconds)` holds each request.
"""

from __future__ import annotations

import gzip
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt

from .fake_langfuse import ReceivedSpan, decode_protobuf


@dataclass(frozen=True)
class FiledSpan:
    project_id: str
    span: ReceivedSpan


class FakeAgentOps(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        secret: str,
        address: tuple[str, int] = ("127.0.0.1", 0),
        handler: type[BaseHTTPRequestHandler] | None = None,
    ) -> None:
        super().__init__(address, handler or ReceiverHandler)
        self.secret = secret
        self.filed: list[FiledSpan] = []
        self.rejected: list[str] = []  # why each refused request was refused
        self.stall_s = 0.0
        self.refusing = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> FakeAgentOps:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stall_s = 0.0
        self.shutdown()
        self.server_close()

    def spans(self, where: Any = lambda f: True) -> list[FiledSpan]:
        with self._lock:
            return [f for f in self.filed if where(f)]

    def wait_for(self, where: Any, timeout: float = 30.0) -> list[FiledSpan]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.spans(where)
            if found:
                return found
            time.sleep(0.1)
        raise TimeoutError(f"no matching span at the fake AgentOps; refused: {self.rejected}")


class ReceiverHandler(BaseHTTPRequestHandler):
    server: FakeAgentOps

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return

    def _answer(self, status: int, body: bytes = b"") -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding") == "gzip":  # the exporter's default
            body = gzip.decompress(body)
        if self.server.stall_s:
            time.sleep(self.server.stall_s)
        if self.server.refusing:
            return self._answer(503, b"overloaded")
        if self.path != "/v1/traces":
            return self._answer(404)
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        try:
            if scheme != "Bearer":
                raise jwt.InvalidTokenError(f"scheme {scheme!r}")
            claims = jwt.decode(
                token,
                self.server.secret,
                algorithms=["HS256", "HS384", "HS512"],
                options={"verify_aud": False, "require": ["exp"]},
            )
        except jwt.InvalidTokenError as exc:
            with self.server._lock:
                self.server.rejected.append(type(exc).__name__)
            return self._answer(401, b"invalid token")
        project = str(claims.get("project_id", ""))
        spans = decode_protobuf(body, time.monotonic())
        with self.server._lock:
            self.server.filed.extend(FiledSpan(project, s) for s in spans)
        return self._answer(200)
