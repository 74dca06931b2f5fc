"""The real LiteLLM proxy with the hook sends one correct GenAI span per call (issue #2)."""

from __future__ import annotations

import secrets

import pytest

from llm_otel import contract
from llm_otel.attributes import WELL_KNOWN_OPERATIONS
from scripts.native_stack.harness import MOCK_MODEL, PROVIDER_MODEL, NativeStack
from scripts.native_stack.otlp import Span

CLIENT, SERVER = 3, 2  # OTLP span kinds
STATUS_ERROR = 2


def traceparent() -> tuple[str, str]:
    trace_id = secrets.token_hex(16)
    return trace_id, f"00-{trace_id}-{secrets.token_hex(8)}-01"


def only_llm_span(stack: NativeStack, trace_id: str) -> Span:
    spans = stack.wait_for_llm_spans(1, where=lambda s: s.trace_id == trace_id)
    assert len(spans) == 1, f"expected one LLM span in trace {trace_id}, got {spans}"
    return spans[0]


def test_plain_call_through_provider_path(stack: NativeStack) -> None:
    trace_id, header = traceparent()
    response = stack.chat(PROVIDER_MODEL, "hi", headers={"traceparent": header})
    assert response.status_code == 200, response.text
    usage = response.json()["usage"]
    span = only_llm_span(stack, trace_id)
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
    assert a[contract.GEN_AI_REQUEST_STREAM] is False
    assert contract.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK not in a
    assert a[contract.LITELLM_MODEL_GROUP] == PROVIDER_MODEL
    assert a[contract.LITELLM_CALL_ID] == response.headers["x-litellm-call-id"]
    assert a[contract.LITELLM_API_KEY_HASH]
    assert span.resource["service.name"] == "litellm-proxy"
    assert span.resource["service.instance.id"]


def test_mock_model_cost_matches_response_header(stack: NativeStack) -> None:
    trace_id, header = traceparent()
    response = stack.chat(MOCK_MODEL, headers={"traceparent": header})
    assert response.status_code == 200, response.text
    cost = float(response.headers["x-litellm-response-cost"])
    assert cost > 0
    span = only_llm_span(stack, trace_id)
    assert span.attributes[contract.GEN_AI_USAGE_COST] == pytest.approx(cost)
    usage = response.json()["usage"]
    expected = usage["prompt_tokens"] * 1e-6 + usage["completion_tokens"] * 2e-6
    assert cost == pytest.approx(expected)


def test_llm_span_continues_caller_trace_under_server_span(stack: NativeStack) -> None:
    trace_id, header = traceparent()
    caller_span_id = header.split("-")[2]
    assert stack.chat(MOCK_MODEL, headers={"traceparent": header}).status_code == 200
    llm = only_llm_span(stack, trace_id)
    in_trace = stack.wait_for(
        lambda: [s for s in stack.spans() if s.trace_id == trace_id and s.kind == SERVER],
        what="server span",
    )
    server = in_trace[0]
    assert server.parent_span_id == caller_span_id
    assert llm.parent_span_id == server.span_id
    # FastAPI's internal operation spans are dropped at the source: server + LLM span only.
    assert {s.name for s in stack.spans() if s.trace_id == trace_id} == {server.name, llm.name}


def test_streamed_call_has_time_to_first_chunk(stack: NativeStack) -> None:
    trace_id, header = traceparent()
    response = stack.chat(
        PROVIDER_MODEL, "[[delay=0.3]] stream please", stream=True, headers={"traceparent": header}
    )
    assert response.status_code == 200
    assert "data: [DONE]" in response.text
    a = only_llm_span(stack, trace_id).attributes
    assert a[contract.GEN_AI_REQUEST_STREAM] is True
    assert a[contract.GEN_AI_USAGE_OUTPUT_TOKENS] > 0
    assert 0.25 <= a[contract.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] < 10


