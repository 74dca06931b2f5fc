"""Doubles of the services `make verify` talks to, as apps for the local HTTP server
(scripts/native_stack/http_double.py): the LiteLLM proxy and the collector's health and metrics."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from scripts.native_stack.http_double import Reply, Request

MASTER_KEY = "sk-test-" + "9f" * 16
TRACEPARENT_RE = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-01$")


@dataclass
class FakeLiteLLM:
    """Answers like the LiteLLM proxy: health probes, /v1/models, /v1/chat/completions."""

    master_key: str = MASTER_KEY
    models: list[str] = field(default_factory=lambda: ["verify-mock", "qwen/qwen3-235b-a22b-2507"])
    cost: str | None = "2.4e-05"  # x-litellm-response-cost; None: header absent
    ready_status: int = 200
    open_access: bool = False  # True: a misconfigured gateway without a master key
    # LiteLLM without a database answers a wrong (non-master) key with 400 "No connected db."
    wrong_key_status: int = 401
    on_chat: Callable[[str, dict[str, int], float], None] | None = None
    traceparents: list[str] = field(default_factory=list)

    def __call__(self, req: Request) -> Reply:
        if req.path == "/health/liveliness":
            return Reply(body="I'm alive!")
        if req.path == "/health/readiness":
            status = "healthy" if self.ready_status == 200 else "shutting_down"
            return Reply(self.ready_status, {"status": status, "db": "Not connected"})
        authorization = req.headers.get("authorization")
        authorized = self.open_access or authorization == f"Bearer {self.master_key}"
        if authorization and not authorized and self.wrong_key_status == 400:
            return Reply(400, {"error": {"message": "No connected db.", "code": "400"}})
        if not authorized:
            message = "Authentication Error, Invalid proxy server token passed."
            return Reply(401, {"error": {"message": message, "type": "auth_error", "code": "401"}})
        if req.path == "/v1/models":
            return Reply(
                body={"object": "list", "data": [{"id": m, "object": "model"} for m in self.models]}
            )
        if req.path == "/v1/chat/completions":
            body = req.json()
            if body["model"] not in self.models:
                return Reply(400, {"error": {"message": f"Invalid model name {body['model']}"}})
            self.traceparents.append(req.headers.get("traceparent", ""))
            usage = {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20}
            headers = {"x-litellm-call-id": "call-1234"}
            if self.cost is not None:
                headers["x-litellm-response-cost"] = self.cost
            if self.on_chat is not None:
                match = TRACEPARENT_RE.match(self.traceparents[-1])
                assert match, self.traceparents[-1]
                self.on_chat(match.group(1), usage, float(self.cost or 0))
            reply = {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "pong"}}],
                "usage": usage,
            }
            return Reply(body=reply, headers=headers)
        return Reply(404, {"detail": "Not Found"})


@dataclass
class FakeCollector:
    """Answers like the collector's health_check extension and its own /metrics (0.161 format)."""

    accepted: float = 5
    sent: float = 5
    failed: float = 0
    queue: float = 0
    health_status: int = 200
    total_suffix: bool = False  # older collectors / some pipelines append _total to counters

    def bump(self, spans: int = 1) -> None:
        self.accepted += spans
        self.sent += spans

    def metrics_text(self) -> str:
        t = "_total" if self.total_suffix else ""
        return (
            "# HELP otelcol_exporter_queue_size Current size of the retry queue. [Alpha]\n"
            "# TYPE otelcol_exporter_queue_size gauge\n"
            'otelcol_exporter_queue_size{data_type="traces",exporter="clickhouse"} '
            f"{self.queue}\n"
            "# TYPE otelcol_exporter_send_failed_spans counter\n"
            f'otelcol_exporter_send_failed_spans{t}{{error_permanent="false",error_type="_OTHER",'
            f'exporter="clickhouse"}} {self.failed}\n'
            "# TYPE otelcol_exporter_sent_spans counter\n"
            f'otelcol_exporter_sent_spans{t}{{exporter="clickhouse"}} {self.sent}\n'
            f'otelcol_exporter_sent_spans{t}{{exporter="debug"}} 0\n'
            "# TYPE otelcol_receiver_accepted_spans counter\n"
            f'otelcol_receiver_accepted_spans{t}{{receiver="otlp",transport="http"}} '
            f"{self.accepted}\n"
            f'otelcol_receiver_accepted_spans{t}{{receiver="otlp",transport="grpc"}} 0\n'
        )

    def __call__(self, req: Request) -> Reply:
        if req.path == "/metrics":
            return Reply(body=self.metrics_text(), headers={"Content-Type": "text/plain"})
        if req.path == "/":
            status = "Server available" if self.health_status == 200 else "Server not available"
            return Reply(self.health_status, {"status": status, "upSince": "2026-01-01T00:00:00Z"})
        return Reply(404, "404 page not found\n")


# Every hop of a native `make verify` run with no overlay: what "all green" means.
NATIVE_ALL_GREEN = {
    "settings": "ok",
    "containers": "skip",
    "gateway": "ok",
    "auth": "ok",
    "llm-call": "ok",
    "collector": "ok",
    "clickhouse": "ok",
    "langfuse": "skip",
    "grafana": "skip",
    "agentops": "skip",
}
