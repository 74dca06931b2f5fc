"""The LiteLLM callback that turns each LLM call into one GenAI span plus GenAI metrics.

Built only after `litellm` is imported (its import costs seconds; `sitecustomize` must not pay
that in every Python process), by `make_logger()`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from . import contract
from .attempts import OpenCalls, close_failed, close_succeeded, request_key
from .attributes import LLMCall, from_payload, from_rejected_request, metric_attributes

log = logging.getLogger("llm_otel")

# Bucket boundaries advised by the GenAI metric conventions.
_TOKEN_BUCKETS = (
    1,
    4,
    16,
    64,
    256,
    1024,
    4096,
    16384,
    65536,
    262144,
    1048576,
    4194304,
    16777216,
    67108864,
)
_DURATION_BUCKETS = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)


class GenAITelemetry:
    """Emits the span and metrics for an `LLMCall`; independent of LiteLLM's classes."""

    def __init__(self, capture_content: bool) -> None:
        self.capture_content = capture_content
        # The version fills ClickHouse's ScopeVersion: which span contract a stored row follows.
        self.tracer = trace.get_tracer(
            contract.SCOPE_NAME, contract.SCOPE_VERSION, schema_url=contract.SCHEMA_URL
        )
        meter = metrics.get_meter(
            contract.SCOPE_NAME, contract.SCOPE_VERSION, schema_url=contract.SCHEMA_URL
        )
        self.token_usage = meter.create_histogram(
            contract.GEN_AI_CLIENT_TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
        )
        self.duration = meter.create_histogram(
            contract.GEN_AI_CLIENT_OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self.cost = meter.create_counter(
            contract.GEN_AI_CLIENT_COST,
            unit="USD",
            description="Cost of GenAI calls as priced by LiteLLM.",
        )
        self.time_to_first_chunk = meter.create_histogram(
            contract.GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK,
            unit="s",
            description="Time to receive the first chunk of a streamed response.",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )

    def emit(self, call: LLMCall) -> None:
        # No explicit context: the current one is the request's server span, whose contextvars
        # LiteLLM copies into its logging task, so the LLM span joins the caller's trace.
        span = self.tracer.start_span(
            call.name,
            kind=SpanKind.CLIENT,
            start_time=call.start_ns or None,
            attributes=call.attributes,
        )
        for timestamp_ns, event_attributes in call.attempt_events:
            span.add_event(contract.LITELLM_ATTEMPT_FAILED, event_attributes, timestamp_ns)
        if call.error_type:
            span.set_status(Status(StatusCode.ERROR, call.error_type))
        span.end(end_time=call.end_ns or None)

        labels = metric_attributes(call)
        self.duration.record(call.duration_s, labels)
        if call.error_type is None:
            for token_type, key in (
                ("input", contract.GEN_AI_USAGE_INPUT_TOKENS),
                ("output", contract.GEN_AI_USAGE_OUTPUT_TOKENS),
            ):
                self.token_usage.record(
                    call.attributes.get(key, 0), {**labels, contract.GEN_AI_TOKEN_TYPE: token_type}
                )
            cost = call.attributes.get(contract.GEN_AI_USAGE_COST)
            if cost:
                self.cost.add(cost, labels)
            first_chunk = call.attributes.get(contract.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK)
            if first_chunk is not None:
                self.time_to_first_chunk.record(first_chunk, labels)


# Proxy refusals that are about the caller, not an LLM call (LiteLLM's ProxyException.type):
# without a database a wrong key is answered "no_db_connection" with code 400.
_NOT_LLM_CALLS = frozenset({"auth_error", "no_db_connection"})


def _status_code(exc: BaseException) -> int | None:
    for attr in ("status_code", "code"):
        value = getattr(exc, attr, None)
        try:
            return int(value)
        except (TypeError, ValueError):
            continue
    return None


def _refused_caller(exc: BaseException | None) -> bool:
    """LiteLLM logs a refused key as a failed call; it is not one (the server span has it)."""
    if exc is None:
        return False
    kind = getattr(exc, "type", None)
    kind = getattr(kind, "value", kind)  # LiteLLM's ProxyErrorTypes is an Enum
    return str(kind or "") in _NOT_LLM_CALLS or _status_code(exc) in (401, 403)


def _request_metadata(kwargs: Mapping[str, Any]) -> Mapping[str, Any]:
    """The router's metadata of this request (attempts, fallbacks): litellm_params.metadata."""
    params = kwargs.get("litellm_params")
    metadata = params.get("metadata") if isinstance(params, Mapping) else None
    return metadata if isinstance(metadata, Mapping) else {}


def make_logger(capture_content: bool) -> Any:
    from litellm.integrations.custom_logger import CustomLogger

    telemetry = GenAITelemetry(capture_content)
    open_calls = OpenCalls()

    def emit_all(calls: list[LLMCall]) -> None:
        for call in calls:
            telemetry.emit(call)

    class GenAISpanLogger(CustomLogger):
        """Registered once per process; LiteLLM calls it for every LLM call it makes.

        A success event closes its call; a failure event only opens one, since LiteLLM may still
        retry or fall back; the proxy's failure hook closes a call the client got an error for.
        """

        def _record(self, kwargs: dict[str, Any], response_obj: Any) -> None:
            try:
                payload = kwargs.get("standard_logging_object")
                if not payload or _refused_caller(kwargs.get("exception")):
                    return
                call = from_payload(
                    payload,
                    response_obj,
                    capture_content=telemetry.capture_content,
                    fallback_model=kwargs.get("model"),
                )
                if call is None:  # a route LiteLLM logged, not an LLM call
                    return
                key = request_key(payload)
                if call.error_type is not None:
                    emit_all(open_calls.open(key, call))
                    return
                fresh, first_failure = open_calls.close(key)
                if fresh:
                    telemetry.emit(close_succeeded(call, _request_metadata(kwargs), first_failure))
                emit_all(open_calls.expired())
            except Exception:
                log.exception("llm_otel: could not record an LLM call")

        async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):  # type: ignore[no-untyped-def]
            self._record(kwargs, response_obj)

        async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):  # type: ignore[no-untyped-def]
            self._record(kwargs, response_obj)

        def log_success_event(self, kwargs, response_obj, start_time, end_time):  # type: ignore[no-untyped-def]
            self._record(kwargs, response_obj)

        def log_failure_event(self, kwargs, response_obj, start_time, end_time):  # type: ignore[no-untyped-def]
            self._record(kwargs, response_obj)

        async def async_post_call_failure_hook(  # type: ignore[no-untyped-def]
            self, request_data, original_exception, user_api_key_dict, traceback_str=None
        ):
            # The client got an error: close the call. Requests the proxy rejected before any
            # provider call (bad parameters, unknown model) never had a failure event; record
            # them from the request. Auth failures are not LLM calls (the server span has them).
            try:
                if not isinstance(request_data, dict) or not request_data.get("model"):
                    return None
                if _refused_caller(original_exception):
                    return None
                now = time.time_ns()
                payload = request_data.get("standard_logging_object")
                call = None
                if isinstance(payload, Mapping) and payload.get("status") == "failure":
                    call = from_payload(
                        payload,
                        None,
                        capture_content=telemetry.capture_content,
                        fallback_model=request_data.get("model"),
                    )
                if call is None:
                    server_span = trace.get_current_span()
                    start_ns = getattr(server_span, "start_time", None) or now
                    call = from_rejected_request(
                        request_data,
                        type(original_exception).__name__,
                        _status_code(original_exception),
                        start_ns=start_ns,
                        end_ns=now,
                    )
                    telemetry.emit(call)
                    return None
                fresh, first_failure = open_calls.close(request_key(payload))
                if fresh:
                    telemetry.emit(
                        close_failed(
                            call,
                            request_data.get("metadata"),
                            first_failure,
                            error_type=type(original_exception).__name__,
                            status_code=_status_code(original_exception),
                            end_ns=now,
                        )
                    )
            except Exception:
                log.exception("llm_otel: could not record a failed call")
            return None

    return GenAISpanLogger()
