"""A stand-in for a self-hosted AgentOps collector's OTLP/HTTP receiver (test support only).

It checks what AgentOps' own collector checks (its jwtauthextension): `Authorization: Bearer
<JWT>` signed with HMAC by the shared JWT secret, not expired; the `project_id` claim names the
project. Accepted spans are decoded (protobuf) and kept with the project they were filed under.
`refusing` answers 503 like an overloaded server; `stall_s` holds each request that long.
"""

from __future__ import annotations

import gzip
import threading
import time
from dataclasses import dataclass
from typing import Any

import jwt

from scripts.native_stack.http_double import LocalServer, Reply, Request

from .otlp_receiver import ReceivedSpan, decode_protobuf


@dataclass(frozen=True)
class FiledSpan:
    project_id: str
    span: ReceivedSpan


class FakeAgentOps(LocalServer):
    def __init__(self, secret: str, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(self._answer, host, port, name="fake-agentops")
        self.secret = secret
        self.filed: list[FiledSpan] = []
        self.rejected: list[str] = []  # why each refused request was refused
        self.stall_s = 0.0
        self.refusing = False
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return self.url

    def stop(self) -> None:
        self.stall_s = 0.0  # stalled requests need not hold up the shutdown
        super().stop()

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

    def _answer(self, req: Request) -> Reply:
        if req.method != "POST":
            return Reply(501, b"unsupported method")
        body = req.body
        if req.headers.get("content-encoding") == "gzip":  # the exporter's default
            body = gzip.decompress(body)
        if self.stall_s:
            time.sleep(self.stall_s)
        if self.refusing:
            return Reply(503, b"overloaded")
        if req.path != "/v1/traces":
            return Reply(404, b"")
        scheme, _, token = (req.headers.get("authorization") or "").partition(" ")
        try:
            if scheme != "Bearer":
                raise jwt.InvalidTokenError(f"scheme {scheme!r}")
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=["HS256", "HS384", "HS512"],
                options={"verify_aud": False, "require": ["exp"]},
            )
        except jwt.InvalidTokenError as exc:
            with self._lock:
                self.rejected.append(type(exc).__name__)
            return Reply(401, b"invalid token")
        project = str(claims.get("project_id", ""))
        spans = decode_protobuf(body, time.monotonic())
        with self._lock:
            self.filed.extend(FiledSpan(project, s) for s in spans)
        return Reply(200, b"")