def test_upstream_500_is_an_error_span(stack: NativeStack) -> None:
    trace_id, header = traceparent()
    response = stack.chat(PROVIDER_MODEL, "[[status=500]] fail", headers={"traceparent": header})
    assert response.status_code >= 500
    span = only_llm_span(stack, trace_id)
    assert span.status_code == STATUS_ERROR
    assert span.attributes[contract.ERROR_TYPE]
    assert span.attributes[contract.GEN_AI_REQUEST_MODEL] == PROVIDER_MODEL
    # The full record from LiteLLM's failure event, not a bare "rejected request" one.
    assert span.attributes[contract.GEN_AI_PROVIDER_NAME] == "openrouter"
    assert span.attributes[contract.LITELLM_CALL_ID]


def test_bad_request_is_an_error_span(stack: NativeStack) -> None:
    trace_id, header = traceparent()
    response = stack.chat("no-such-model", headers={"traceparent": header})
    assert response.status_code == 400
    span = only_llm_span(stack, trace_id)
    assert span.status_code == STATUS_ERROR
    assert span.attributes[contract.ERROR_TYPE]
    assert span.attributes[contract.GEN_AI_REQUEST_MODEL] == "no-such-model"


def test_health_probes_make_no_spans(stack: NativeStack) -> None:
    import httpx

    before = len(stack.spans())
    for path in ("/health/liveliness", "/health/readiness"):
        assert httpx.get(stack.proxy_url + path, timeout=10).status_code == 200
    trace_id, header = traceparent()
    stack.chat(MOCK_MODEL, headers={"traceparent": header})
    only_llm_span(stack, trace_id)
    new = stack.spans()[before:]
    assert not [s for s in new if "health" in str(s.attributes.get("url.path", ""))]


def test_content_not_captured_by_default(stack: NativeStack) -> None:
    marker = f"prompt-marker-{secrets.token_hex(6)}"
    trace_id, header = traceparent()
    assert stack.chat(PROVIDER_MODEL, marker, headers={"traceparent": header}).status_code == 200
    span = only_llm_span(stack, trace_id)
    assert contract.GEN_AI_INPUT_MESSAGES not in span.attributes
    assert marker not in repr(stack.spans())


def test_metrics_exported(stack: NativeStack) -> None:
    stack.chat(MOCK_MODEL)

    def names() -> set[str] | None:
        found = {m.name for m in stack.metrics() if m.scope == contract.SCOPE_NAME}
        wanted = {
            contract.GEN_AI_CLIENT_TOKEN_USAGE,
            contract.GEN_AI_CLIENT_OPERATION_DURATION,
            contract.GEN_AI_CLIENT_COST,
        }
        return found if wanted <= found else None

    stack.wait_for(names, what="GenAI metrics")
    usage = [m for m in stack.metrics() if m.name == contract.GEN_AI_CLIENT_TOKEN_USAGE]
    assert {m.scope_version for m in usage} == {contract.SCOPE_VERSION}
    token_types = {p["attributes"].get(contract.GEN_AI_TOKEN_TYPE) for m in usage for p in m.points}
    assert {"input", "output"} <= token_types
    point = usage[-1].points[0]["attributes"]
    assert point[contract.GEN_AI_REQUEST_MODEL] and point[contract.GEN_AI_OPERATION_NAME] == "chat"


def test_no_secret_in_anything_exported(stack: NativeStack) -> None:
    stack.chat(PROVIDER_MODEL, "secret scan")
    stack.chat(MOCK_MODEL, "secret scan")
    stack.wait_for_llm_spans(2)
    exported = "".join(
        path.read_text() for path in (stack.workdir / "collector" / "exported").glob("*.jsonl")
    )
    logs = stack.proxy.log_text() if stack.proxy else ""
    logs += stack.collector.log_text() if stack.collector else ""
    for secret in (stack.secrets.master_key, stack.secrets.provider_key):
        assert secret not in exported
        assert secret not in logs
    assert "Bearer " not in exported
    # The provider key reached the provider, proving it was in play during the scan.
    assert stack.upstream is not None
    assert any(
        stack.secrets.provider_key in h.get("authorization", "")
        for h in stack.upstream.seen_headers
    )


