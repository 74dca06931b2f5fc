"""The hook's own health as OpenTelemetry metrics (scope `llm_otel`): spans held for a collector
that did not take them, spans dropped, failed exports, calls still open. Observed by the SDK at
each metric export, never per call; the resource's `service.instance.id` tells replicas and
workers apart, so `make verify` reads each one's state (docs/CONTRACTS.md)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from . import contract
from .attempts import OpenCalls
from .resilient_export import ResilientSpanExporter
from .touchpoints import TOUCHPOINTS


@dataclass
class HookHealth:
    """What the callbacks read; filled in as the exporter and the logger come to exist."""

    exporter: ResilientSpanExporter | None = None
    open_calls: OpenCalls | None = None
    refused_requests: int = 0  # a key LiteLLM refused before any LLM call

    def _held(self, _: CallbackOptions) -> Iterable[Observation]:
        if self.exporter is not None:
            yield Observation(self.exporter.held)

    def _dropped(self, _: CallbackOptions) -> Iterable[Observation]:
        if self.exporter is not None:
            yield Observation(self.exporter.evicted)

    def _failed_exports(self, _: CallbackOptions) -> Iterable[Observation]:
        if self.exporter is not None:
            yield Observation(self.exporter.failed_exports)

    def _open_calls(self, _: CallbackOptions) -> Iterable[Observation]:
        if self.open_calls is not None:
            yield Observation(len(self.open_calls))

    def _expired_calls(self, _: CallbackOptions) -> Iterable[Observation]:
        if self.open_calls is not None:
            yield Observation(self.open_calls.expired_total)

    def _refused(self, _: CallbackOptions) -> Iterable[Observation]:
        yield Observation(self.refused_requests)

    def _missing_touchpoints(self, _: CallbackOptions) -> Iterable[Observation]:
        for name, count in TOUCHPOINTS.missing.items():
            yield Observation(count, {contract.LLM_OTEL_TOUCHPOINT: name})

    def register(self, meter: Meter) -> None:
        meter.create_observable_gauge(
            contract.LLM_OTEL_SPANS_HELD,
            [self._held],
            unit="{span}",
            description="Spans held for a collector that has not taken them yet.",
        )
        meter.create_observable_counter(
            contract.LLM_OTEL_SPANS_DROPPED,
            [self._dropped],
            unit="{span}",
            description="Spans dropped: buffer full, or refused by the collector too often.",
        )
        meter.create_observable_counter(
            contract.LLM_OTEL_EXPORTS_FAILED,
            [self._failed_exports],
            unit="{request}",
            description="Span exports the collector did not accept (each is retried).",
        )
        meter.create_observable_gauge(
            contract.LLM_OTEL_CALLS_OPEN,
            [self._open_calls],
            unit="{call}",
            description="Calls with a failed attempt waiting for LiteLLM's terminal event.",
        )
        meter.create_observable_counter(
            contract.LLM_OTEL_CALLS_EXPIRED,
            [self._expired_calls],
            unit="{call}",
            description="Calls recorded as failed because no terminal event came in time.",
        )
        meter.create_observable_counter(
            contract.LLM_OTEL_REQUESTS_REFUSED,
            [self._refused],
            unit="{request}",
            description="Requests whose key LiteLLM refused before any LLM call.",
        )
        meter.create_observable_counter(
            contract.LLM_OTEL_TOUCHPOINTS_MISSING,
            [self._missing_touchpoints],
            unit="{event}",
            description="Calls on which a LiteLLM internal the hook reads was missing.",
        )


HEALTH = HookHealth()
