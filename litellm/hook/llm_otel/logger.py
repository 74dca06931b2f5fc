"""The LiteLLM callback that turns each client request for an LLM call into one GenAI span.

Built only after `litellm` is imported (its import costs seconds; `sitecustomize` must not pay
that in every Python process), by `make_logger()`.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.propagate import extract
from opentelemetry.trace import SpanKind, Status, StatusCode

from . import contract
from .attempts import OpenCalls, close_failed, close_succeeded, request_key
from .attributes import (
    LLMCall,
    apply_request_headers,
    from_payload,
    from_rejected_request,
    request_headers,
)
from .capture import CapturePolicy
from .health import HEALTH
from .touchpoints import TOUCHPOINTS

log = logging.getLogger("llm_otel")


class GenAITelemetry:
    """Emits the span for an `LLMCall`; independent of LiteLLM's classes.

    No metric is recorded here: the collector derives the GenAI metrics from these spans
    (otel-collector/config.yaml, `signaltometrics/genai`), so a call costs the gateway one span.
    """

    def __init__(self, capture_content: bool | CapturePolicy) -> None:
        if isinstance(capture_content, CapturePolicy) and not capture_content.selective:
            capture_content = capture_content.everywhere  # a plain flag: no check per call
        self.capture_content: bool | CapturePolicy = capture_content
        # The version fills ClickHouse's ScopeVersion: which span contract a stored row follows.
        self.tracer = trace.get_tracer(
            contract.SCOPE_NAME, contract.SCOPE_VERSION, schema_url=contract.SCHEMA_URL
        )

    def emit(self, call: LLMCall) -> None:
        # The caller's trace context from its request headers; without one, the current context
        # (LiteLLM copies the request's contextvars into its logging task).
        parent = extract(call.caller_headers) if call.caller_headers else None
        span = self.tracer.start_span(
            call.name,
            context=parent,
            kind=SpanKind.CLIENT,
            start_time=call.start_ns or None,
            attributes=call.attributes,
        )
        for timestamp_ns, event_attributes in call.attempt_events:
            span.add_event(contract.LITELLM_ATTEMPT_FAILED, event_attributes, timestamp_ns)
        if call.error_type:
            span.set_status(Status(StatusCode.ERROR, call.error_type))
        span.end(end_time=call.end_ns or None)


# Proxy refusals that are about the caller, not an LLM call (LiteLLM's ProxyException.type):
# without a database a wrong key is answered "no_db_connection" with code 400.
_NOT_LLM_CALLS = frozenset({"auth_error", "no_db_connection"})


def _status_code(exc: BaseException) -> int | None:
    for attr in ("status_code", "code"):
        value: Any = getattr(exc, attr, None)  # whatever it is, int() decides
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


def _request_start_ns(request_data: Mapping[str, Any]) -> int | None:
    """When the proxy took the request (its `start_time`), if it recorded one."""
    start = request_data.get("start_time")
    if isinstance(start, datetime.datetime):
        return int(start.timestamp() * 1e9)  # a naive value is local time, as timestamp() reads it
    return None


def _request_metadata(kwargs: Mapping[str, Any]) -> Mapping[str, Any]:
    """The router's metadata of this request (attempts, fallbacks): litellm_params.metadata."""
    params = kwargs.get("litellm_params")
    metadata = params.get("metadata") if isinstance(params, Mapping) else None
    return metadata if isinstance(metadata, Mapping) else {}


