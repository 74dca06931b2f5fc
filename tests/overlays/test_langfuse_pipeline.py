"""The optional Langfuse overlay (issue #6), natively: the real collector with
otel-collector/config.langfuse.yaml fans the real proxy's spans out to a real HTTP stand-in for
Langfuse (tests/doubles/fake_langfuse.py: Basic auth, protobuf decoding, public API), a stalled
Langfuse holds back nothing else, `make verify` hop 7 finds a real call there, and LiteLLM's own
`langfuse` callback leaves the proxy serving.
"""

from __future__ import annotations

import re
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from llm_otel import contract
from scripts.envfile import langfuse as langfuse_env
from scripts.native_stack import collector as collector_support
from scripts.native_stack.collector import Collector
from scripts.native_stack.harness import (
    MOCK_MODEL,
    PROVIDER_MODEL,
    NativeStack,
    StackOptions,
    clean_env,
)
from scripts.native_stack.paths import (
    COLLECTOR_BIN,
    COLLECTOR_CONFIGS,
    LITELLM_CONFIG,
)
from scripts.verify.hops.langfuse import EXPORTER
from scripts.verify.results import State
from tests.conftest import require_collector
from tests.doubles.fake_langfuse import FakeLangfuse, basic_auth
from tests.overlays.langfuse_support import (
    LANGFUSE_COLLECTOR_CONFIG,
    PUBLIC_KEY,
    SECRET_KEY,
    WITH_LANGFUSE,
    LangfuseStack,
    as_langfuse_gets_it,
    call,
    comparable,
    hop7,
    in_trace,
    langfuse_collector_env,
    langfuse_generation,
)

# ---- the collector overlay ------------------------------------------------------------------


