"""The optional Langfuse overlay (issue #6), natively: the real collector with
otel-collector/config.langfuse.yaml fans the real proxy's spans out to a real HTTP stand-in for
Langfuse (tests/doubles/fake_langfuse.py: Basic auth, protobuf decoding, public API), a stalled
Langfuse holds back nothing else, `make verify` hop 7 is exercised against that stand-in, the
compose overlay goes through compose's own loader, and LiteLLM's own `langfuse` callback leaves
the proxy serving.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from llm_otel import contract
from scripts.envfile import langfuse as langfuse_env
from scripts.envfile.parser import parse_env_text
from scripts.envfile.spec import KeySpec
from scripts.native_stack import collector as collector_support
from scripts.native_stack import otlp
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
    COLLECTOR_DIR,
    LITELLM_CONFIG,
    REPO,
)
from scripts.native_stack.procs import free_port
from scripts.verify.context import CallRecord, Context, Options
from scripts.verify.hops.langfuse import EXPORTER, check
from scripts.verify.results import Result, State
from tests.conftest import require_collector
from tests.doubles.fake_langfuse import FakeLangfuse, ReceivedSpan, basic_auth
from tests.support.compose_loader import load_env_file

PUBLIC_KEY = f"pk-lf-{secrets.token_hex(16)}"
SECRET_KEY = f"sk-lf-{secrets.token_hex(16)}"

LANGFUSE_COLLECTOR_CONFIG = COLLECTOR_DIR / "config.langfuse.yaml"
# The order the compose overlay passes them: base, Langfuse, then the user's extras last.
# The Langfuse slot (second file) filled, as the overlay's mount does in compose.
WITH_LANGFUSE = (COLLECTOR_CONFIGS[0], LANGFUSE_COLLECTOR_CONFIG, *COLLECTOR_CONFIGS[2:])
COMPOSE_OVERLAY = REPO / "langfuse" / "compose.yaml"
USERS_XML = REPO / "langfuse" / "clickhouse-users.xml"


# The harness's test overlay sends traces to the file exporter only; add Langfuse beside it.
def langfuse_collector_env(
    fake: FakeLangfuse, public: str = PUBLIC_KEY, secret: str = SECRET_KEY
) -> dict[str, str]:
    return {
        "LANGFUSE_OTLP_BASIC_AUTH": langfuse_env.otlp_basic_auth(public, secret),
        "LANGFUSE_OTLP_ENDPOINT": fake.otlp_endpoint,
    }


class LangfuseStack(NativeStack):
    """The native stack whose collector also exports to a fake Langfuse."""

    def __init__(self, workdir: Path, fake: FakeLangfuse, options: StackOptions) -> None:
        super().__init__(workdir, options)
        self.fake = fake

    def collector_env(self) -> dict[str, str]:
        return {**super().collector_env(), **langfuse_collector_env(self.fake)}


@pytest.fixture(scope="module")
def langfuse() -> Iterator[FakeLangfuse]:
    with FakeLangfuse(PUBLIC_KEY, SECRET_KEY) as fake:
        yield fake


@pytest.fixture(scope="module")
def lf_stack(
    tmp_path_factory: pytest.TempPathFactory, langfuse: FakeLangfuse
) -> Iterator[LangfuseStack]:
    require_collector()
    with pytest.MonkeyPatch.context() as mp:
        # The collector runs with config.langfuse.yaml as its own --config, as in compose.
        mp.setattr(collector_support, "COLLECTOR_CONFIGS", WITH_LANGFUSE)
        running = LangfuseStack(tmp_path_factory.mktemp("langfuse-stack"), langfuse, StackOptions())
        with running:
            yield running


def call(
    stack: NativeStack, model: str = MOCK_MODEL, content: str = "hello", **body: Any
) -> tuple[str, httpx.Response]:
    trace_id = secrets.token_hex(16)
    response = stack.chat(
        model, content, headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}, **body
    )
    assert response.status_code == 200, response.text
    return trace_id, response


def in_trace(trace_id: str) -> Any:
    return lambda s: s.trace_id == trace_id


# The name config.langfuse.yaml gives the cost on Langfuse's pipeline: the one Langfuse reads.
LANGFUSE_COST = contract.LEGACY_GEN_AI_USAGE_COST


def as_langfuse_gets_it(attributes: dict[str, Any]) -> dict[str, Any]:
    """A span's attributes after the Langfuse pipeline's cost rename (and nothing else)."""
    out = dict(attributes)
    if contract.GEN_AI_USAGE_COST_AMOUNT in out:
        out[LANGFUSE_COST] = out.pop(contract.GEN_AI_USAGE_COST_AMOUNT)
        out.pop(contract.GEN_AI_USAGE_COST_CURRENCY, None)
    return out


def comparable(span: otlp.Span | ReceivedSpan) -> dict[str, Any]:
    return {
        "name": span.name,
        "kind": span.kind,
        "parent": span.parent_span_id,
        "status": span.status_code,
        "start": span.start_ns,
        "end": span.end_ns,
        "scope": span.scope,
        "attributes": span.attributes,
        "resource": span.resource,
    }


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
    base = yaml.safe_load(COLLECTOR_CONFIGS[0].read_text())["service"]["pipelines"]["traces"]
    overlay = yaml.safe_load(LANGFUSE_COLLECTOR_CONFIG.read_text())
    assert set(overlay["service"]["pipelines"]) == {"traces/langfuse"}
    langfuse = overlay["service"]["pipelines"]["traces/langfuse"]
    assert langfuse["receivers"] == base["receivers"]
    assert langfuse["exporters"] == [EXPORTER]
    assert langfuse["processors"] == [*base["processors"], "transform/langfuse"]
    exporter = overlay["exporters"][EXPORTER]
    assert exporter["sending_queue"]["enabled"] is True
    assert exporter["headers"]["Authorization"] == "Basic ${env:LANGFUSE_OTLP_BASIC_AUTH}"


def test_llm_spans_reach_langfuse_exactly_as_the_other_exporter_got_them(
    lf_stack: LangfuseStack, langfuse: FakeLangfuse
) -> None:
    trace_id, _ = call(lf_stack)
    exported = lf_stack.wait_for(
        lambda: (
            found if (found := [s for s in lf_stack.spans() if s.trace_id == trace_id]) else None
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
    lf_stack: LangfuseStack, langfuse: FakeLangfuse
) -> None:
    trace_id, response = call(lf_stack)
    langfuse.wait_for_spans(lambda s: s.trace_id == trace_id and s.is_llm)
    trace = httpx.get(
        f"{langfuse.base_url}/api/public/traces/{trace_id}",
        auth=(PUBLIC_KEY, SECRET_KEY),
        timeout=10,
    ).json()
    generation = next(o for o in trace["observations"] if o["type"] == "GENERATION")
    usage = response.json()["usage"]
    assert generation["model"]
    assert generation["usageDetails"]["input"] == usage["prompt_tokens"]
    assert generation["usageDetails"]["output"] == usage["completion_tokens"]
    assert generation["calculatedTotalCost"] == pytest.approx(
        float(response.headers["x-litellm-response-cost"])
    )
    assert generation["completionStartTime"] is None  # not streamed: no time to first token


def test_usage_split_for_langfuse_and_clickhouse(
    lf_stack: LangfuseStack, langfuse: FakeLangfuse
) -> None:
    """Langfuse v3.225 subtracts cache reads from the inclusive input_tokens itself but not
    reasoning from output_tokens: its copy has no reasoning split (no double count); ClickHouse's
    copy keeps every figure, and none of the Langfuse-only attributes."""
    trace_id, _ = call(
        lf_stack,
        PROVIDER_MODEL,
        "[[cached=512]] [[reasoning=40]] think",
        stream=True,
        stream_options={"include_usage": True},
    )
    sent = langfuse.wait_for_spans(lambda s: s.trace_id == trace_id and s.is_llm)[0].attributes
    stored = lf_stack.wait_for_llm_spans(1, where=lambda s: s.trace_id == trace_id)[0].attributes
    assert sent[contract.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 512
    assert contract.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS not in sent
    assert sent[contract.GEN_AI_USAGE_OUTPUT_TOKENS] == stored[contract.GEN_AI_USAGE_OUTPUT_TOKENS]
    assert stored[contract.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == 40
    assert not [k for k in stored if k.startswith("langfuse.")]


def test_streamed_call_carries_langfuse_completion_start_time(
    lf_stack: LangfuseStack, langfuse: FakeLangfuse
) -> None:
    trace_id, _ = call(lf_stack, PROVIDER_MODEL, "[[delay=0.3]] stream please", stream=True)
    llm = langfuse.wait_for_spans(lambda s: s.trace_id == trace_id and s.is_llm)[0]
    ttfc = llm.attributes[contract.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK]
    stamp = llm.attributes["langfuse.observation.completion_start_time"]
    # RFC 3339 in UTC, microseconds with trailing zeros dropped (what JavaScript's Date parses).
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z", stamp), stamp
    start = datetime.fromtimestamp(llm.start_ns / 1e9, tz=UTC)
    derived = (datetime.fromisoformat(stamp.replace("Z", "+00:00")) - start).total_seconds()
    assert derived == pytest.approx(ttfc, abs=2e-6)
    trace = httpx.get(
        f"{langfuse.base_url}/api/public/traces/{trace_id}",
        auth=(PUBLIC_KEY, SECRET_KEY),
        timeout=10,
    ).json()
    generation = next(o for o in trace["observations"] if o["type"] == "GENERATION")
    assert generation["timeToFirstToken"] == pytest.approx(ttfc, abs=1e-3)


# ---- a slow Langfuse holds nothing back -----------------------------------------------------


def test_stalled_langfuse_neither_delays_nor_drops_the_other_exporter(
    lf_stack: LangfuseStack, langfuse: FakeLangfuse
) -> None:
    langfuse.stall(120)  # far beyond the exporter's 10 s timeout
    traces, delays = [], []
    try:
        started = time.monotonic()
        while time.monotonic() - started < 13:  # past one timeout of the Langfuse exporter
            t0 = time.monotonic()
            trace_id, _ = call(lf_stack)
            lf_stack.wait_for_llm_spans(1, timeout=10, where=in_trace(trace_id))
            delays.append(time.monotonic() - t0)
            traces.append(trace_id)
            time.sleep(0.5)
        # Batch (1 s) + file flush (100 ms) + the SDK's 200 ms schedule: well under 4 s.
        assert max(delays) < 4, f"the other exporter was held back: {delays}"
        assert langfuse.exports_in_flight >= 1, "Langfuse was not being waited on"
        log = lf_stack.collector.log_text() if lf_stack.collector else ""
        assert re.search(
            r"otlp_http/langfuse.*(retry|Will retry)|(retry|Will retry).*"
            r"otlp_http/langfuse",
            log,
            re.I,
        ), "the Langfuse export never timed out"
        for trace_id in traces:  # nothing dropped, nothing doubled on the other side
            assert len([s for s in lf_stack.llm_spans() if s.trace_id == trace_id]) == 1
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


# ---- make verify, hop 7 ---------------------------------------------------------------------


def hop7(
    base_url: str,
    trace_id: str,
    *,
    timeout_s: float,
    poll_interval_s: float = 0.1,
    public_key: str = PUBLIC_KEY,
    expected: tuple[int | None, int | None, float | None] = (None, None, None),
    metrics_url: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Result:
    """Hop 7 against base_url as `make verify` runs it after the call with this trace id, with
    the gateway's (input tokens, output tokens, cost) of that call as expected."""
    values = {
        "COMPOSE_FILE": "docker-compose.yml:langfuse/compose.yaml",
        "BIND_ADDRESS": "127.0.0.1",
        "LANGFUSE_PORT": str(httpx.URL(base_url).port),
        langfuse_env.PUBLIC_KEY: public_key,
        langfuse_env.SECRET_KEY: SECRET_KEY,
        langfuse_env.BASIC_AUTH: langfuse_env.otlp_basic_auth(public_key, SECRET_KEY),
        **(
            {"OTEL_COLLECTOR_METRICS_PORT": str(httpx.URL(metrics_url).port)} if metrics_url else {}
        ),
        **(env or {}),
    }
    ctx = Context(
        Options(poll_interval_s=poll_interval_s),
        parse_env_text("".join(f"{k}={v}\n" for k, v in values.items())),
        KeySpec(source="test", defaults={}),
    )
    ctx.call = CallRecord(trace_id, MOCK_MODEL, *expected)
    return check(ctx, timeout_s)