class CallRecorder:
    """What LiteLLM's events make of the spans; independent of LiteLLM's classes.

    A success event closes its call; a failure event only opens one, since LiteLLM may still
    retry or fall back; the proxy's failure hook closes a call the client got an error for.
    """

    def __init__(self, telemetry: GenAITelemetry, open_calls: OpenCalls) -> None:
        self.telemetry = telemetry
        self.open_calls = open_calls

    def _emit_all(self, calls: list[LLMCall]) -> None:
        for call in calls:
            self.telemetry.emit(call)

    def record(self, kwargs: dict[str, Any], response_obj: Any) -> None:
        """A success or failure event of one LLM call (attempt)."""
        try:
            payload = kwargs.get("standard_logging_object")
            if not payload:
                TOUCHPOINTS.report("kwargs.standard_logging_object")
                return
            if _refused_caller(kwargs.get("exception")):
                return
            TOUCHPOINTS.check_payload(payload)
            call = from_payload(
                payload,
                response_obj,
                capture_content=self.telemetry.capture_content,
                fallback_model=kwargs.get("model"),
            )
            if call is None:  # a route LiteLLM logged, not an LLM call
                return
            key = request_key(payload)
            metadata = _request_metadata(kwargs)
            apply_request_headers(call, request_headers(metadata))
            if call.error_type is not None:
                self._emit_all(self.open_calls.open(key, call))
                return
            fresh, first_failure = self.open_calls.close(key)
            if fresh:
                self.telemetry.emit(close_succeeded(call, _request_metadata(kwargs), first_failure))
            self._emit_all(self.open_calls.expired())
        except Exception:
            log.exception("llm_otel: could not record an LLM call")

    def record_client_error(self, request_data: Any, exc: Any) -> None:
        """The client got an error: close the call. Requests the proxy rejected before any
        provider call (bad parameters, unknown model) never had a failure event; record them
        from the request. A refused key is no LLM call: only counted."""
        try:
            if _refused_caller(exc):
                HEALTH.refused_requests += 1
                return
            if not isinstance(request_data, dict) or not request_data.get("model"):
                return
            call = self._failed_call(request_data, exc, time.time_ns())
            if call is not None:
                self.telemetry.emit(call)
        except Exception:
            log.exception("llm_otel: could not record a failed call")

    def _failed_call(
        self, request_data: dict[str, Any], exc: BaseException, now: int
    ) -> LLMCall | None:
        """The failed call's record; None when its terminal event was recorded already."""
        payload = request_data.get("standard_logging_object")
        call = None
        if isinstance(payload, Mapping) and payload.get("status") == "failure":
            call = from_payload(
                payload,
                None,
                capture_content=self.telemetry.capture_content,
                fallback_model=request_data.get("model"),
            )
        if call is None or not isinstance(payload, Mapping):
            call = from_rejected_request(
                request_data,
                type(exc).__name__,
                _status_code(exc),
                start_ns=_request_start_ns(request_data) or now,
                end_ns=now,
            )
        else:
            fresh, first_failure = self.open_calls.close(request_key(payload))
            if not fresh:
                return None
            call = close_failed(
                call,
                request_data.get("metadata"),
                first_failure,
                error_type=type(exc).__name__,
                status_code=_status_code(exc),
                end_ns=now,
            )
        apply_request_headers(
            call,
            request_headers(request_data.get("metadata"), request_data.get("proxy_server_request")),
        )
        return call


def make_logger(capture_content: bool | CapturePolicy) -> Any:
    from litellm.integrations.custom_logger import CustomLogger

    open_calls = OpenCalls()
    HEALTH.open_calls = open_calls
    recorder = CallRecorder(GenAITelemetry(capture_content), open_calls)

    class GenAISpanLogger(CustomLogger):
        """Registered once per process; LiteLLM calls it for every LLM call it makes.

        Typed loosely on purpose: LiteLLM passes its own objects, and CallRecorder checks them.
        """

        async def async_log_success_event(
            self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
        ) -> None:
            recorder.record(kwargs, response_obj)

        async def async_log_failure_event(
            self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
        ) -> None:
            recorder.record(kwargs, response_obj)

        def log_success_event(
            self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
        ) -> None:
            recorder.record(kwargs, response_obj)

        def log_failure_event(
            self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
        ) -> None:
            recorder.record(kwargs, response_obj)

        async def async_post_call_failure_hook(
            self,
            request_data: Any,
            original_exception: Any,
            user_api_key_dict: Any,
            traceback_str: str | None = None,
        ) -> None:
            recorder.record_client_error(request_data, original_exception)

    return GenAISpanLogger()
