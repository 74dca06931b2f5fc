"""Faults and bad input (issue #5): telemetry outages lose nothing, garbage is refused cleanly."""

from __future__ import annotations

import os
import secrets
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from llm_otel.contract import (
    ERROR_TYPE,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_USAGE_INPUT_TOKENS,
    LITELLM_API_KEY_HASH,
    LITELLM_CALL_ID,
    LLM_OTEL_EXPORTS_FAILED,
    LLM_OTEL_SPANS_DROPPED,
    LLM_OTEL_SPANS_HELD,
    SCOPE_NAME,
)
from scripts.native_stack.harness import MOCK_MODEL, NativeStack
from tests.support.traceparent import traceparent

StackFactory = Callable[..., NativeStack]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Load:
    """A bounded closed-loop load: `clients` threads, each one request at a time, until stop."""

    def __init__(self, stack: NativeStack, clients: int = 8, max_requests: int = 20000) -> None:
        self.stack = stack
        self.clients = clients
        self.max_requests = max_requests
        self.results: list[tuple[float, float, int, str]] = []  # (t_end, latency, status, id)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def _run(self) -> None:
        payload = {"model": MOCK_MODEL, "messages": [{"role": "user", "content": "load"}]}
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set() and len(self.results) < self.max_requests:
                started = time.monotonic()
                try:
                    r = client.post(
                        f"{self.stack.proxy_url}/v1/chat/completions",
                        json=payload,
                        headers=self.stack.auth(),
                    )
                    status, call_id = r.status_code, r.headers.get("x-litellm-call-id", "")
                except httpx.HTTPError:
                    status, call_id = 0, ""
                ended = time.monotonic()
                with self._lock:
                    self.results.append((ended, ended - started, status, call_id))

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def latencies(self, start: float, end: float) -> list[float]:
        return [lat for t, lat, _, _ in self.results if start <= t < end]


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) >= 20 else max(values)


def test_collector_outage_under_load_loses_no_llm_span(make_stack: StackFactory) -> None:
    stack = make_stack()
    assert stack.proxy is not None
    rss_before = rss_kib(stack.proxy.pid)
    with Load(stack) as load:
        time.sleep(4)
        outage_start = time.monotonic()
        stack.stop_collector()
        time.sleep(30)
        outage_end = time.monotonic()
        rss_during = rss_kib(stack.proxy.pid)
        stack.restart_collector()
        time.sleep(4)
    statuses = [status for _, _, status, _ in load.results]
    assert statuses and all(status == 200 for status in statuses), (
        f"{sum(s != 200 for s in statuses)} of {len(statuses)} requests failed"
    )
    before = load.latencies(0, outage_start)
    during = load.latencies(outage_start, outage_end)
    assert len(during) > 100, "the outage window carried real load"
    # Not a speed claim (that is `make bench`): only "did not balloon" vs. before the outage.
    assert p95(during) < max(1.0, 5 * p95(before)), (p95(before), p95(during))
    assert rss_during - rss_before < 200 * 1024, "proxy memory stays bounded during the outage"

    call_ids = {call_id for _, _, _, call_id in load.results}
    stack.wait_for(
        lambda: call_ids <= {s.attributes.get(LITELLM_CALL_ID) for s in stack.llm_spans()},
        timeout=90,
        what=f"all {len(call_ids)} LLM spans after the outage",
    )
    ids = [s.attributes[LITELLM_CALL_ID] for s in stack.llm_spans()]
    assert len(ids) == len(set(ids)), "no LLM span delivered twice"

    # The hook's own health says what happened, per worker (service.instance.id): exports the
    # collector refused during the outage, nothing held once it was back, nothing dropped.
    def health() -> dict[str, dict[str, float]] | None:
        latest: dict[str, dict[str, float]] = {}
        for metric in stack.metrics():
            if metric.scope != SCOPE_NAME:
                continue
            instance = str(metric.resource.get("service.instance.id"))
            for point in metric.points:
                value = float(point.get("asInt") or point.get("asDouble") or 0)
                latest.setdefault(instance, {})[metric.name] = value
        done = (
            latest
            and any(m.get(LLM_OTEL_EXPORTS_FAILED, 0) > 0 for m in latest.values())
            and all(m.get(LLM_OTEL_SPANS_HELD) == 0 for m in latest.values())
        )
        return latest if done else None

    by_instance = stack.wait_for(health, timeout=30, what="the hook's health metrics")
    assert all(m.get(LLM_OTEL_SPANS_DROPPED, 0) == 0 for m in by_instance.values()), by_instance


