"""`make verify` hop 7 (scripts/verify/hops/langfuse.py) against the fake Langfuse: wrong keys, not
ready, refused, a trace that never arrives, polling, a generation without cost."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import Any

from llm_otel import contract
from scripts.envfile import langfuse as langfuse_env
from scripts.native_stack.procs import free_port
from scripts.verify.hops.langfuse import EXPORTER
from scripts.verify.results import State
from tests.doubles.fake_langfuse import FakeLangfuse, basic_auth
from tests.overlays.langfuse_support import (
    LANGFUSE_COST,
    PUBLIC_KEY,
    SECRET_KEY,
    LangfuseStack,
    hop7,
)

# ---- make verify, hop 7 ---------------------------------------------------------------------


def test_hop7_wrong_keys(langfuse: FakeLangfuse) -> None:
    outcome = hop7(
        langfuse.base_url,
        secrets.token_hex(16),
        public_key="pk-lf-wrong",
        timeout_s=5,
        poll_interval_s=0.2,
    )
    assert outcome.state is State.FAIL
    assert "401" in outcome.summary
    assert "LANGFUSE_INIT_PROJECT_PUBLIC_KEY" in outcome.hint
    assert "first start" in outcome.hint


def test_hop7_not_ready() -> None:
    with FakeLangfuse(PUBLIC_KEY, SECRET_KEY, healthy=False) as starting:
        outcome = hop7(starting.base_url, secrets.token_hex(16), timeout_s=1.0, poll_interval_s=0.2)
    assert outcome.state is State.FAIL
    assert "not ready" in outcome.summary and "503" in outcome.summary
    assert "Database not available" in outcome.summary
    assert "make logs s=langfuse-web" in outcome.hint


def test_hop7_connection_refused() -> None:
    outcome = hop7(f"http://127.0.0.1:{free_port()}", secrets.token_hex(16), timeout_s=2)
    assert outcome.state is State.FAIL
    assert "connection refused" in outcome.summary
    assert outcome.hint == "make up   # then, if it keeps failing: make logs s=langfuse-web"


def test_hop7_trace_never_arrives_points_at_the_collector(
    langfuse_stack: LangfuseStack, langfuse: FakeLangfuse
) -> None:
    assert langfuse_stack.collector is not None
    outcome = hop7(
        langfuse.base_url,
        secrets.token_hex(16),
        timeout_s=1.5,
        poll_interval_s=0.3,
        metrics_url=langfuse_stack.collector.metrics_url,
    )
    assert outcome.state is State.FAIL
    assert "did not arrive" in outcome.summary
    assert EXPORTER in outcome.hint
    # The collector really exposes the Langfuse exporter's counters under that name.
    assert any(f'exporter="{EXPORTER}"' in d for d in outcome.details), outcome.details


def test_hop7_names_a_stale_basic_auth_when_the_trace_never_arrives(langfuse: FakeLangfuse) -> None:
    stale = {langfuse_env.BASIC_AUTH: langfuse_env.otlp_basic_auth(PUBLIC_KEY, "sk-lf-old")}
    problem = langfuse_env.basic_auth_mismatch(
        {langfuse_env.PUBLIC_KEY: PUBLIC_KEY, langfuse_env.SECRET_KEY: SECRET_KEY, **stale}
    )
    assert problem is not None
    outcome = hop7(
        langfuse.base_url, secrets.token_hex(16), timeout_s=0.5, poll_interval_s=0.2, env=stale
    )
    assert outcome.state is State.FAIL and outcome.hint == problem


def post_generation(fake: FakeLangfuse, trace_id: str, attributes: Mapping[str, Any]) -> None:
    """One GenAI span straight to the fake's OTLP endpoint, as any OTel SDK would send it."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

    provider = TracerProvider()
    provider.add_span_processor(
        SimpleSpanProcessor(
            OTLPSpanExporter(
                endpoint=f"{fake.otlp_endpoint}/v1/traces",
                headers={"Authorization": basic_auth(PUBLIC_KEY, SECRET_KEY)},
            )
        )
    )
    parent = SpanContext(
        int(trace_id, 16), int(secrets.token_hex(8), 16), is_remote=True, trace_flags=TraceFlags(1)
    )
    provider.get_tracer(contract.SCOPE_NAME, contract.SCOPE_VERSION).start_span(
        "chat m", context=set_span_in_context(NonRecordingSpan(parent)), attributes=dict(attributes)
    ).end()
    provider.shutdown()


GENAI = {
    contract.GEN_AI_OPERATION_NAME: "chat",
    contract.GEN_AI_REQUEST_MODEL: "m",
    contract.GEN_AI_RESPONSE_MODEL: "m-2026",
    contract.GEN_AI_USAGE_INPUT_TOKENS: 3,
    contract.GEN_AI_USAGE_OUTPUT_TOKENS: 5,
    LANGFUSE_COST: 1.3e-05,
}


def test_hop7_polls_until_langfuse_has_processed_the_trace() -> None:
    with FakeLangfuse(PUBLIC_KEY, SECRET_KEY, visible_after_s=1.0) as slow:
        trace_id = secrets.token_hex(16)
        post_generation(slow, trace_id, GENAI)
        outcome = hop7(slow.base_url, trace_id, timeout_s=10, expected=(3, 5, 1.3e-05))
    assert outcome.state is State.OK, outcome
    waited = float(re.search(r"after ([\d.]+)s", outcome.summary)[1])  # type: ignore[index]
    assert waited >= 0.9
    assert "m-2026" in outcome.summary


def test_hop7_warns_on_a_generation_without_cost_or_with_other_numbers() -> None:
    with FakeLangfuse(PUBLIC_KEY, SECRET_KEY) as fake:
        no_cost = secrets.token_hex(16)
        post_generation(
            fake,
            no_cost,
            {k: v for k, v in GENAI.items() if k != LANGFUSE_COST},
        )
        outcome = hop7(fake.base_url, no_cost, timeout_s=1)
        assert outcome.state is State.WARN and "cost" in outcome.summary
        other = secrets.token_hex(16)
        post_generation(fake, other, GENAI)
        outcome = hop7(fake.base_url, other, timeout_s=5, expected=(4, 5, 1.3e-05))
        assert outcome.state is State.WARN
        assert any("input tokens: Langfuse 3, gateway 4" in d for d in outcome.details)
