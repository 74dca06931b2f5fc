"""The hook's own health as OpenTelemetry metrics (scope `llm_otel`): spans held for a collector
that did not take them, spans dropped, failed exports, calls still open. Observed by the SDK at
each metric export, never per call; the resource's `service.instance.id` tells replicas and
workers apart, so `make verify` reads each one's state (docs/CONTRACTS.md)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
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

    def register(self, meter: Meter) -> None:
        def one(value: Callable[[], int | None]) -> Callable[[], list[Observation]]:
            return lambda: [] if (v := value()) is None else [Observation(v)]

        # (create the instrument, its name, unit, description, what it observes)
        instruments: tuple[
            tuple[Callable[..., object], str, str, str, Callable[[], list[Observation]]], ...
        ] = (
            (
                meter.create_observable_gauge,
                contract.LLM_OTEL_SPANS_HELD,
                "{span}",
                "Spans held for a collector that has not taken them yet.",
                one(lambda: None if (e := self.exporter) is None else e.held),
            ),
            (
                meter.create_observable_counter,
                contract.LLM_OTEL_SPANS_DROPPED,
                "{span}",
                "Spans dropped: buffer full, or refused by the collector too often.",
                one(lambda: None if (e := self.exporter) is None else e.evicted),
            ),
            (
                meter.create_observable_counter,
                contract.LLM_OTEL_EXPORTS_FAILED,
                "{request}",
                "Span exports the collector did not accept (each is retried).",
                one(lambda: None if (e := self.exporter) is None else e.failed_exports),
            ),
            (
                meter.create_observable_gauge,
                contract.LLM_OTEL_CALLS_OPEN,
                "{call}",
                "Calls with a failed attempt waiting for LiteLLM's terminal event.",
                one(lambda: None if (c := self.open_calls) is None else len(c)),
            ),
            (
                meter.create_observable_counter,
                contract.LLM_OTEL_CALLS_EXPIRED,
                "{call}",
                "Calls recorded as failed because no terminal event came in time.",
                one(lambda: None if (c := self.open_calls) is None else c.expired_total),
            ),
            (
                meter.create_observable_counter,
                contract.LLM_OTEL_REQUESTS_REFUSED,
                "{request}",
                "Requests whose key LiteLLM refused before any LLM call.",
                one(lambda: self.refused_requests),
            ),
            (
                meter.create_observable_counter,
                contract.LLM_OTEL_TOUCHPOINTS_MISSING,
                "{event}",
                "Calls on which a LiteLLM internal the hook reads was missing.",
                lambda: [
                    Observation(count, {contract.LLM_OTEL_TOUCHPOINT: name})
                    for name, count in TOUCHPOINTS.missing.items()
                ],
            ),
        )
        for create, name, unit, description, read in instruments:
            create(name, [_callback(read)], unit=unit, description=description)


def _callback(
    read: Callable[[], list[Observation]],
) -> Callable[[CallbackOptions], Iterable[Observation]]:
    return lambda _options: read()


HEALTH = HookHealth()