# ---- only LLM calls are LLM spans; usage detail (issue #10) --------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_cached_and_reasoning_tokens_on_the_span(stack: NativeStack, stream: bool) -> None:
    trace_id, header = traceparent()
    response = stack.chat(
        PROVIDER_MODEL,
        "[[cached=1024]] [[reasoning=77]] think",
        stream=stream,
        headers={"traceparent": header},
        **({"stream_options": {"include_usage": True}} if stream else {}),
    )
    assert response.status_code == 200, response.text
    a = only_llm_span(stack, trace_id).attributes
    assert a[contract.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 1024
    assert a[contract.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == 77
    # Totals include the detail (the conventions' input_tokens counts cached tokens too).
    assert (
        a[contract.GEN_AI_USAGE_INPUT_TOKENS] > 1024 and a[contract.GEN_AI_USAGE_OUTPUT_TOKENS] > 77
    )
    assert contract.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS not in a  # not reported: not set


def test_usage_detail_only_when_reported(stack: NativeStack) -> None:
    trace_id, header = traceparent()
    assert stack.chat(PROVIDER_MODEL, "plain", headers={"traceparent": header}).status_code == 200
    a = only_llm_span(stack, trace_id).attributes
    assert not [k for k in a if k.startswith(("gen_ai.usage.cache", "gen_ai.usage.reasoning"))]


@pytest.mark.parametrize("key", [None, "sk-wrong-key-0123456789"], ids=["keyless", "wrong-key"])
def test_refused_non_llm_route_makes_no_llm_span(stack: NativeStack, key: str | None) -> None:
    """`GET /v1/models` refused before any model is involved stays an HTTP server span."""
    import httpx

    trace_id, header = traceparent()
    headers = {"traceparent": header, **({"Authorization": f"Bearer {key}"} if key else {})}
    refused = httpx.get(f"{stack.proxy_url}/v1/models", headers=headers, timeout=10)
    assert refused.status_code in (400, 401, 403), refused.text
    # A later call's span proves the exporter has flushed past the refused request.
    marker_trace, marker = traceparent()
    assert stack.chat(MOCK_MODEL, headers={"traceparent": marker}).status_code == 200
    only_llm_span(stack, marker_trace)
    server = stack.wait_for(
        lambda: [s for s in stack.spans() if s.trace_id == trace_id and s.kind == SERVER],
        what="the refused request's server span",
    )
    assert server, "the refusal must stay visible as an HTTP server span"
    assert not [s for s in stack.llm_spans() if s.trace_id == trace_id]
    assert all(
        s.attributes[contract.GEN_AI_OPERATION_NAME] in WELL_KNOWN_OPERATIONS
        for s in stack.llm_spans()
    )


def test_bad_parameter_is_a_failed_llm_call(stack: NativeStack) -> None:
    """Meant as a model invocation, refused for its parameters: a failed LLM call (CONTRACTS)."""
    trace_id, header = traceparent()
    response = stack.chat(PROVIDER_MODEL, headers={"traceparent": header}, messages="not-a-list")
    assert 400 <= response.status_code < 500, response.text
    span = only_llm_span(stack, trace_id)
    assert span.status_code == STATUS_ERROR
    assert span.attributes[contract.GEN_AI_OPERATION_NAME] == "chat"
    assert span.attributes[contract.GEN_AI_REQUEST_MODEL] == PROVIDER_MODEL


def test_time_to_first_chunk_metric(stack: NativeStack) -> None:
    stack.chat(PROVIDER_MODEL, "[[delay=0.2]] stream", stream=True)

    def points() -> list[dict[str, object]] | None:
        found = [
            p
            for m in stack.metrics()
            if m.scope == contract.SCOPE_NAME
            and m.name == contract.GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK
            for p in m.points
        ]
        return found or None

    point = stack.wait_for(points, what="the time-to-first-chunk metric")[-1]
    assert point["attributes"][contract.GEN_AI_REQUEST_MODEL] == PROVIDER_MODEL
