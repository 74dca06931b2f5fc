"""A stand-in for Langfuse (v3) that is a real HTTP server on 127.0.0.1.

It does what the stack relies on and nothing more:
  * POST /api/public/otel/v1/traces: OTLP/HTTP (protobuf or JSON, optionally gzip), Basic auth
    with the project's public:secret keys (401 otherwise), decoded with `opentelemetry-proto`.
    `stall_s` makes it hold each export before answering, like an overloaded Langfuse.
  * GET /api/public/health: 200 {"status": "OK"} or 503 {"status": "Database not available"}.
  * GET /api/public/traces/{id} and GET /api/public/observations?traceId=...: the public API
    read by `make verify` hop 7, built from the received spans with Langfuse's attribute
    mapping for generations (model, usage, cost, completion start time).

The response shapes follow Langfuse's OpenAPI definition (fern/apis/server/definition) and its
OTel ingestion mapping (packages/shared/src/server/otel/OtelIngestionProcessor.ts,
ObservationTypeMapper.ts); only the fields the tests and hop 7 read are filled in.
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from scripts.native_stack import otlp
from scripts.native_stack.http_double import LocalServer, Reply, Request

from .otlp_receiver import ReceivedSpan, decode_protobuf

OTLP_PATH = "/api/public/otel/v1/traces"
VERSION = "3.225.8"
PROJECT_ID = "fake-project"

# Langfuse's ObservationTypeMapper: gen_ai.operation.name first, then "has a model" -> generation.
_OPERATION_TYPES = {
    "chat": "GENERATION",
    "completion": "GENERATION",
    "text_completion": "GENERATION",
    "generate_content": "GENERATION",
    "generate": "GENERATION",
    "embeddings": "EMBEDDING",
    "invoke_agent": "AGENT",
    "create_agent": "AGENT",
    "execute_tool": "TOOL",
}
_MODEL_KEYS = (
    "langfuse.observation.model.name",
    "gen_ai.response.model",
    "ai.model.id",
    "gen_ai.request.model",
    "llm.response.model",
    "llm.model_name",
    "model",
)
_USAGE_NAMES = {
    "prompt_tokens": "input",
    "completion_tokens": "output",
    "total_tokens": "total",
    "input_tokens": "input",
    "output_tokens": "output",
}


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    status: int
    headers: dict[str, str]
    started_at: float
    finished_at: float


def decode_json(body: bytes, received_at: float) -> list[ReceivedSpan]:
    # OTLP/JSON carries hex ids, which the shared OTLP/JSON flattener already understands.
    return [
        ReceivedSpan(
            trace_id=s.trace_id,
            span_id=s.span_id,
            parent_span_id=s.parent_span_id,
            name=s.name,
            kind=s.kind,
            start_ns=s.start_ns,
            end_ns=s.end_ns,
            status_code=s.status_code,
            status_message=s.status_message,
            scope=s.scope,
            attributes=s.attributes,
            resource=s.resource,
            received_at=received_at,
        )
        for s in otlp.spans([json.loads(body)])
    ]


def basic_auth(public_key: str, secret_key: str) -> str:
    return "Basic " + base64.b64encode(f"{public_key}:{secret_key}".encode()).decode()


def _iso(ns: int) -> str:
    return (
        datetime.fromtimestamp(ns / 1e9, tz=UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def _parse_iso(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        text = json.loads(value) if value.startswith('"') else value  # older SDKs double-encode
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, TypeError):
        return None


def observation_view(span: ReceivedSpan) -> dict[str, Any]:
    """One span as GET /api/public/traces/{id} lists it (ObservationsView)."""
    a = span.attributes
    obs_type = _OPERATION_TYPES.get(str(a.get("gen_ai.operation.name", "")))
    model = next((str(a[k]) for k in _MODEL_KEYS if a.get(k)), None)
    if obs_type is None:
        obs_type = "GENERATION" if model else "SPAN"
    usage_details: dict[str, int] = {}
    for key, value in a.items():
        if key.startswith("gen_ai.usage.") and key != "gen_ai.usage.cost":
            name = key.removeprefix("gen_ai.usage.")
            if isinstance(value, int | float) and not isinstance(value, bool):
                usage_details[_USAGE_NAMES.get(name, name)] = int(value)
    if usage_details and "total" not in usage_details:
        usage_details["total"] = usage_details.get("input", 0) + usage_details.get("output", 0)
    cost = a.get("gen_ai.usage.cost")
    cost_details = {"total": float(cost)} if isinstance(cost, int | float) and cost else {}
    start = _iso(span.start_ns)
    completion_start = _parse_iso(a.get("langfuse.observation.completion_start_time"))
    start_dt = datetime.fromtimestamp(span.start_ns / 1e9, tz=UTC)
    return {
        "id": span.span_id,
        "traceId": span.trace_id,
        "type": obs_type,
        "name": span.name,
        "startTime": start,
        "endTime": _iso(span.end_ns),
        "completionStartTime": completion_start.isoformat().replace("+00:00", "Z")
        if completion_start
        else None,
        "model": model,
        "modelParameters": {
            k.removeprefix("gen_ai.request."): v
            for k, v in a.items()
            if k.startswith("gen_ai.request.") and k != "gen_ai.request.model"
        },
        "usage": {
            "input": usage_details.get("input", 0),
            "output": usage_details.get("output", 0),
            "total": usage_details.get("total", 0),
            "unit": "TOKENS",
        },
        "usageDetails": usage_details,
        "costDetails": cost_details,
        "calculatedTotalCost": cost_details.get("total"),
        "level": "ERROR" if span.status_code == 2 else "DEFAULT",
        "statusMessage": span.status_message or None,
        "parentObservationId": span.parent_span_id or None,
        "environment": str(span.resource.get("deployment.environment.name") or "default"),
        "latency": (span.end_ns - span.start_ns) / 1e9,
        "timeToFirstToken": (completion_start - start_dt).total_seconds()
        if completion_start
        else None,
    }


def trace_view(trace_id: str, spans: list[ReceivedSpan]) -> dict[str, Any]:
    """GET /api/public/traces/{id} (TraceWithFullDetails) for the spans of one trace."""
    ids = {s.span_id for s in spans}
    roots = [s for s in spans if not s.parent_span_id or s.parent_span_id not in ids]
    observations = [observation_view(s) for s in sorted(spans, key=lambda s: s.start_ns)]
    start = min(s.start_ns for s in spans)
    end = max(s.end_ns for s in spans)
    return {
        "id": trace_id,
        "timestamp": _iso(start),
        "name": roots[0].name if roots else None,
        "environment": observations[0]["environment"],
        "htmlPath": f"/project/{PROJECT_ID}/traces/{trace_id}",
        "latency": (end - start) / 1e9,
        "totalCost": sum(o["calculatedTotalCost"] or 0.0 for o in observations),
        "observations": observations,
        "scores": [],
        "tags": [],
        "metadata": {},
    }


@dataclass
class FakeLangfuse:
    public_key: str
    secret_key: str
    stall_s: float = 0.0  # hold every OTLP export this long before answering
    healthy: bool = True  # False: /api/public/health answers 503, as while the database is down
    visible_after_s: float = 0.0  # ingested spans show in the public API only after this delay
    spans_received: list[ReceivedSpan] = field(default_factory=list)
    requests: list[SeenRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        # Set by unstall() and stop(): stalled requests finish at once.
        self._release = threading.Event()
        self._exports_started = 0
        self._exports_in_flight = 0
        self._server: LocalServer | None = None

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> FakeLangfuse:
        self._release.clear()
        self._server = LocalServer(self._answer, name="fake-langfuse").start()
        return self

    def stall(self, seconds: float) -> None:
        """Hold every following OTLP export `seconds` before answering (until unstall())."""
        self._release.clear()
        self.stall_s = seconds

    def unstall(self) -> None:
        """Answer the stalled exports now and stop stalling new ones."""
        self.stall_s = 0.0
        self._release.set()

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> FakeLangfuse:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return self._server.port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def otlp_endpoint(self) -> str:
        """What an otlp_http exporter's `endpoint` is set to (it appends /v1/traces)."""
        return f"{self.base_url}/api/public/otel"

    # ---- reading what arrived --------------------------------------------------------------
    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self.spans_received)

    @property
    def exports_started(self) -> int:
        """OTLP exports that reached the handler (answered or still stalled)."""
        with self._lock:
            return self._exports_started

    @property
    def exports_in_flight(self) -> int:
        with self._lock:
            return self._exports_in_flight

    def seen(self, path: str = OTLP_PATH) -> list[SeenRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def wait_for_spans(
        self, where: Callable[[ReceivedSpan], bool], count: int = 1, timeout: float = 20.0
    ) -> list[ReceivedSpan]:
        deadline = time.monotonic() + timeout
        while True:
            found = [s for s in self.spans() if where(s)]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"fake Langfuse: {len(found)} of {count} span(s) after "
                    f"{timeout:.0f}s; requests: {self.requests}"
                )
            time.sleep(0.1)

    # ---- HTTP ------------------------------------------------------------------------------
    def _authorised(self, req: Request) -> bool:
        return req.headers.get("authorization") == basic_auth(self.public_key, self.secret_key)

    def _answer(self, req: Request) -> Reply:
        status, payload = self._route(req)
        with self._lock:
            seen = SeenRequest(
                req.method, req.route, status, req.headers, req.received_at, time.monotonic()
            )
            self.requests.append(seen)
        # Next.js API routes answer with this exact type; the collector only parses a body as
        # an OTLP response for a bare application/json or application/x-protobuf.
        return Reply(status, payload, {"Content-Type": "application/json; charset=utf-8"})

    def _route(self, req: Request) -> tuple[int, Any]:
        method, path, query = req.method, req.route, req.query
        if method == "GET" and path == "/api/public/health":
            if self.healthy:
                return 200, {"status": "OK", "version": VERSION}
            return 503, {"status": "Database not available", "version": VERSION}
        if method == "GET" and path == "/api/public/ready":
            return 200, {"status": "OK", "version": VERSION}
        if not path.startswith("/api/public/"):
            return 404, {"message": "not found"}
        if not self._authorised(req):
            return 401, {
                "message": "Invalid credentials. Confirm that you've configured the correct host.",
                "error": "UnauthorizedError",
            }
        if method == "POST" and path == OTLP_PATH:
            return self._ingest(req)
        if method == "GET" and path.startswith("/api/public/traces/"):
            trace_id = path.removeprefix("/api/public/traces/")
            spans = self._visible(lambda s: s.trace_id == trace_id)
            if not spans:
                return 404, {
                    "message": "Trace not found within authorized project",
                    "error": "LangfuseNotFoundError",
                }
            return 200, trace_view(trace_id, spans)
        if method == "GET" and path == "/api/public/observations":
            trace_id = (query.get("traceId") or [""])[0]
            wanted = (query.get("type") or [""])[0]
            data = [observation_view(s) for s in self._visible(lambda s: s.trace_id == trace_id)]
            data = [o for o in data if not wanted or o["type"] == wanted]
            return 200, {
                "data": data,
                "meta": {"page": 1, "limit": 50, "totalItems": len(data), "totalPages": 1},
            }
        return 404, {"message": "not found"}

    def _ingest(self, req: Request) -> tuple[int, Any]:
        body = req.body
        if "gzip" in (req.headers.get("content-encoding") or ""):
            body = gzip.decompress(body)
        content_type = (req.headers.get("content-type") or "").lower()
        now = time.monotonic()
        try:
            if "application/x-protobuf" in content_type:
                spans = decode_protobuf(body, now)
            elif "application/json" in content_type:
                spans = decode_json(body, now)
            else:
                return 400, {"error": "Invalid content type"}
        except Exception as exc:  # noqa: BLE001 - a bad body is the client's problem: 400
            return 400, {"error": f"Failed to parse OTel trace: {exc}"}
        with self._lock:
            self._exports_started += 1
            self._exports_in_flight += 1
        try:
            if self.stall_s > 0 and not self._release.is_set():
                self._release.wait(self.stall_s)
        finally:
            with self._lock:
                self._exports_in_flight -= 1
        with self._lock:
            self.spans_received.extend(spans)
        return 200, {"id": f"otel-{len(spans)}", "status": "queued"}

    def _visible(self, where: Callable[[ReceivedSpan], bool]) -> list[ReceivedSpan]:
        cutoff = time.monotonic() - self.visible_after_s
        return [s for s in self.spans() if where(s) and s.received_at <= cutoff]