def test_hop7_ok_for_the_verification_call(lf_stack: LangfuseStack, langfuse: FakeLangfuse) -> None:
    trace_id, response = call(lf_stack)
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
    lf_stack: LangfuseStack, langfuse: FakeLangfuse
) -> None:
    assert lf_stack.collector is not None
    outcome = hop7(
        langfuse.base_url,
        secrets.token_hex(16),
        timeout_s=1.5,
        poll_interval_s=0.3,
        metrics_url=lf_stack.collector.metrics_url,
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


# ---- LiteLLM's own langfuse callback --------------------------------------------------------


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


# ---- the compose overlay, through compose's loader ------------------------------------------

BASE_SECRETS = {
    "LITELLM_MASTER_KEY": "sk-test-master-key",
    "CLICKHOUSE_ADMIN_PASSWORD": "test-admin-password",
    "CLICKHOUSE_WRITER_PASSWORD": "test-writer-password",
    "CLICKHOUSE_READER_PASSWORD": "test-reader-password",
}
LANGFUSE_SECRETS = {
    "LANGFUSE_POSTGRES_PASSWORD": "test-postgres",
    "LANGFUSE_REDIS_PASSWORD": "test-redis",
    "LANGFUSE_MINIO_PASSWORD": "test-minio-pw",
    "LANGFUSE_CLICKHOUSE_PASSWORD": "test-clickhouse",
    "LANGFUSE_SALT": "test-salt",
    "LANGFUSE_ENCRYPTION_KEY": "0" * 64,
    "LANGFUSE_NEXTAUTH_SECRET": "test-nextauth",
    "LANGFUSE_INIT_PROJECT_PUBLIC_KEY": PUBLIC_KEY,
    "LANGFUSE_INIT_PROJECT_SECRET_KEY": SECRET_KEY,
    "LANGFUSE_INIT_USER_PASSWORD": "test-user-password",
    "LANGFUSE_OTLP_BASIC_AUTH": langfuse_env.otlp_basic_auth(PUBLIC_KEY, SECRET_KEY),
}
NEW_SERVICES = {
    "langfuse-web",
    "langfuse-worker",
    "langfuse-postgres",
    "langfuse-redis",
    "langfuse-minio",
    "langfuse-clickhouse-init",
}
ONE_SHOT = {"langfuse-clickhouse-init"}


def load(tool: Path, tmp_path: Path, values: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    env_file = tmp_path / "test.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return load_env_file(tool, env_file)


ENABLED = {
    **BASE_SECRETS,
    **LANGFUSE_SECRETS,
    "COMPOSE_FILE": "docker-compose.yml:langfuse/compose.yaml",
}


@pytest.fixture(scope="module")
def model(compose_config: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    result = load(compose_config, tmp_path_factory.mktemp("compose"), ENABLED)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_overlay_adds_langfuse_services(model: dict[str, Any]) -> None:
    assert set(model["services"]) >= NEW_SERVICES


def test_overlay_ports_bind_loopback(model: dict[str, Any]) -> None:
    for name, service in model["services"].items():
        for port in service.get("ports", []):
            assert port.get("host_ip") == "127.0.0.1", (name, port)
    assert model["services"]["langfuse-web"]["ports"][0]["published"] == "3000"
    # Nothing else of Langfuse's is published: Postgres, Redis, MinIO stay on the network.
    assert [n for n in NEW_SERVICES if model["services"][n].get("ports")] == ["langfuse-web"]


def test_overlay_services_follow_the_base_conventions(model: dict[str, Any]) -> None:
    for name in NEW_SERVICES:
        service = model["services"][name]
        assert service["logging"]["driver"] == "json-file", name
        assert service["logging"]["options"]["max-size"], name
        assert service["deploy"]["resources"]["limits"]["memory"], name
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        if name in ONE_SHOT:
            assert service["restart"] == "no"
            continue
        assert service["restart"] == "unless-stopped", name
        health = service["healthcheck"]
        assert health["test"][0] in ("CMD", "CMD-SHELL"), name
        for timing in ("interval", "timeout", "retries", "start_period"):
            assert health.get(timing), (name, timing)


def test_overlay_waits_for_health(model: dict[str, Any]) -> None:
    for name in NEW_SERVICES:
        for dep, spec in model["services"][name].get("depends_on", {}).items():
            want = "service_completed_successfully" if dep in ONE_SHOT else "service_healthy"
            assert spec["condition"] == want, (name, dep)
            if want == "service_healthy":
                assert model["services"][dep].get("healthcheck"), dep
    web = model["services"]["langfuse-web"]["depends_on"]
    assert {
        "langfuse-postgres",
        "langfuse-redis",
        "langfuse-minio",
        "clickhouse",
        "langfuse-clickhouse-init",
    } <= set(web)
    # Spans must reach ClickHouse whatever Langfuse does.
    assert not set(model["services"]["otel-collector"].get("depends_on", {})) & NEW_SERVICES


def test_overlay_images_are_exact_releases(model: dict[str, Any]) -> None:
    images = {n: model["services"][n]["image"] for n in NEW_SERVICES}
    for name, image in images.items():
        tag = image.rsplit(":", 1)[1] if ":" in image.split("/")[-1] else ""
        assert tag and tag != "latest", (name, image)
    web, worker = images["langfuse-web"], images["langfuse-worker"]
    assert web.startswith("langfuse/langfuse:") and worker.startswith("langfuse/langfuse-worker:")
    # One migration set: the same version, and an exact x.y.z (never the floating 3 or 3.225).
    assert web.split(":")[1] == worker.split(":")[1]
    assert re.fullmatch(r"3\.\d+\.\d+", web.split(":")[1])


def test_overlay_extends_the_collector(model: dict[str, Any]) -> None:
    collector = model["services"]["otel-collector"]
    assert "--config=/etc/otelcol/overlays/langfuse.yaml" in collector["command"]
    mounts = {v["target"]: v for v in collector["volumes"]}
    assert {
        "/etc/otelcol/config.yaml",
        "/etc/otelcol/config.extras.yaml",
        "/var/lib/otelcol/file_storage",
    } <= set(mounts), "base mounts must survive"
    # The overlay's file replaces the empty slot; the other overlays' slots stay empty.
    assert Path(mounts["/etc/otelcol/overlays/agentops.yaml"]["source"]).name == "config.none.yaml"
    langfuse_mount = mounts["/etc/otelcol/overlays/langfuse.yaml"]
    assert Path(langfuse_mount["source"]) == LANGFUSE_COLLECTOR_CONFIG
    assert langfuse_mount["read_only"] is True
    env = collector["environment"]
    assert env["LANGFUSE_OTLP_BASIC_AUTH"] == LANGFUSE_SECRETS["LANGFUSE_OTLP_BASIC_AUTH"]
    assert env["LANGFUSE_OTLP_ENDPOINT"] == "http://langfuse-web:3000/api/public/otel"
    assert env["CLICKHOUSE_WRITER_PASSWORD"] == BASE_SECRETS["CLICKHOUSE_WRITER_PASSWORD"]


def test_overlay_extends_clickhouse_with_the_langfuse_user(model: dict[str, Any]) -> None:
    clickhouse = model["services"]["clickhouse"]
    mounts = {v["target"]: v for v in clickhouse["volumes"]}
    users = mounts["/etc/clickhouse-server/conf.d/langfuse-users.xml"]
    assert Path(users["source"]) == USERS_XML and users["read_only"] is True
    assert "/etc/clickhouse-server/users.d" in mounts, "base mounts must survive"
    env = clickhouse["environment"]
    assert env["LANGFUSE_CLICKHOUSE_PASSWORD"] == LANGFUSE_SECRETS["LANGFUSE_CLICKHOUSE_PASSWORD"]
    web = model["services"]["langfuse-web"]["environment"]
    assert web["CLICKHOUSE_USER"] == "langfuse" and web["CLICKHOUSE_DB"] == "langfuse"
    assert web["CLICKHOUSE_PASSWORD"] == env["LANGFUSE_CLICKHOUSE_PASSWORD"]
    assert web["CLICKHOUSE_CLUSTER_ENABLED"] == "false"


def test_overlay_initialises_langfuse_headlessly(model: dict[str, Any]) -> None:
    web = model["services"]["langfuse-web"]["environment"]
    assert web["LANGFUSE_INIT_PROJECT_PUBLIC_KEY"] == PUBLIC_KEY
    assert web["LANGFUSE_INIT_PROJECT_SECRET_KEY"] == SECRET_KEY
    for key in (
        "ORG_ID",
        "ORG_NAME",
        "PROJECT_ID",
        "PROJECT_NAME",
        "USER_EMAIL",
        "USER_NAME",
        "USER_PASSWORD",
    ):
        assert web[f"LANGFUSE_INIT_{key}"], key
    assert web["AUTH_DISABLE_SIGNUP"] == "true"
    assert web["NEXTAUTH_URL"] == "http://localhost:3000"
    assert web["HOSTNAME"] == "0.0.0.0"
    assert len(web["ENCRYPTION_KEY"]) == 64
    worker = model["services"]["langfuse-worker"]["environment"]
    assert not [k for k in worker if k.startswith("LANGFUSE_INIT_")]
    redis = model["services"]["langfuse-redis"]["command"]
    assert redis[redis.index("--maxmemory-policy") + 1] == "noeviction"


def test_overlay_bind_sources_exist(model: dict[str, Any]) -> None:
    for name, service in model["services"].items():
        for volume in service.get("volumes", []):
            if volume["type"] == "bind":
                assert Path(volume["source"]).exists(), (name, volume["source"])


def test_overlay_off_leaves_the_base_stack_unchanged(compose_config: Path, tmp_path: Path) -> None:
    result = load(compose_config, tmp_path, BASE_SECRETS)
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert not NEW_SERVICES & set(services)
    assert not [v for v in services["clickhouse"]["volumes"] if "langfuse" in v["source"]]
    sources = [v["source"] for v in services["otel-collector"]["volumes"]]
    assert not [src for src in sources if "config.langfuse.yaml" in src]


@pytest.mark.parametrize("secret", sorted(LANGFUSE_SECRETS))
def test_overlay_refuses_a_missing_secret(
    compose_config: Path, tmp_path: Path, secret: str
) -> None:
    result = load(compose_config, tmp_path, {k: v for k, v in ENABLED.items() if k != secret})
    assert result.returncode == 1
    assert f"required variable {secret} is missing a value" in result.stderr


def test_env_example_turns_the_overlay_on_after_make_init(
    compose_config: Path, tmp_path: Path
) -> None:
    """The documented way: uncomment COMPOSE_FILE in .env.example, `make init`, `docker compose`.
    Needs the overlay's keys in .env.example and `make init` (scripts/envfile/init.py) using
    scripts/envfile/langfuse.py (the encryption key's format, the derived OTLP header)."""
    from scripts.envfile import init as init_env

    text = (REPO / ".env.example").read_text()
    enable = r"^# (COMPOSE_FILE=docker-compose\.yml:langfuse/compose\.yaml)$"
    assert re.search(enable, text, re.M), "the commented COMPOSE_FILE line is missing"
    example = tmp_path / ".env.example"
    example.write_text(re.sub(enable, r"\1", text, flags=re.M))
    env_file = tmp_path / ".env"
    assert init_env.main(["--example", str(example), "--output", str(env_file)]) == 0
    values = parse_env_text(env_file.read_text()).values
    missing = sorted(set(LANGFUSE_SECRETS) - set(values))
    assert not missing, f".env.example lacks the overlay's keys: {missing}"
    result = load_env_file(compose_config, env_file)
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    web = services["langfuse-web"]["environment"]
    assert re.fullmatch(r"[0-9a-f]{64}", web["ENCRYPTION_KEY"]), "Langfuse needs 64 hex chars"
    public = web["LANGFUSE_INIT_PROJECT_PUBLIC_KEY"]
    secret = web["LANGFUSE_INIT_PROJECT_SECRET_KEY"]
    assert public.startswith("pk-lf-") and secret.startswith("sk-lf-")
    header = services["otel-collector"]["environment"]["LANGFUSE_OTLP_BASIC_AUTH"]
    assert base64.b64decode(header).decode() == f"{public}:{secret}"
    overlay_env = [v for n in NEW_SERVICES for v in services[n].get("environment", {}).values()]
    assert not [v for v in overlay_env if "CHANGEME" in str(v)]


def test_every_secret_in_the_overlay_is_a_changeme_key_of_env_example() -> None:
    """`# CHANGEME` means one thing: a value the user supplies, marked in .env.example. The
    overlay only references those keys (`${KEY:?...}`), so every one must be marked there."""
    marked = {
        line.split("=", 1)[0]
        for line in (REPO / ".env.example").read_text().splitlines()
        if line.rstrip().endswith("# CHANGEME")
    }
    overlay = COMPOSE_OVERLAY.read_text()
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", overlay))
    assert required, "the overlay's secrets are `${KEY:?...}` references"
    assert required <= marked, f"mark these in .env.example with # CHANGEME: {required - marked}"
    assert "CHANGEME" not in overlay


# ---- ClickHouse user, .env helper -----------------------------------------------------------


def test_clickhouse_user_sees_only_its_own_database() -> None:
    user = ET.parse(USERS_XML).getroot().find("users/langfuse")
    assert user is not None
    password = user.find("password")
    assert password is not None and password.get("from_env") == "LANGFUSE_CLICKHOUSE_PASSWORD"
    grants = [q.text or "" for q in user.findall("grants/query")]
    assert "GRANT ALL ON langfuse.*" in grants
    assert not [g for g in grants if "otel" in g or re.search(r"ALL ON \*\.\*", g)]


def test_basic_auth_is_base64_of_public_colon_secret() -> None:
    value = langfuse_env.otlp_basic_auth("pk-lf-1", "sk-lf-2")
    assert base64.b64decode(value) == b"pk-lf-1:sk-lf-2"
    assert basic_auth("pk-lf-1", "sk-lf-2") == f"Basic {value}"


def test_env_text_gets_the_derived_header_and_keeps_comments() -> None:
    text = (
        "LANGFUSE_INIT_PROJECT_PUBLIC_KEY=pk-lf-a # CHANGEME\n"
        "LANGFUSE_INIT_PROJECT_SECRET_KEY=sk-lf-b # CHANGEME\n"
        "LANGFUSE_OTLP_BASIC_AUTH=4f3c2a # CHANGEME\n"
    )
    updated = langfuse_env.with_otlp_basic_auth(text)
    expected = langfuse_env.otlp_basic_auth("pk-lf-a", "sk-lf-b")
    assert f"LANGFUSE_OTLP_BASIC_AUTH={expected} # CHANGEME\n" in updated
    assert langfuse_env.basic_auth_mismatch(parse_env_text(updated).values) is None
    assert langfuse_env.basic_auth_mismatch(parse_env_text(text).values)
    # Without keys (overlay never configured) nothing changes.
    assert (
        langfuse_env.with_otlp_basic_auth("BIND_ADDRESS=127.0.0.1\n") == "BIND_ADDRESS=127.0.0.1\n"
    )


def test_generators_make_what_langfuse_accepts() -> None:
    made = {key: make() for key, make in langfuse_env.GENERATORS}
    assert re.fullmatch(r"[0-9a-f]{64}", made["LANGFUSE_ENCRYPTION_KEY"])
    assert made[langfuse_env.PUBLIC_KEY].startswith("pk-lf-")
    assert made[langfuse_env.SECRET_KEY].startswith("sk-lf-")


def test_cli_writes_the_header_into_an_existing_env(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "LANGFUSE_INIT_PROJECT_PUBLIC_KEY=pk-lf-x\nLANGFUSE_INIT_PROJECT_SECRET_KEY=sk-lf-y\n"
    )
    assert langfuse_env.main(["--env-file", str(env_file), "--write"]) == 0
    values = parse_env_text(env_file.read_text()).values
    assert values["LANGFUSE_OTLP_BASIC_AUTH"] == langfuse_env.otlp_basic_auth("pk-lf-x", "sk-lf-y")
