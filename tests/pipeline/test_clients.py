"""Real client libraries against the real proxy, with the settings docs/CLIENTS.md shows: the
OpenAI SDK (sync, async, streaming, configured from the environment), LangChain's ChatOpenAI,
Open WebUI's forwarded headers; per-app attribution without a database; and one trace from an
OpenTelemetry-instrumented app through the gateway into ClickHouse."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI, OpenAI

from llm_otel import contract
from scripts import report
from scripts.native_stack.harness import PROVIDER_MODEL, NativeStack
from scripts.native_stack.otlp import Span


@pytest.fixture
def sdk_env(clickhouse_stack: NativeStack, monkeypatch: pytest.MonkeyPatch) -> None:
    """What docs/CLIENTS.md tells an OpenAI-SDK app: two variables, /v1 in the URL."""
    monkeypatch.setenv("OPENAI_BASE_URL", f"{clickhouse_stack.proxy_url}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", clickhouse_stack.secrets.master_key)


def llm_span(stack: NativeStack, call_id: str) -> Span:
    return stack.wait_for_llm_spans(
        1, where=lambda s: s.attributes.get(contract.LITELLM_CALL_ID) == call_id
    )[0]


def test_openai_sdk_from_the_environment(clickhouse_stack: NativeStack, sdk_env: None) -> None:
    app = {"x-litellm-tags": "app:billing-backend"}
    client = OpenAI()  # OPENAI_BASE_URL / OPENAI_API_KEY only
    sync = client.chat.completions.with_raw_response.create(
        model=PROVIDER_MODEL,
        messages=[{"role": "user", "content": "hi"}],
        user="customer-7",
        extra_headers=app,
    )
    assert sync.parse().choices[0].message.content

    async def async_call() -> Any:
        async with AsyncOpenAI() as aclient:
            return await aclient.chat.completions.with_raw_response.create(
                model=PROVIDER_MODEL,
                messages=[{"role": "user", "content": "hi"}],
                user="customer-7",
                extra_headers=app,
            )

    asynchronous = asyncio.run(async_call())
    with client.chat.completions.with_streaming_response.create(
        model=PROVIDER_MODEL,
        messages=[{"role": "user", "content": "stream"}],
        stream=True,
        stream_options={"include_usage": True},
        user="customer-7",
        extra_headers=app,
    ) as streamed:
        chunks = list(streamed.parse())
    assert chunks and chunks[-1].usage is not None
    for raw, stream in ((sync, False), (asynchronous, False), (streamed, True)):
        a = llm_span(clickhouse_stack, raw.headers["x-litellm-call-id"]).attributes
        assert (
            a[contract.LITELLM_APP] == "billing-backend"
            and a[contract.LITELLM_END_USER] == "customer-7"
        )
        assert a.get(contract.GEN_AI_REQUEST_STREAM, False) is stream  # set only when streaming
        assert (contract.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in a) is stream


def test_langchain_chat_openai(clickhouse_stack: NativeStack) -> None:
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(
        base_url=f"{clickhouse_stack.proxy_url}/v1",
        api_key=clickhouse_stack.secrets.master_key,
        model=PROVIDER_MODEL,
        default_headers={"x-litellm-tags": "app:agent"},
        model_kwargs={"user": "agent-run-1"},
    )
    message = chat.invoke("hello")
    call_id = message.response_metadata.get("id") or ""
    assert message.content
    span = clickhouse_stack.wait_for_llm_spans(
        1, where=lambda s: s.attributes.get(contract.GEN_AI_RESPONSE_ID) == call_id
    )[0]
    assert span.attributes[contract.LITELLM_APP] == "agent"
    assert span.attributes[contract.LITELLM_END_USER] == "agent-run-1"


def test_open_webui_forwarded_headers(clickhouse_stack: NativeStack) -> None:
    """Open WebUI with ENABLE_FORWARD_USER_INFO_HEADERS=true sends these with each call."""
    headers = {
        **clickhouse_stack.auth(),
        "X-OpenWebUI-User-Id": "u-5f1c",
        "X-OpenWebUI-Chat-Id": "chat-9",
        "X-OpenWebUI-User-Email": "someone@example.com",
        "X-OpenWebUI-User-Name": "Some One",
        "X-OpenWebUI-User-Role": "user",
    }
    response = httpx.post(
        f"{clickhouse_stack.proxy_url}/v1/chat/completions",
        headers=headers,
        timeout=30,
        json={"model": PROVIDER_MODEL, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.status_code == 200, response.text
    a = llm_span(clickhouse_stack, response.headers["x-litellm-call-id"]).attributes
    assert a[contract.LITELLM_APP] == "open-webui"
    assert a[contract.LITELLM_END_USER] == "u-5f1c"  # the opaque id, not the e-mail
    assert a[contract.GEN_AI_CONVERSATION_ID] == "chat-9"
    assert "someone@example.com" not in repr(clickhouse_stack.spans())


def test_body_tags_and_session_id(clickhouse_stack: NativeStack) -> None:
    """Apps that cannot set headers put the same facts in the body (LiteLLM's `tags`/`metadata`)."""
    response = clickhouse_stack.chat(
        PROVIDER_MODEL, tags=["app:langflow", "team:sales"], metadata={"session_id": "session-77"}
    )
    assert response.status_code == 200, response.text
    a = llm_span(clickhouse_stack, response.headers["x-litellm-call-id"]).attributes
    assert a[contract.LITELLM_APP] == "langflow"
    assert a[contract.LITELLM_REQUEST_TAGS] == ["app:langflow", "team:sales"]
    assert a[contract.GEN_AI_CONVERSATION_ID] == "session-77"


def test_each_app_is_its_own_report_row(clickhouse_stack: NativeStack) -> None:
    for app, calls in (("crm", 2), ("chat-ui", 3)):
        for _ in range(calls):
            assert (
                clickhouse_stack.chat(
                    PROVIDER_MODEL, headers={"x-litellm-tags": f"app:{app}"}
                ).status_code
                == 200
            )
    reader = clickhouse_stack.clickhouse.client("otel_reader")
    sql = report.build_report_sql("app", 3600)
    deadline = time.monotonic() + 30
    while True:
        rows = {r["group_key"]: r["calls"] for r in reader.query(sql).named_results()}
        if (rows.get("crm") == 2 and rows.get("chat-ui") == 3) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert rows.get("crm") == 2 and rows.get("chat-ui") == 3, rows


def test_instrumented_app_continues_its_trace_through_the_gateway(
    clickhouse_stack: NativeStack,
) -> None:
    """docs/CLIENTS.md's two lines: inject the W3C context into the request's headers. The
    app's span, the gateway's server span and the LLM span share one trace, parented in turn."""
    from opentelemetry import propagate
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    assert clickhouse_stack.collector is not None
    provider = TracerProvider(resource=Resource.create({"service.name": "my-backend"}))
    provider.add_span_processor(
        SimpleSpanProcessor(
            OTLPSpanExporter(endpoint=f"{clickhouse_stack.collector.otlp_http_url}/v1/traces")
        )
    )
    client = OpenAI(
        base_url=f"{clickhouse_stack.proxy_url}/v1", api_key=clickhouse_stack.secrets.master_key
    )
    with provider.get_tracer("my-backend").start_as_current_span("summarise ticket") as span:
        headers: dict[str, str] = {}
        propagate.inject(headers)
        client.chat.completions.create(
            model=PROVIDER_MODEL,
            extra_headers=headers,
            messages=[{"role": "user", "content": "summarise"}],
        )
        trace_id = f"{span.get_span_context().trace_id:032x}"
        app_span_id = f"{span.get_span_context().span_id:016x}"
    provider.shutdown()
    reader = clickhouse_stack.clickhouse.client("otel_reader")
    deadline = time.monotonic() + 30
    while True:
        rows = reader.query(
            "SELECT SpanId, ParentSpanId, ServiceName, SpanKind, ScopeName, ScopeVersion "
            "FROM otel_traces WHERE TraceId = {t:String}",
            parameters={"t": trace_id},
        ).named_results()
        by_service = {}
        for row in rows:
            by_service.setdefault(row["ServiceName"], []).append(row)
        if by_service.get("litellm-proxy") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    (app,) = by_service["my-backend"]
    (llm,) = by_service["litellm-proxy"]  # FastAPI's own spans are off: the LLM span alone
    assert app["SpanId"] == app_span_id
    assert (llm["SpanKind"], llm["ParentSpanId"]) == ("Client", app_span_id)
    assert (llm["ScopeName"], llm["ScopeVersion"]) == (contract.SCOPE_NAME, contract.SCOPE_VERSION)
    calls = reader.query(
        "SELECT count() FROM llm_calls WHERE trace_id = {t:String}", parameters={"t": trace_id}
    ).result_rows[0][0]
    assert calls == 1
