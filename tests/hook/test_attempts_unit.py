"""The attempt rule's bookkeeping (llm_otel/attempts.py) on the shapes LiteLLM 1.108 sends."""

from __future__ import annotations

import time

from llm_otel import contract
from llm_otel.attempts import (
    OpenCalls,
    close_failed,
    close_succeeded,
    failed_attempts,
    request_key,
)
from llm_otel.attributes import LLMCall

# metadata.previous_models after primary failed three times and the fallback answered: the router
# appends the group's last failure a second time when it falls back.
FALLBACK_METADATA = {
    "original_model_group": "primary",
    "model_group": "backup",
    "attempted_fallbacks": 1,
    "previous_models": (
        *(
            {
                "model_group": "primary",
                "deployment_id": "d1",
                "model": "openai/primary-up",
                "exception_type": "InternalServerError",
                "attempted_retries": n,
            }
            for n in (0, 1, 2, 2)
        ),
    ),
}


def _call(error: str | None = None, start: int = 10, end: int = 20) -> LLMCall:
    attributes = {
        contract.GEN_AI_OPERATION_NAME: "chat",
        contract.GEN_AI_REQUEST_MODEL: "backup",
        contract.LITELLM_MODEL_GROUP: "backup",
    }
    if error:
        attributes[contract.ERROR_TYPE] = error
        attributes[contract.HTTP_RESPONSE_STATUS_CODE] = 500
    return LLMCall("chat backup", start, end, attributes, error_type=error)


def test_repeated_fallback_entry_is_one_attempt() -> None:
    attempts = failed_attempts(FALLBACK_METADATA)
    assert len(attempts) == 3
    assert {a.model_group for a in attempts} == {"primary"}


def test_success_after_fallback_names_what_was_asked_and_who_answered() -> None:
    first = _call("InternalServerError", start=5, end=7)
    call = close_succeeded(_call(start=30, end=40), FALLBACK_METADATA, first)
    assert call.name == "chat primary"
    assert call.attributes[contract.GEN_AI_REQUEST_MODEL] == "primary"
    assert call.attributes[contract.LITELLM_MODEL_GROUP] == "backup"
    assert call.attributes[contract.LITELLM_CALL_ATTEMPTS] == 4
    assert call.attributes[contract.LITELLM_CALL_FALLBACK] is True
    assert (call.start_ns, call.end_ns) == (5, 40)  # the whole logical call
    times = [t for t, _ in call.attempt_events]
    assert times == [7, 30, 30]  # the first failure's own end; the others before the answer
    assert call.attempt_events[0][1][contract.HTTP_RESPONSE_STATUS_CODE] == 500


def test_failed_call_keeps_its_last_failure_as_its_own_error() -> None:
    metadata = {**FALLBACK_METADATA, "attempted_fallbacks": 0, "model_group": "primary"}
    call = close_failed(
        _call("RateLimitError", start=5, end=7),
        metadata,
        None,
        error_type="InternalServerError",
        status_code=503,
        end_ns=50,
    )
    assert call.error_type == "InternalServerError"
    assert call.attributes[contract.HTTP_RESPONSE_STATUS_CODE] == 503
    assert call.attributes[contract.LITELLM_CALL_ATTEMPTS] == 3
    assert len(call.attempt_events) == 2
    assert (call.start_ns, call.end_ns) == (5, 50)


def test_open_calls_close_once_and_ignore_a_late_failure() -> None:
    calls = OpenCalls()
    first = _call("RateLimitError")
    assert calls.open("r1", first) == []
    assert calls.close("r1") == (True, first)
    assert calls.close("r1") == (False, None)  # a repeated terminal event
    assert calls.open("r1", _call("X")) == []  # a failure event after its call ended
    assert len(calls) == 0
    assert calls.close("r2") == (True, None)  # a success with no failure before it


def test_open_calls_hand_back_what_they_cannot_hold() -> None:
    calls = OpenCalls(limit=2, max_age_s=3600)
    held = [_call(f"E{i}") for i in range(3)]
    assert calls.open("a", held[0]) == []
    assert calls.open("b", held[1]) == []
    assert calls.open("c", held[2]) == [held[0]]  # oldest out, to be recorded as failed
    stale = OpenCalls(max_age_s=0.05)
    assert stale.open("x", held[0]) == []
    time.sleep(0.1)  # older than max_age_s whatever the machine's load
    assert stale.expired() == [held[0]]
    assert stale.close("x") == (False, None)  # recorded as failed: a late terminal event is not


def test_request_key_tells_requests_apart_when_either_id_is_shared() -> None:
    """A session or W3C trace id is shared by many requests; a call id a client may reuse."""
    one = request_key({"trace_id": "session", "litellm_call_id": "c1"})
    assert one != request_key({"trace_id": "session", "litellm_call_id": "c2"})
    assert one != request_key({"trace_id": "other", "litellm_call_id": "c1"})
    assert one == request_key({"trace_id": "session", "litellm_call_id": "c1", "id": "x"})


def test_health_metrics_read_the_hook_state() -> None:
    """The health instruments observe the exporter and the open calls as they are at export."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace.export import SpanExporter

    from llm_otel.health import HookHealth
    from llm_otel.resilient_export import ResilientSpanExporter

    reader = InMemoryMetricReader()
    health = HookHealth()
    health.register(MeterProvider(metric_readers=[reader]).get_meter("t"))

    def values() -> dict[str, float]:
        data = reader.get_metrics_data()
        return {
            m.name: p.value
            for rm in (data.resource_metrics if data else [])
            for sm in rm.scope_metrics
            for m in sm.metrics
            for p in m.data.data_points
        }

    assert contract.LLM_OTEL_SPANS_HELD not in values()  # nothing to observe yet
    health.exporter = ResilientSpanExporter(SpanExporter(), max_pending=10)
    health.open_calls = OpenCalls()
    health.refused_requests = 2
    got = values()
    assert got[contract.LLM_OTEL_SPANS_HELD] == 0 and got[contract.LLM_OTEL_CALLS_OPEN] == 0
    assert got[contract.LLM_OTEL_CALLS_EXPIRED] == 0  # an empty OpenCalls is still observed
    assert got[contract.LLM_OTEL_REQUESTS_REFUSED] == 2
    health.open_calls.open("k", _call("E"))
    assert values()[contract.LLM_OTEL_CALLS_OPEN] == 1