def test_garbage_and_oversized_otlp_is_refused_and_collector_stays_healthy(
    default_stack: NativeStack,
) -> None:
    assert default_stack.collector is not None
    url = f"{default_stack.collector.otlp_http_url}/v1/traces"
    garbage = httpx.post(
        url,
        content=os.urandom(2048),
        headers={"Content-Type": "application/x-protobuf"},
        timeout=10,
    )
    assert 400 <= garbage.status_code < 500
    bad_json = httpx.post(
        url,
        content=b'{"resourceSpans": [{"oops"',
        timeout=10,
        headers={"Content-Type": "application/json"},
    )
    assert 400 <= bad_json.status_code < 500
    huge = httpx.post(
        url,
        content=b"\x0a" * (9 * 1024 * 1024),
        timeout=30,
        headers={"Content-Type": "application/x-protobuf"},
    )
    assert 400 <= huge.status_code < 500
    assert httpx.get(default_stack.collector.health_url, timeout=5).status_code == 200
    # ...and it still accepts real data afterwards.
    before = len(default_stack.llm_spans())
    assert default_stack.chat(MOCK_MODEL).status_code == 200
    default_stack.wait_for_llm_spans(before + 1)


def test_bad_gateway_requests_get_clean_4xx(default_stack: NativeStack) -> None:
    url = f"{default_stack.proxy_url}/v1/chat/completions"
    with httpx.Client(timeout=30) as client:
        no_key = client.post(url, json={"model": MOCK_MODEL, "messages": []})
        assert no_key.status_code == 401
        wrong_trace = secrets.token_hex(16)
        wrong_key = client.post(
            url,
            json={"model": MOCK_MODEL, "messages": []},
            headers={
                "Authorization": "Bearer sk-wrong-key-0000",
                "traceparent": traceparent(wrong_trace),
            },
        )
        # Without a database LiteLLM answers an unknown key with 400 "No connected db" (it
        # would look virtual keys up there); a clean refusal either way, never a 5xx.
        assert wrong_key.status_code in (400, 401), wrong_key.text
        malformed = client.post(
            url,
            content=b"{not json",
            headers={**default_stack.auth(), "Content-Type": "application/json"},
        )
        assert 400 <= malformed.status_code < 500, malformed.text
        unknown = client.post(
            url,
            json={"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]},
            headers=default_stack.auth(),
        )
        assert unknown.status_code == 400
    assert httpx.get(f"{default_stack.proxy_url}/health/liveliness", timeout=5).status_code == 200
    errors = default_stack.wait_for_llm_spans(
        1, where=lambda s: s.attributes.get(GEN_AI_REQUEST_MODEL) == "no-such-model"
    )
    assert errors[0].attributes[ERROR_TYPE]
    # Auth failures are not LLM calls: once later spans have arrived, none is in that trace.
    assert not [s for s in default_stack.spans() if s.trace_id == wrong_trace]


def test_collector_scrubs_secret_looking_attributes(default_stack: NativeStack) -> None:
    """Whatever a client sends, secret-looking keys are dropped and key-like values masked."""
    assert default_stack.collector is not None
    trace_id = secrets.token_hex(16)

    def kv(key: str, value: str) -> dict[str, object]:
        return {"key": key, "value": {"stringValue": value}}

    span = {
        "traceId": trace_id,
        "spanId": secrets.token_hex(8),
        "name": "client call",
        "kind": 3,
        "startTimeUnixNano": "1",
        "endTimeUnixNano": "2",
        "attributes": [
            kv("http.request.header.authorization", "Bearer abc"),
            kv("api_key", "k"),
            kv("db_password", "p"),
            kv("note", "leaked sk-abcdefghijklmnop here"),
            kv(GEN_AI_USAGE_INPUT_TOKENS, "12"),
            kv(LITELLM_API_KEY_HASH, "hash-1"),
        ],
    }
    payload = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [kv("service.name", "scrub-test"), kv("client_secret", "s")]
                },
                "scopeSpans": [{"scope": {"name": "t"}, "spans": [span]}],
            }
        ]
    }
    response = httpx.post(
        f"{default_stack.collector.otlp_http_url}/v1/traces", json=payload, timeout=10
    )
    assert response.status_code == 200
    found = default_stack.wait_for(
        lambda: [s for s in default_stack.spans() if s.trace_id == trace_id],
        what="the scrubbed span",
    )[0]
    assert set(found.attributes) == {"note", GEN_AI_USAGE_INPUT_TOKENS, LITELLM_API_KEY_HASH}
    assert "sk-abcdefghijklmnop" not in found.attributes["note"]
    assert "client_secret" not in found.resource
