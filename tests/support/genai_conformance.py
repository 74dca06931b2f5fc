"""The GenAI conformance rules, as open-telemetry/semantic-conventions-conformance's Weaver
live-check policies state them (genai_span_validation.rego, span_validation.rego), applied to
the spans and metrics the stack exports. Pinned to semantic-conventions-genai 1.42.0-dev."""

from __future__ import annotations

from llm_otel import contract
from scripts.native_stack.otlp import Metric, Span

CLIENT, STATUS_OK, STATUS_ERROR = 3, 1, 2
# The registry's gen_ai.operation.name values.
OPERATIONS = frozenset(
    {
        "chat",
        "text_completion",
        "embeddings",
        "generate_content",
        "create_agent",
        "invoke_agent",
        "invoke_workflow",
        "execute_tool",
        "retrieval",
    }
)
# Names and units of the metrics the conventions define (and the cost proposal's).
METRIC_UNITS = {
    contract.GEN_AI_CLIENT_INFERENCE_DURATION: "s",
    contract.GEN_AI_CLIENT_EMBEDDINGS_DURATION: "s",
    contract.GEN_AI_CLIENT_INFERENCE_TIME_TO_FIRST_CHUNK: "s",
    contract.GEN_AI_CLIENT_INFERENCE_OPERATION_INPUT_TOKENS: "{token}",
    contract.GEN_AI_CLIENT_INFERENCE_OPERATION_OUTPUT_TOKENS: "{token}",
    contract.GEN_AI_CLIENT_EMBEDDINGS_OPERATION_INPUT_TOKENS: "{token}",
    contract.GEN_AI_CLIENT_INFERENCE_USAGE_INPUT_TOKENS: "{token}",
    contract.GEN_AI_CLIENT_INFERENCE_USAGE_OUTPUT_TOKENS: "{token}",
    contract.GEN_AI_CLIENT_OPERATION_COST: "{USD}",
}
# Names the conventions removed; none may be exported.
REMOVED = frozenset(
    {
        "gen_ai.client.token.usage",
        "gen_ai.client.operation.time_to_first_chunk",
        "gen_ai.token.type",
        "gen_ai.system",
        contract.LEGACY_GEN_AI_USAGE_COST,
        contract.LEGACY_GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    }
)


def span_violations(span: Span) -> list[str]:
    a = span.attributes
    out = []
    operation = a.get(contract.GEN_AI_OPERATION_NAME)
    if operation not in OPERATIONS:
        out.append(f"genai_operation_name_unknown: {operation!r}")
    model = a.get(contract.GEN_AI_REQUEST_MODEL)
    expected_name = f"{operation} {model}" if model else str(operation)
    if span.name != expected_name:
        out.append(f"genai_span_name_format: {span.name!r} != {expected_name!r}")
    if span.kind != CLIENT:
        out.append(f"genai_span_kind_unexpected: {span.kind}")
    if not a.get(contract.GEN_AI_PROVIDER_NAME) and not a.get(contract.HTTP_RESPONSE_STATUS_CODE):
        # Required; only a request the proxy refused before choosing a provider lacks it.
        out.append("required gen_ai.provider.name missing")
    if contract.SERVER_ADDRESS in a and contract.SERVER_PORT not in a:
        out.append("server.port is conditionally required with server.address")
    if span.status_code == STATUS_OK:
        out.append("span_status_ok_set_by_instrumentation")
    if span.status_code == STATUS_ERROR and not a.get(contract.ERROR_TYPE):
        out.append("error_type_missing_on_error")
    if a.get(contract.ERROR_TYPE) and span.status_code != STATUS_ERROR:
        out.append("error_type_without_error_status")
    if a.get(contract.GEN_AI_REQUEST_STREAM) is False:
        out.append("gen_ai.request.stream is set if and only if the request streams")
    out += [f"removed name {key}" for key in a if key in REMOVED]
    if span.schema_url != contract.SCHEMA_URL:
        out.append(f"schema URL {span.schema_url!r}")
    return out


def metric_violations(metrics: list[Metric]) -> list[str]:
    out = []
    for metric in metrics:
        if metric.name in REMOVED:
            out.append(f"removed metric {metric.name}")
        expected = METRIC_UNITS.get(metric.name)
        if metric.name.startswith("gen_ai.") and expected is None:
            out.append(f"metric {metric.name} is not a convention name")
        elif expected is not None and metric.unit != expected:
            out.append(f"{metric.name}: unit {metric.unit!r}, expected {expected!r}")
        for point in metric.points:
            attributes = point["attributes"]
            for required in (contract.GEN_AI_OPERATION_NAME,):
                if metric.name.startswith("gen_ai.") and required not in attributes:
                    out.append(f"{metric.name}: {required} missing")
            if contract.SERVER_ADDRESS in attributes and contract.SERVER_PORT not in attributes:
                out.append(f"{metric.name}: server.port missing beside server.address")
            usage = metric.name.startswith("gen_ai.client.inference.usage.")
            if usage and contract.GEN_AI_TOKEN_MODALITY not in attributes:
                out.append(f"{metric.name}: gen_ai.token.modality missing")
    return out


def assert_conformant(spans: list[Span], metrics: list[Metric]) -> None:
    """Every LLM span and GenAI metric passes the rules above (there is at least one span)."""
    llm = [s for s in spans if s.is_llm]
    assert llm, "no LLM span to check"
    found = {f"{s.name}: {v}" for s in llm for v in span_violations(s)}
    found |= set(metric_violations(metrics))
    assert not found, sorted(found)
