"""Gateway -> collector -> ClickHouse engine, for real (issue #3): a call through the real proxy
becomes a row in `llm_calls` with the tokens and cost the gateway reported."""

from __future__ import annotations

import pytest

from llm_otel.contract import GEN_AI_CLIENT_INFERENCE_DURATION
from scripts.native_stack.harness import MOCK_MODEL, PROVIDER_MODEL, NativeStack
from tests.support.traceparent import new_traceparent


def llm_row(stack: NativeStack, trace_id: str) -> dict[str, object]:
    reader = stack.clickhouse.client("otel_reader")

    def probe() -> dict[str, object] | None:
        result = reader.query(
            "SELECT request_model, provider, input_tokens, output_tokens, cost_usd, "
            "duration_ms, ttft_ms, is_stream, is_error, error_type, call_id, service "
            "FROM llm_calls WHERE trace_id = {t:String}",
            parameters={"t": trace_id},
        )
        rows = list(result.named_results())
        return rows[0] if rows else None

    return stack.wait_for(probe, timeout=30, what=f"llm_calls row for {trace_id}")


def test_call_lands_in_llm_calls_with_gateway_cost_and_tokens(
    clickhouse_stack: NativeStack,
) -> None:
    trace_id, header = new_traceparent()
    response = clickhouse_stack.chat(MOCK_MODEL, headers={"traceparent": header})
    assert response.status_code == 200
    usage = response.json()["usage"]
    row = llm_row(clickhouse_stack, trace_id)
    assert row["request_model"] == MOCK_MODEL
    assert row["input_tokens"] == usage["prompt_tokens"]
    assert row["output_tokens"] == usage["completion_tokens"]
    assert row["cost_usd"] == pytest.approx(float(response.headers["x-litellm-response-cost"]))
    assert row["call_id"] == response.headers["x-litellm-call-id"]
    assert row["service"] == "litellm-proxy"
    assert not row["is_error"] and not row["is_stream"] and row["ttft_ms"] is None


def test_stream_and_error_rows(clickhouse_stack: NativeStack) -> None:
    stream_trace, stream_header = new_traceparent()
    assert (
        clickhouse_stack.chat(
            PROVIDER_MODEL, "[[delay=0.2]]", stream=True, headers={"traceparent": stream_header}
        ).status_code
        == 200
    )
    error_trace, error_header = new_traceparent()
    assert (
        clickhouse_stack.chat(
            PROVIDER_MODEL, "[[status=500]]", headers={"traceparent": error_header}
        ).status_code
        >= 500
    )
    stream = llm_row(clickhouse_stack, stream_trace)
    assert stream["is_stream"] and stream["ttft_ms"] >= 150 and stream["provider"] == "openrouter"
    error = llm_row(clickhouse_stack, error_trace)
    assert error["is_error"] and error["error_type"]


def test_llm_span_in_traces_table_and_metrics_stored(clickhouse_stack: NativeStack) -> None:
    trace_id, header = new_traceparent()
    assert clickhouse_stack.chat(MOCK_MODEL, headers={"traceparent": header}).status_code == 200
    llm_row(clickhouse_stack, trace_id)
    reader = clickhouse_stack.clickhouse.client("otel_reader")
    kinds = reader.query(
        "SELECT SpanKind, SpanName FROM otel_traces WHERE TraceId = {t:String}",
        parameters={"t": trace_id},
    ).result_rows
    assert [k for k, _ in kinds] == ["Client"], kinds  # the LLM span, FastAPI's own spans off

    def metric_names() -> set[str] | None:
        names = {
            r[0]
            for r in reader.query(
                "SELECT DISTINCT MetricName FROM otel_metrics_histogram"
            ).result_rows
        }
        return names if GEN_AI_CLIENT_INFERENCE_DURATION in names else None

    clickhouse_stack.wait_for(metric_names, timeout=30, what="GenAI histograms in ClickHouse")


def test_no_secret_reaches_clickhouse(clickhouse_stack: NativeStack) -> None:
    clickhouse_stack.chat(
        PROVIDER_MODEL, "scan", headers={"x-api-key": clickhouse_stack.secrets.provider_key}
    )
    admin = clickhouse_stack.clickhouse.client("admin")
    clickhouse_stack.wait_for(
        lambda: admin.query("SELECT count() FROM otel_traces").result_rows[0][0], what="rows"
    )
    dump = str(admin.query("SELECT * FROM otel_traces").result_rows)
    dump += str(admin.query("SELECT * FROM otel_metrics_histogram").result_rows)
    for secret in clickhouse_stack.secrets.values():
        assert secret not in dump
