"""A span exporter that keeps what the collector could not take, and sends it when it is back.

The SDK's OTLP exporter gives up on a batch after its timeout, so a collector restart of a few
seconds loses every span in flight. This wrapper holds failed batches in a bounded buffer and
sends them first on the next export. It does not wait for new traffic to carry them: while it
holds spans, a background thread retries with a bounded backoff, so a gateway that went quiet
during an outage still delivers its last calls within seconds of the collector's return. When the
buffer is full it evicts HTTP server spans before LLM spans: the LLM span is the record that
matters.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .contract import GEN_AI_OPERATION_NAME

log = logging.getLogger("llm_otel")


def is_llm_span(span: ReadableSpan) -> bool:
    return bool(span.attributes and GEN_AI_OPERATION_NAME in span.attributes)


class ResilientSpanExporter(SpanExporter):
    def __init__(
        self,
        inner: SpanExporter,
        max_pending: int,
        chunk: int = 512,
        max_attempts: int = 30,
        retry_initial_s: float = 1.0,
        retry_max_s: float = 5.0,
    ) -> None:
        self._inner = inner
        # The inner exporter retries for its own timeout (10 s by default) per attempt, so 30
        # attempts ride out ~5 minutes of outage; a batch the collector keeps refusing while
        # reachable (too large, malformed) is dropped after that instead of blocking forever.
        self._max_attempts = max_attempts
        self._head_failures = 0
        self._max_pending = max_pending
        self._chunk = chunk
        self._pending: list[ReadableSpan] = []
        self._lock = threading.Lock()
        self._outage = False
        self.evicted = 0
        self.failed_exports = 0
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._closed = threading.Event()
        self._retrier: threading.Thread | None = None

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            self._pending.extend(spans)
            self._evict()
            while self._pending:
                batch = self._pending[: self._chunk]
                if self._inner.export(batch) is not SpanExportResult.SUCCESS:
                    self.failed_exports += 1
                    self._head_failures += 1
                    if self._head_failures < self._max_attempts:
                        self._note_outage()
                        return SpanExportResult.FAILURE
                    log.error(
                        "llm_otel: dropped %d spans after %d failed exports",
                        len(batch),
                        self._head_failures,
                    )
                    self.evicted += len(batch)
                del self._pending[: len(batch)]
                self._head_failures = 0
            if self._outage:
                self._outage = False
                log.warning("llm_otel: collector reachable again; buffered spans sent")
            return SpanExportResult.SUCCESS

    def _note_outage(self) -> None:
        if not self._outage:
            self._outage = True
            log.warning(
                "llm_otel: collector unreachable; holding up to %d spans until it is back",
                self._max_pending,
            )
        # Called with the lock held: the retrier checks `_pending` under the same lock before it
        # ends, so there is never a held span without a live retrier.
        if self._retrier is None and not self._closed.is_set():
            self._retrier = threading.Thread(
                target=self._retry_held, name="llm_otel-retry", daemon=True
            )
            self._retrier.start()

    def _retry_held(self) -> None:
        delay = self._retry_initial_s
        while not self._closed.wait(delay):
            with self._lock:
                if not self._pending:
                    self._retrier = None
                    return
            delivered = self.export(()) is SpanExportResult.SUCCESS
            delay = self._retry_initial_s if delivered else min(delay * 2, self._retry_max_s)
        with self._lock:
            self._retrier = None

    def _evict(self) -> None:
        excess = len(self._pending) - self._max_pending
        if excess <= 0:
            return
        keep_llm = [s for s in self._pending if is_llm_span(s)]
        others = [s for s in self._pending if not is_llm_span(s)]
        drop_others = min(excess, len(others))
        others = others[drop_others:]
        drop_llm = excess - drop_others
        keep_llm = keep_llm[drop_llm:]
        kept = {id(s) for s in keep_llm} | {id(s) for s in others}
        self._pending = [s for s in self._pending if id(s) in kept]
        self.evicted += excess
        log.warning("llm_otel: span buffer full; dropped %d spans (%d LLM spans)", excess, drop_llm)

    @property
    def held(self) -> int:
        """Spans waiting for the collector (read without the lock: a metric, not a decision)."""
        return len(self._pending)

    def shutdown(self) -> None:
        # One last try for what is still held (e.g. `docker compose stop` during an outage).
        self._closed.set()
        with self._lock:
            while self._pending:
                batch = self._pending[: self._chunk]
                if self._inner.export(batch) is not SpanExportResult.SUCCESS:
                    log.error(
                        "llm_otel: shutting down with %d spans the collector never took",
                        len(self._pending),
                    )
                    break
                del self._pending[: len(batch)]
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)
