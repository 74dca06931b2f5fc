"""The real LiteLLM proxy with the hook sends one correct GenAI span per call (issue #2)."""

from __future__ import annotations

import secrets

import pytest

from llm_otel import contract
from llm_otel.attributes import WELL_KNOWN_OPERATIONS
from scripts.native_stack.harness import MOCK_MODEL, PROVIDER_MODEL, NativeStack
from scripts.native_stack.otlp import Span
from tests.support.genai_conformance import assert_conformant
from tests.support.traceparent import new_traceparent

CLIENT = 3  # OTLP span kind
STATUS_ERROR = 2


def only_llm_span(stack: NativeStack, trace_id: str) -> Span:
    spans = stack.wait_for_llm_spans(1, where=lambda s: s.trace_id == trace_id)
    assert len(spans) == 1, f"expected one LLM span in trace {trace_id}, got {spans}"
    return spans[0]


def test_plain_call_through_provider_path(default_stack: NativeStack) -> None:
    trace_id, header = new_traceparent()
    response = default_stack.chat(PROVIDER_MODEL, "hi", headers={"traceparent": header})
    assert response.status_code == 200, response.text
    usage = response.json()["usage"]
    span = only_llm_span(default_stack, trace_id)
    a = span.attributes
    assert span.name == f"chat {PROVIDER_MODEL}"
    assert span.kind == CLIENT
    # The scope says which span contract the span follows (ClickHouse's ScopeVersion column).
    assert (span.scope, span.scope_version) == (contract.SCOPE_NAME, contract.SCOPE_VERSION)
    assert span.schema_url == contract.SCHEMA_URL
    assert a[contract.GEN_AI_OPERATION_NAME] == "chat"
    assert a[contract.GEN_AI_PROVIDER_NAME] == "openrouter"
    assert a[contract.GEN_AI_REQUEST_MODEL] == PROVIDER_MODEL
    assert a[contract.GEN_AI_RESPONSE_MODEL]
    assert a[contract.GEN_AI_RESPONSE_ID] == response.json()["id"]
    assert a[contract.GEN_AI_RESPONSE_FINISH_REASONS] == ["stop"]
    assert a[contract.GEN_AI_USAGE_INPUT_TOKENS] == usage["prompt_tokens"]
    assert a[contract.GEN_AI_USAGE_OUTPUT_TOKENS] == usage["completion_tokens"]
    assert contract.GEN_AI_REQUEST_STREAM not in a  # set only when the request streams
    assert contract.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK not in a
    assert a[contract.LITELLM_MODEL_GROUP] == PROVIDER_MODEL
    assert a[contract.LITELLM_CALL_ID] == response.headers["x-litellm-call-id"]
    assert a[contract.LITELLM_API_KEY_HASH]
    assert span.resource["service.name"] == "litellm-proxy"
    assert span.resource["service.instance.id"]


