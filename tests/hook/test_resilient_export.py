"""The span buffer that rides out collector outages (unit level, real SDK spans)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from llm_otel.contract import (
    GEN_AI_OPERATION_NAME,
)
from llm_otel.resilient_export import ResilientSpanExporter


class FlakyExporter(SpanExporter):
    """Fails while `down`; records what it accepted."""

    def __init__(self) -> None:
        self.down = False
        self.accepted: list[str] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self.down:
            return SpanExportResult.FAILURE
        self.accepted.extend(s.name for s in spans)
        return SpanExportResult.SUCCESS


def make_spans(names: list[str], llm: set[str]) -> list[ReadableSpan]:
    tracer = TracerProvider().get_tracer("t")
    spans = []
    for name in names:
        attrs = {GEN_AI_OPERATION_NAME: "chat"} if name in llm else {}
        span = tracer.start_span(name, attributes=attrs)
        span.end()
        spans.append(span)  # type: ignore[arg-type]
    return spans


def test_outage_loses_nothing_and_keeps_order() -> None:
    inner = FlakyExporter()
    exporter = ResilientSpanExporter(inner, max_pending=100)
    inner.down = True
    assert exporter.export(make_spans(["a", "b"], set())) is SpanExportResult.FAILURE
    assert exporter.export(make_spans(["c"], set())) is SpanExportResult.FAILURE
    inner.down = False
    assert exporter.export(make_spans(["d"], set())) is SpanExportResult.SUCCESS
    assert inner.accepted == ["a", "b", "c", "d"]


def test_full_buffer_evicts_server_spans_before_llm_spans() -> None:
    inner = FlakyExporter()
    exporter = ResilientSpanExporter(inner, max_pending=3)
    inner.down = True
    exporter.export(
        make_spans(["llm1", "http1", "llm2", "http2", "llm3"], {"llm1", "llm2", "llm3"})
    )
    inner.down = False
    exporter.export([])
    assert inner.accepted == ["llm1", "llm2", "llm3"]
    assert exporter.evicted == 2


def test_batch_refused_for_good_is_dropped_after_max_attempts() -> None:
    inner = FlakyExporter()
    exporter = ResilientSpanExporter(inner, max_pending=100, max_attempts=3)
    inner.down = True
    assert exporter.export(make_spans(["x"], set())) is SpanExportResult.FAILURE
    assert exporter.export(make_spans(["y"], set())) is SpanExportResult.FAILURE
    # The third failure of the same head batch gives up on it instead of blocking forever.
    exporter.export(make_spans(["z"], set()))
    assert exporter.evicted == 3
    inner.down = False
    exporter.export(make_spans(["after"], set()))
    assert inner.accepted == ["after"]


def test_shutdown_sends_what_is_still_held() -> None:
    inner = FlakyExporter()
    exporter = ResilientSpanExporter(inner, max_pending=100)
    inner.down = True
    exporter.export(make_spans(["held"], set()))
    inner.down = False
    exporter.shutdown()
    assert inner.accepted == ["held"]


def wait_until(condition: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_held_spans_are_sent_without_new_traffic() -> None:
    """A gateway that goes quiet during an outage: nothing calls export() again, yet the held
    spans reach the collector soon after it is back."""
    inner = FlakyExporter()
    exporter = ResilientSpanExporter(inner, max_pending=100, retry_initial_s=0.05, retry_max_s=0.2)
    inner.down = True
    assert exporter.export(make_spans(["last-call"], set())) is SpanExportResult.FAILURE
    time.sleep(0.5)  # several retries fail while the collector is away
    assert inner.accepted == []
    inner.down = False
    assert wait_until(lambda: inner.accepted == ["last-call"]), inner.accepted
    # Caught up: the retrier ends, and a later outage starts a new one.
    assert wait_until(
        lambda: not any(t.name == "llm_otel-retry" and t.is_alive() for t in threading.enumerate())
    )
    inner.down = True
    exporter.export(make_spans(["later"], set()))
    inner.down = False
    assert wait_until(lambda: inner.accepted == ["last-call", "later"]), inner.accepted
    exporter.shutdown()


def test_retries_back_off_while_the_collector_is_away() -> None:
    attempts: list[float] = []

    class Down(FlakyExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            attempts.append(time.monotonic())
            return SpanExportResult.FAILURE

    exporter = ResilientSpanExporter(Down(), max_pending=100, retry_initial_s=0.05, retry_max_s=0.4)
    exporter.export(make_spans(["held"], set()))
    time.sleep(1.5)
    exporter.shutdown()
    # It keeps trying (first export plus retries), but backs off: without backoff 1.5 s at
    # 0.05 s would be ~30 attempts. (A busy machine only makes the count smaller.)
    assert 2 <= len(attempts) <= 12, attempts