def test_collector_overlay_validates_with_the_real_collector() -> None:
    require_collector()
    env = clean_env(
        {
            "CLICKHOUSE_ENDPOINT": "http://127.0.0.1:9",
            "CLICKHOUSE_WRITER_PASSWORD": "x",
            "LANGFUSE_OTLP_BASIC_AUTH": langfuse_env.otlp_basic_auth("pk", "sk"),
        }
    )
    result = subprocess.run(
        [str(COLLECTOR_BIN), "validate", *(f"--config={p}" for p in WITH_LANGFUSE)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "deprecated" not in result.stderr


def test_collector_overlay_is_a_pipeline_of_its_own() -> None:
    """Langfuse gets its own traces pipeline from the same receiver, with the base processors
    first; the base `traces` pipeline (ClickHouse) is not touched by the overlay."""
    pipelines = yaml.safe_load(COLLECTOR_CONFIGS[0].read_text())["service"]["pipelines"]
    base = pipelines["traces"]
    # Content, when captured, reaches Langfuse redacted as the ClickHouse content table gets it.
    content = pipelines["traces/content"]["processors"]
    redacted = content[: content.index("transform/redact-content") + 1]
    redacted.remove("filter/content-only")
    overlay = yaml.safe_load(LANGFUSE_COLLECTOR_CONFIG.read_text())
    assert set(overlay["service"]["pipelines"]) == {"traces/langfuse"}
    langfuse = overlay["service"]["pipelines"]["traces/langfuse"]
    assert langfuse["receivers"] == base["receivers"]
    assert langfuse["exporters"] == [EXPORTER]
    assert langfuse["processors"] == [*redacted, "transform/langfuse"]
    exporter = overlay["exporters"][EXPORTER]
    assert exporter["sending_queue"]["enabled"] is True
    assert exporter["headers"]["Authorization"] == "Basic ${env:LANGFUSE_OTLP_BASIC_AUTH}"


def test_llm_spans_reach_langfuse_exactly_as_the_other_exporter_got_them(
    langfuse_stack: LangfuseStack, langfuse: FakeLangfuse
) -> None:
    trace_id, _ = call(langfuse_stack)
    exported = langfuse_stack.wait_for(
        lambda: (
            found
            if (found := [s for s in langfuse_stack.spans() if s.trace_id == trace_id])
            else None
        ),
        what="the LLM span in the file export",
    )
    received = langfuse.wait_for_spans(in_trace(trace_id), count=len(exported))
    assert {s.span_id: comparable(s) for s in received} == {
        s.span_id: {**comparable(s), "attributes": as_langfuse_gets_it(s.attributes)}
        for s in exported
    }
    llm = next(s for s in received if s.is_llm)
    assert llm.attributes[contract.GEN_AI_REQUEST_MODEL] == MOCK_MODEL
    exports = langfuse.seen()
    assert exports and all(r.status == 200 for r in exports)
    for request in exports:
        assert request.headers["authorization"] == basic_auth(PUBLIC_KEY, SECRET_KEY)
        assert request.headers["content-type"] == "application/x-protobuf"
        assert request.headers.get("content-encoding") == "gzip"


def test_langfuse_sees_a_generation_with_model_usage_and_cost(
    langfuse_stack: LangfuseStack, langfuse: FakeLangfuse
) -> None:
    trace_id, response = call(langfuse_stack)
    langfuse.wait_for_spans(lambda s: s.trace_id == trace_id and s.is_llm)
    generation = langfuse_generation(langfuse, trace_id)
    usage = response.json()["usage"]
    assert generation["model"]
    assert generation["usageDetails"]["input"] == usage["prompt_tokens"]
    assert generation["usageDetails"]["output"] == usage["completion_tokens"]
    assert generation["calculatedTotalCost"] == pytest.approx(
        float(response.headers["x-litellm-response-cost"])
    )
    assert generation["completionStartTime"] is None  # not streamed: no time to first token


def test_usage_split_for_langfuse_and_clickhouse(
    langfuse_stack: LangfuseStack, langfuse: FakeLangfuse
) -> None:
    """Langfuse v3.225 subtracts cache reads from the inclusive input_tokens itself but not
    reasoning from output_tokens: its copy has no reasoning split (no double count); ClickHouse's
    copy keeps every figure, and none of the Langfuse-only attributes."""
    trace_id, _ = call(
        langfuse_stack,
        PROVIDER_MODEL,
        "[[cached=512]] [[reasoning=40]] think",
        stream=True,
        stream_options={"include_usage": True},
    )
    sent = langfuse.wait_for_spans(lambda s: s.trace_id == trace_id and s.is_llm)[0].attributes
    stored = langfuse_stack.wait_for_llm_spans(1, where=lambda s: s.trace_id == trace_id)[
        0
    ].attributes
    assert sent[contract.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 512
    assert contract.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS not in sent
    assert sent[contract.GEN_AI_USAGE_OUTPUT_TOKENS] == stored[contract.GEN_AI_USAGE_OUTPUT_TOKENS]
    assert stored[contract.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == 40
    assert not [k for k in stored if k.startswith("langfuse.")]


def test_streamed_call_carries_langfuse_completion_start_time(
    langfuse_stack: LangfuseStack, langfuse: FakeLangfuse
) -> None:
    trace_id, _ = call(langfuse_stack, PROVIDER_MODEL, "[[delay=0.3]] stream please", stream=True)
    llm = langfuse.wait_for_spans(lambda s: s.trace_id == trace_id and s.is_llm)[0]
    ttfc = llm.attributes[contract.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK]
    stamp = llm.attributes["langfuse.observation.completion_start_time"]
    # RFC 3339 in UTC, microseconds with trailing zeros dropped (what JavaScript's Date parses).
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z", stamp), stamp
    start = datetime.fromtimestamp(llm.start_ns / 1e9, tz=UTC)
    derived = (datetime.fromisoformat(stamp.replace("Z", "+00:00")) - start).total_seconds()
    assert derived == pytest.approx(ttfc, abs=2e-6)
    generation = langfuse_generation(langfuse, trace_id)
    assert generation["timeToFirstToken"] == pytest.approx(ttfc, abs=1e-3)


# ---- a slow Langfuse holds nothing back -----------------------------------------------------


def test_stalled_langfuse_neither_delays_nor_drops_the_other_exporter(
    langfuse_stack: LangfuseStack, langfuse: FakeLangfuse
) -> None:
    langfuse.stall(120)  # far beyond the exporter's 10 s timeout
    traces, delays = [], []
    try:
        started = time.monotonic()
        while time.monotonic() - started < 13:  # past one timeout of the Langfuse exporter
            t0 = time.monotonic()
            trace_id, _ = call(langfuse_stack)
            langfuse_stack.wait_for_llm_spans(1, timeout=10, where=in_trace(trace_id))
            delays.append(time.monotonic() - t0)
            traces.append(trace_id)
            time.sleep(0.5)
        # Batch (1 s) + file flush (100 ms) + the SDK's 200 ms schedule: well under 4 s.
        assert max(delays) < 4, f"the other exporter was held back: {delays}"
        assert langfuse.exports_in_flight >= 1, "Langfuse was not being waited on"
        log = langfuse_stack.collector.log_text() if langfuse_stack.collector else ""
        assert re.search(
            r"otlp_http/langfuse.*(retry|Will retry)|(retry|Will retry).*"
            r"otlp_http/langfuse",
            log,
            re.I,
        ), "the Langfuse export never timed out"
        for trace_id in traces:  # nothing dropped, nothing doubled on the other side
            assert len([s for s in langfuse_stack.llm_spans() if s.trace_id == trace_id]) == 1
    finally:
        langfuse.unstall()
    # And Langfuse gets everything once it answers again (retries from its own queue).
    for trace_id in traces:
        langfuse.wait_for_spans(lambda s, t=trace_id: s.trace_id == t and s.is_llm, timeout=40)


def send_span(collector: Collector, name: str) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(
        SimpleSpanProcessor(
            OTLPSpanExporter(endpoint=f"{collector.otlp_http_url}/v1/traces", timeout=5)
        )
    )
    provider.get_tracer("control").start_span(name).end()
    provider.shutdown()


@pytest.mark.stack
def test_control_without_its_own_queue_a_stalled_langfuse_holds_the_sender(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shows the test above can fail: with the Langfuse queue off, the pipeline is synchronous
    up to that exporter, so a stalled Langfuse holds every OTLP request (the gateway's export)
    for the exporter's whole timeout, instead of answering once the spans are queued."""
    require_collector()
    monkeypatch.setattr(collector_support, "COLLECTOR_CONFIGS", WITH_LANGFUSE)
    with FakeLangfuse(PUBLIC_KEY, SECRET_KEY) as slow:
        slow.stall(120)
        overlay = collector_support.test_overlay(
            tmp_path / "collector" / "exported",
            clickhouse=False,
            extra={
                "exporters": {
                    EXPORTER: {
                        "sending_queue": {"enabled": False},
                        "timeout": "3s",
                        "retry_on_failure": {"enabled": False},
                    }
                }
            },
        )
        env = clean_env(
            {
                "CLICKHOUSE_ENDPOINT": "http://127.0.0.1:9",
                "CLICKHOUSE_WRITER_PASSWORD": "x",
                **langfuse_collector_env(slow),
            }
        )
        collector = Collector(tmp_path / "collector", env, overlay).start()
        try:
            started = time.monotonic()
            send_span(collector, "first")
            held = time.monotonic() - started
            assert held >= 2.5, f"the sender was not held ({held:.1f} s): control is broken"
        finally:
            slow.unstall()
            collector.stop()


def test_hop7_ok_for_the_verification_call(
    langfuse_stack: LangfuseStack, langfuse: FakeLangfuse
) -> None:
    trace_id, response = call(langfuse_stack)
    usage = response.json()["usage"]
    expected = (
        usage["prompt_tokens"],
        usage["completion_tokens"],
        float(response.headers["x-litellm-response-cost"]),
    )
    # Straight after the call: the trace is not there yet, so this also exercises the polling.
    outcome = hop7(
        langfuse.base_url, trace_id, expected=expected, timeout_s=20, poll_interval_s=0.2
    )
    assert outcome.state is State.OK, outcome
    assert "generation" in outcome.summary and "tokens" in outcome.summary
    assert any("3.225.8 healthy" in d for d in outcome.details)


# ---- LiteLLM's own langfuse callback --------------------------------------------------------


@pytest.mark.stack
def test_litellm_langfuse_callback_leaves_the_proxy_serving(
    tmp_path: Path, langfuse: FakeLangfuse
) -> None:
    """The seed's failure mode: `success_callback: ["langfuse"]` without the langfuse SDK
    (langfuse>=4.7,<5 for this LiteLLM) aborts the proxy's startup."""
    require_collector()
    config = yaml.safe_load(LITELLM_CONFIG.read_text())
    config["litellm_settings"]["success_callback"] = ["langfuse"]
    config["litellm_settings"]["failure_callback"] = ["langfuse"]
    path = tmp_path / "litellm-config.yaml"
    path.write_text(yaml.safe_dump(config))
    stack = NativeStack(
        tmp_path / "stack",
        StackOptions(
            litellm_config=path,
            proxy_env={
                "LANGFUSE_PUBLIC_KEY": PUBLIC_KEY,
                "LANGFUSE_SECRET_KEY": SECRET_KEY,
                "LANGFUSE_HOST": langfuse.base_url,
            },
        ),
    )
    try:
        try:
            stack.start()
        except (RuntimeError, TimeoutError) as exc:
            pytest.fail(
                "the proxy does not start with LiteLLM's langfuse callback enabled; "
                "litellm/requirements.txt needs langfuse>=4.7,<5 (e.g. "
                f"langfuse==4.18.0):\n{str(exc)[-1500:]}"
            )
        trace_id, _ = call(stack)
        # Our hook still records the call, once, next to the callback.
        assert len(stack.wait_for_llm_spans(1, where=in_trace(trace_id))) == 1
        # And the callback itself delivered to Langfuse with the project keys.
        langfuse.wait_for_spans(lambda s: s.scope == "langfuse-sdk")
        assert all(
            r.headers["authorization"] == basic_auth(PUBLIC_KEY, SECRET_KEY)
            for r in langfuse.seen()
        )
        assert not [s for s in stack.spans() if s.scope == "langfuse-sdk"], (
            "the langfuse SDK's spans leaked into the gateway's own telemetry"
        )
    finally:
        stack.stop()