def test_mock_model_cost_matches_response_header(default_stack: NativeStack) -> None:
    trace_id, header = new_traceparent()
    response = default_stack.chat(MOCK_MODEL, headers={"traceparent": header})
    assert response.status_code == 200, response.text
    cost = float(response.headers["x-litellm-response-cost"])
    assert cost > 0
    span = only_llm_span(default_stack, trace_id)
    assert span.attributes[contract.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(cost)
    usage = response.json()["usage"]
    expected = usage["prompt_tokens"] * 1e-6 + usage["completion_tokens"] * 2e-6
    assert cost == pytest.approx(expected)


def test_llm_span_continues_the_callers_trace(default_stack: NativeStack) -> None:
    """The caller's traceparent, read from the headers LiteLLM records, parents the LLM span;
    FastAPI's own spans are off, so the LLM span is the gateway's only span in the trace."""
    trace_id, header = new_traceparent()
    caller_span_id = header.split("-")[2]
    assert default_stack.chat(MOCK_MODEL, headers={"traceparent": header}).status_code == 200
    llm = only_llm_span(default_stack, trace_id)
    assert llm.parent_span_id == caller_span_id
    assert [s.span_id for s in default_stack.spans() if s.trace_id == trace_id] == [llm.span_id]


def test_without_a_traceparent_the_llm_span_starts_a_trace(default_stack: NativeStack) -> None:
    response = default_stack.chat(MOCK_MODEL, "no caller trace")
    call_id = response.headers["x-litellm-call-id"]
    (span,) = default_stack.wait_for_llm_spans(
        1, where=lambda s: s.attributes.get(contract.LITELLM_CALL_ID) == call_id
    )
    assert span.parent_span_id == ""


def test_streamed_call_has_time_to_first_chunk(default_stack: NativeStack) -> None:
    trace_id, header = new_traceparent()
    response = default_stack.chat(
        PROVIDER_MODEL, "[[delay=0.3]] stream please", stream=True, headers={"traceparent": header}
    )
    assert response.status_code == 200
    assert "data: [DONE]" in response.text
    a = only_llm_span(default_stack, trace_id).attributes
    assert a[contract.GEN_AI_REQUEST_STREAM] is True
    assert a[contract.GEN_AI_USAGE_OUTPUT_TOKENS] > 0
    assert 0.25 <= a[contract.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] < 10


def test_upstream_500_is_an_error_span(default_stack: NativeStack) -> None:
    trace_id, header = new_traceparent()
    response = default_stack.chat(
        PROVIDER_MODEL, "[[status=500]] fail", headers={"traceparent": header}
    )
    assert response.status_code >= 500
    span = only_llm_span(default_stack, trace_id)
    assert span.status_code == STATUS_ERROR
    assert span.attributes[contract.ERROR_TYPE]
    assert span.attributes[contract.GEN_AI_REQUEST_MODEL] == PROVIDER_MODEL
    # The full record from LiteLLM's failure event, not a bare "rejected request" one.
    assert span.attributes[contract.GEN_AI_PROVIDER_NAME] == "openrouter"
    assert span.attributes[contract.LITELLM_CALL_ID]


def test_bad_request_is_an_error_span(default_stack: NativeStack) -> None:
    trace_id, header = new_traceparent()
    response = default_stack.chat("no-such-model", headers={"traceparent": header})
    assert response.status_code == 400
    span = only_llm_span(default_stack, trace_id)
    assert span.status_code == STATUS_ERROR
    assert span.attributes[contract.ERROR_TYPE]
    assert span.attributes[contract.GEN_AI_REQUEST_MODEL] == "no-such-model"


def test_health_probes_make_no_spans(default_stack: NativeStack) -> None:
    import httpx

    before = len(default_stack.spans())
    for path in ("/health/liveliness", "/health/readiness"):
        assert httpx.get(default_stack.proxy_url + path, timeout=10).status_code == 200
    trace_id, header = new_traceparent()
    default_stack.chat(MOCK_MODEL, headers={"traceparent": header})
    only_llm_span(default_stack, trace_id)
    new = default_stack.spans()[before:]
    assert not [s for s in new if "health" in str(s.attributes.get("url.path", ""))]


def test_no_litellm_redaction_without_other_loggers(default_stack: NativeStack) -> None:
    """The shipped config has no logger but the hook: LiteLLM's global redaction (a deep copy of
    every payload) stays off, and the hook itself records no content."""
    assert "redacted for LiteLLM's loggers" not in default_stack.proxy.log_text()  # type: ignore[union-attr]


def test_content_not_captured_by_default(default_stack: NativeStack) -> None:
    marker = f"prompt-marker-{secrets.token_hex(6)}"
    trace_id, header = new_traceparent()
    assert (
        default_stack.chat(PROVIDER_MODEL, marker, headers={"traceparent": header}).status_code
        == 200
    )
    span = only_llm_span(default_stack, trace_id)
    assert contract.GEN_AI_INPUT_MESSAGES not in span.attributes
    assert marker not in repr(default_stack.spans())


def _metric_total(stack: NativeStack, name: str, model: str) -> tuple[str, str, float, int]:
    """(kind, unit, sum of values, count of observations) of one metric for one model."""
    kind, unit, total, count = "", "", 0.0, 0
    for metric in stack.metrics():
        if metric.name != name:
            continue
        kind, unit = metric.kind, metric.unit
        for point in metric.points:
            if point["attributes"].get(contract.GEN_AI_REQUEST_MODEL) != model:
                continue
            if metric.kind == "histogram":
                total += float(point.get("sum", 0))
                count += int(point.get("count", 0))
            else:
                total += float(point.get("asInt") or point.get("asDouble") or 0)
                count += 1
    return kind, unit, total, count


def test_genai_metrics_equal_the_call_spans(default_stack: NativeStack) -> None:
    """The collector derives the GenAI metrics from the call spans: names and units of the
    conventions, and totals equal to the spans' (so to what the clients were told)."""
    for _ in range(3):
        assert default_stack.chat(MOCK_MODEL, "metrics").status_code == 200

    def spans_total(key: str) -> float:
        return sum(
            float(s.attributes.get(key, 0))
            for s in default_stack.llm_spans()
            if s.attributes.get(contract.GEN_AI_REQUEST_MODEL) == MOCK_MODEL
        )

    expected = {
        contract.GEN_AI_CLIENT_INFERENCE_USAGE_INPUT_TOKENS: ("sum", "{token}"),
        contract.GEN_AI_CLIENT_INFERENCE_USAGE_OUTPUT_TOKENS: ("sum", "{token}"),
        contract.GEN_AI_CLIENT_INFERENCE_OPERATION_INPUT_TOKENS: ("histogram", "{token}"),
        contract.GEN_AI_CLIENT_INFERENCE_DURATION: ("histogram", "s"),
        contract.GEN_AI_CLIENT_OPERATION_COST: ("histogram", "{USD}"),
    }

    def settled() -> bool:
        calls = len(
            [
                s
                for s in default_stack.llm_spans()
                if s.attributes.get(contract.GEN_AI_REQUEST_MODEL) == MOCK_MODEL
            ]
        )
        inputs = spans_total(contract.GEN_AI_USAGE_INPUT_TOKENS)
        got = {name: _metric_total(default_stack, name, MOCK_MODEL) for name in expected}
        return (
            calls >= 3
            and got[contract.GEN_AI_CLIENT_INFERENCE_USAGE_INPUT_TOKENS][2] == inputs
            and got[contract.GEN_AI_CLIENT_INFERENCE_OPERATION_INPUT_TOKENS][2] == inputs
            and got[contract.GEN_AI_CLIENT_INFERENCE_DURATION][3] == calls
        )

    default_stack.wait_for(settled, what="GenAI metrics equal to the call spans")
    for name, (kind, unit) in expected.items():
        got_kind, got_unit, _, _ = _metric_total(default_stack, name, MOCK_MODEL)
        assert (got_kind, got_unit) == (kind, unit), name
    outputs = spans_total(contract.GEN_AI_USAGE_OUTPUT_TOKENS)
    assert (
        _metric_total(
            default_stack, contract.GEN_AI_CLIENT_INFERENCE_USAGE_OUTPUT_TOKENS, MOCK_MODEL
        )[2]
        == outputs
    )
    cost = spans_total(contract.GEN_AI_USAGE_COST_AMOUNT)
    assert _metric_total(default_stack, contract.GEN_AI_CLIENT_OPERATION_COST, MOCK_MODEL)[
        2
    ] == pytest.approx(cost)
    usage = next(
        m
        for m in default_stack.metrics()
        if m.name == contract.GEN_AI_CLIENT_INFERENCE_USAGE_INPUT_TOKENS
    )
    point = usage.points[0]["attributes"]
    assert point[contract.GEN_AI_OPERATION_NAME] == "chat"
    assert point[contract.GEN_AI_TOKEN_MODALITY] == "unknown"
    assert usage.resource["service.name"] == "litellm-proxy"
    # The gateway itself records no GenAI metric per call any more, only its own health.
    own = {m.name for m in default_stack.metrics() if m.scope == contract.SCOPE_NAME}
    assert own and all(name.startswith("llm_otel.") for name in own), own


def test_no_secret_in_anything_exported(default_stack: NativeStack) -> None:
    default_stack.chat(PROVIDER_MODEL, "secret scan")
    default_stack.chat(MOCK_MODEL, "secret scan")
    default_stack.wait_for_llm_spans(2)
    exported = "".join(
        path.read_text()
        for path in (default_stack.workdir / "collector" / "exported").glob("*.jsonl")
    )
    logs = default_stack.proxy.log_text() if default_stack.proxy else ""
    logs += default_stack.collector.log_text() if default_stack.collector else ""
    for secret in (default_stack.secrets.master_key, default_stack.secrets.provider_key):
        assert secret not in exported
        assert secret not in logs
    assert "Bearer " not in exported
    # The provider key reached the provider, proving it was in play during the scan.
    assert default_stack.upstream is not None
    assert any(
        default_stack.secrets.provider_key in h.get("authorization", "")
        for h in default_stack.upstream.seen_headers
    )


# ---- only LLM calls are LLM spans; usage detail (issue #10) --------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_cached_and_reasoning_tokens_on_the_span(default_stack: NativeStack, stream: bool) -> None:
    trace_id, header = new_traceparent()
    response = default_stack.chat(
        PROVIDER_MODEL,
        "[[cached=1024]] [[reasoning=77]] think",
        stream=stream,
        headers={"traceparent": header},
        **({"stream_options": {"include_usage": True}} if stream else {}),
    )
    assert response.status_code == 200, response.text
    a = only_llm_span(default_stack, trace_id).attributes
    assert a[contract.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 1024
    assert a[contract.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == 77
    # Totals include the detail (the conventions' input_tokens counts cached tokens too).
    assert (
        a[contract.GEN_AI_USAGE_INPUT_TOKENS] > 1024 and a[contract.GEN_AI_USAGE_OUTPUT_TOKENS] > 77
    )
    assert contract.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS not in a  # not reported: not set


def test_usage_detail_only_when_reported(default_stack: NativeStack) -> None:
    trace_id, header = new_traceparent()
    assert (
        default_stack.chat(PROVIDER_MODEL, "plain", headers={"traceparent": header}).status_code
        == 200
    )
    a = only_llm_span(default_stack, trace_id).attributes
    assert not [k for k in a if k.startswith(("gen_ai.usage.cache", "gen_ai.usage.reasoning"))]


@pytest.mark.parametrize("key", [None, "sk-wrong-key-0123456789"], ids=["keyless", "wrong-key"])
def test_refused_non_llm_route_makes_no_llm_span(
    default_stack: NativeStack, key: str | None
) -> None:
    """`GET /v1/models` refused before any model is involved is no LLM call: no span at all,
    counted by the hook's `llm_otel.requests.refused`."""
    import httpx

    trace_id, header = new_traceparent()
    headers = {"traceparent": header, **({"Authorization": f"Bearer {key}"} if key else {})}
    refused = httpx.get(f"{default_stack.proxy_url}/v1/models", headers=headers, timeout=10)
    assert refused.status_code in (400, 401, 403), refused.text
    # A later call's span proves the exporter has flushed past the refused request.
    marker_trace, marker = new_traceparent()
    assert default_stack.chat(MOCK_MODEL, headers={"traceparent": marker}).status_code == 200
    only_llm_span(default_stack, marker_trace)
    assert not [s for s in default_stack.spans() if s.trace_id == trace_id]

    def refused() -> float | None:
        values = [
            float(p.get("asInt") or 0)
            for m in default_stack.metrics()
            if m.name == contract.LLM_OTEL_REQUESTS_REFUSED
            for p in m.points
        ]
        return max(values) if values and max(values) > 0 else None

    if key:  # LiteLLM reports a missing key as a bare Exception: only a refused key is counted
        assert default_stack.wait_for(refused, what="the refused request counted") >= 1
    assert all(
        s.attributes[contract.GEN_AI_OPERATION_NAME] in WELL_KNOWN_OPERATIONS
        for s in default_stack.llm_spans()
    )


def test_bad_parameter_is_a_failed_llm_call(default_stack: NativeStack) -> None:
    """Meant as a model invocation, refused for its parameters: a failed LLM call (CONTRACTS)."""
    trace_id, header = new_traceparent()
    response = default_stack.chat(
        PROVIDER_MODEL, headers={"traceparent": header}, messages="not-a-list"
    )
    assert 400 <= response.status_code < 500, response.text
    span = only_llm_span(default_stack, trace_id)
    assert span.status_code == STATUS_ERROR
    assert span.attributes[contract.GEN_AI_OPERATION_NAME] == "chat"
    assert span.attributes[contract.GEN_AI_REQUEST_MODEL] == PROVIDER_MODEL


def test_time_to_first_chunk_metric(default_stack: NativeStack) -> None:
    default_stack.chat(PROVIDER_MODEL, "[[delay=0.2]] stream", stream=True)

    def points() -> list[dict[str, object]] | None:
        found = [
            p
            for m in default_stack.metrics()
            if m.name == contract.GEN_AI_CLIENT_INFERENCE_TIME_TO_FIRST_CHUNK
            for p in m.points
        ]
        return found or None

    point = default_stack.wait_for(points, what="the time-to-first-chunk metric")[-1]
    assert point["attributes"][contract.GEN_AI_REQUEST_MODEL] == PROVIDER_MODEL


def test_every_span_and_metric_follows_the_genai_conventions(default_stack: NativeStack) -> None:
    """Last in the module: every call above, checked as the conformance policies check them;
    and the real proxy provided every LiteLLM internal the hook reads (none reported missing)."""
    assert_conformant(default_stack.spans(), default_stack.metrics())
    missing = [
        m for m in default_stack.metrics() if m.name == contract.LLM_OTEL_TOUCHPOINTS_MISSING
    ]
    assert not [p for m in missing for p in m.points], missing
