"""The SDK's OTLP/HTTP span exporter with the request body written by `otlp_protobuf`, sent
through the SDK's urllib3 transport.

Everything else stays the SDK's: endpoint, headers, compression, timeout and retries from the
standard OTEL_EXPORTER_OTLP_* variables, the request size limit, the exporter's own metrics when
switched on. The transport is the SDK's own `Urllib3HTTPTransport` (half the CPU per POST of its
default, `requests`: ~0.3 ms instead of ~0.6 ms here) given the TLS files the SDK would read.
Unlike `requests`, it never routes spans through HTTP(S)_PROXY: a proxy set for the gateway's
provider traffic does not carry its telemetry. With a credential provider configured
(OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER, a `requests` session), the SDK's
transport is kept. The export steps below follow the SDK's `OTLPSpanExporter.export`
(opentelemetry-exporter-otlp-proto-http 1.45.2, pinned in litellm/requirements.txt) and use
four of its private members; `supported()` checks they are there, and the hook falls back to the
SDK's exporter unchanged when they are not, counted as a missing touchpoint
(docs/LITELLM_TOUCHPOINTS.md; tests/hook/test_otlp_protobuf.py pins both).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.environment_variables import (
    _OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER,
    OTEL_EXPORTER_OTLP_CERTIFICATE,
    OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE,
    OTEL_EXPORTER_OTLP_CLIENT_KEY,
    OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE,
    OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE,
    OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from .otlp_protobuf import encode_spans
from .touchpoints import TOUCHPOINTS

log = logging.getLogger("llm_otel")

_SDK_MEMBERS = ("_client", "_metrics", "_max_request_size", "_shutdown")


class LeanOTLPSpanExporter(OTLPSpanExporter):
    def supported(self) -> bool:
        """Whether this SDK version still has the members `export` relies on."""
        return all(hasattr(self, name) for name in _SDK_MEMBERS) and hasattr(self._client, "export")

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            log.warning("llm_otel: exporter already shut down, batch ignored")
            return SpanExportResult.FAILURE
        with self._metrics.export_operation(len(spans)) as result:
            try:
                body = encode_spans(spans)
            except Exception as exc:  # noqa: BLE001 - one bad batch must not stop the next
                log.error("llm_otel: could not encode a span batch: %s", exc)
                result.error = exc
                return SpanExportResult.FAILURE
            if 0 < self._max_request_size < len(body):
                log.warning(
                    "llm_otel: span batch of %d bytes dropped: above the exporter's limit of %d",
                    len(body),
                    self._max_request_size,
                )
                result.error = ValueError("request too large")
                return SpanExportResult.FAILURE
            sent = self._client.export(body)
            if not sent.success:
                result.error = sent.error
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS


def _env(*names: str) -> str | None:
    return next((os.environ[n] for n in names if os.environ.get(n)), None)


def urllib3_transport() -> Any:
    """The SDK's urllib3 transport with the TLS settings its exporter reads from the environment
    (the signal's variable first, then the generic one); None when a credential provider asks
    for the SDK's `requests` session."""
    if os.environ.get(_OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER):
        return None
    from opentelemetry.exporter.http.transport._urllib3 import Urllib3HTTPTransport

    ca_file = _env(OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE, OTEL_EXPORTER_OTLP_CERTIFICATE)
    key = _env(OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY, OTEL_EXPORTER_OTLP_CLIENT_KEY)
    cert = _env(OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE, OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE)
    return Urllib3HTTPTransport(verify=ca_file or True, cert=(cert, key) if cert and key else cert)


def lean_or_sdk() -> OTLPSpanExporter:
    """The lean exporter when this SDK supports it, else the SDK's own."""
    try:
        exporter = LeanOTLPSpanExporter(_transport=urllib3_transport())
        if exporter.supported():
            return exporter
    except (ImportError, TypeError, AttributeError):  # the SDK moved what this module uses
        pass
    # Counted like a LiteLLM internal that moved: the spans still flow, only slower.
    TOUCHPOINTS.report("opentelemetry-exporter-otlp-proto-http.OTLPSpanExporter._client")
    return OTLPSpanExporter()
