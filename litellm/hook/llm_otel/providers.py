"""Create the global tracer and meter providers from the standard OTEL_* variables."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from . import contract
from .health import HEALTH
from .resilient_export import ResilientSpanExporter
from .settings import DEFAULT_SERVICE_NAME, Settings, TelemetryConfigError


@dataclass
class Providers:
    tracer_provider: TracerProvider | None
    meter_provider: MeterProvider | None


def build_resource() -> Resource:
    # Resource.create() already merges OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME; we only
    # fill the gaps. Each uvicorn worker is its own process and gets its own instance id.
    detected = Resource.create({SERVICE_INSTANCE_ID: f"{socket.gethostname()}-{os.getpid()}"})
    if str(detected.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        detected = detected.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    return detected


def _exporters(protocol: str) -> tuple[Callable[[], SpanExporter], type]:
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
                OTLPMetricExporter,
            )
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        except ImportError as exc:
            # The SDK would fall back to a no-op provider here without a word.
            raise TelemetryConfigError(
                "OTEL_EXPORTER_OTLP_PROTOCOL=grpc but the gRPC exporter is not installed in "
                "this image; set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf (port 4318)"
            ) from exc
        return OTLPSpanExporter, OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    from .lean_exporter import lean_or_sdk

    # The same OTLP/HTTP requests, encoded without building protobuf objects (lean_exporter).
    return lean_or_sdk, OTLPMetricExporter


def install_providers(settings: Settings) -> Providers:
    make_span_exporter, metric_exporter_cls = _exporters(settings.protocol)
    resource = build_resource()
    tracer_provider = None
    meter_provider = None
    if settings.traces_enabled:
        # The sampler comes from OTEL_TRACES_SAMPLER(_ARG), read by TracerProvider itself.
        tracer_provider = TracerProvider(resource=resource)
        exporter = ResilientSpanExporter(make_span_exporter(), settings.max_queue_size)
        HEALTH.exporter = exporter
        tracer_provider.add_span_processor(
            BatchSpanProcessor(
                exporter,
                max_queue_size=settings.max_queue_size,
                schedule_delay_millis=settings.schedule_delay_ms,
            )
        )
        trace.set_tracer_provider(tracer_provider)
    if settings.metrics_enabled:
        # Export interval from OTEL_METRIC_EXPORT_INTERVAL (ms), read by the reader itself.
        reader = PeriodicExportingMetricReader(metric_exporter_cls())
        meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
        metrics.set_meter_provider(meter_provider)
        # The hook's own health; the GenAI metrics are derived from the spans by the collector.
        HEALTH.register(
            meter_provider.get_meter(
                contract.SCOPE_NAME, contract.SCOPE_VERSION, schema_url=contract.SCHEMA_URL
            )
        )
    return Providers(tracer_provider=tracer_provider, meter_provider=meter_provider)
