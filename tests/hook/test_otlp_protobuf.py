"""The lean OTLP encoder writes the bytes the SDK's encoder writes, and the real collector
reads them as the spans that were sent."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from llm_otel.lean_exporter import LeanOTLPSpanExporter, lean_or_sdk
from llm_otel.otlp_protobuf import encode_spans
from llm_otel.touchpoints import TOUCHPOINTS
from scripts.native_stack import collector as collector_process
from scripts.native_stack import otlp
from scripts.native_stack.harness import NativeStack
from tests.conftest import require_collector
from tests.support.tls import make_server_certificate

EVERY_VALUE = {
    "str.short": "chat",
    "str.empty": "",
    "str.long": "x" * 300,  # lengths of two bytes
    "str.unicode": "모델 ✓ émoji 🚀",
    "int.zero": 0,
    "int.small": 127,
    "int.two_bytes": 128,
    "int.negative": -5,
    "int.max": 2**63 - 1,
    "int.min": -(2**63),
    "float": 0.1,
    "float.negative": -1e-300,
    "float.whole": 3.0,
    "bool.true": True,
    "bool.false": False,
    "list.str": ["stop", "length", ""],
    "list.int": [1, 200, -3],
    "list.float": [0.5, 2.25],
    "list.bool": [True, False],
    "list.empty": [],
}
REMOTE_PARENT = SpanContext(
    trace_id=0x0AF7651916CD43DD8448EB211C80319C,
    span_id=0xB7AD6B7169203331,
    is_remote=True,
    trace_flags=TraceFlags(TraceFlags.SAMPLED),
    trace_state=TraceState([("vendor", "v1"), ("other", "x")]),
)


def sdk_spans() -> list[ReadableSpan]:
    """Spans as the SDK builds them, covering every field the encoder writes."""
    limits = SpanLimits(max_span_attributes=64, max_events=2, max_links=1)
    provider = TracerProvider(
        resource=Resource.create({"service.name": "lean", "service.instance.id": "h-1"}),
        span_limits=limits,
    )
    gateway = provider.get_tracer("llm_otel", "0.2.0", schema_url="https://example/s/1.0")
    other = provider.get_tracer("other", attributes={"scope.attr": "a"})
    bare = provider.get_tracer("bare")
    out = []

    span = gateway.start_span(
        "chat gpt-4o-mini",
        context=set_span_in_context(NonRecordingSpan(REMOTE_PARENT)),
        kind=SpanKind.CLIENT,
        attributes=EVERY_VALUE,
        links=[Link(REMOTE_PARENT, {"link.attr": 1}), Link(REMOTE_PARENT)],  # one dropped
        start_time=1_700_000_000_123_456_789,
    )
    for n in range(3):  # one dropped
        span.add_event("litellm.attempt.failed", {"n": n, "error.type": "RateLimitError"}, n + 1)
    span.set_status(Status(StatusCode.ERROR, "RateLimitError"))
    span.end(end_time=1_700_000_001_000_000_000)
    out.append(span)

    with gateway.start_as_current_span("parent", kind=SpanKind.SERVER) as parent:
        child = gateway.start_span("child")  # a local parent
        child.add_event("no attributes")
        child.set_status(Status(StatusCode.OK))
        child.end()
        parent.set_attribute("http.response.status_code", 200)
    out += [child, parent]

    for tracer, kind in ((other, SpanKind.PRODUCER), (bare, SpanKind.CONSUMER)):
        s = tracer.start_span("", kind=kind)  # an empty name
        s.end()
        out.append(s)

    crowded = gateway.start_span("crowded", attributes={f"a{i}": i for i in range(70)})
    crowded.end()  # 6 attributes dropped
    out.append(crowded)
    return out  # type: ignore[return-value]


def test_same_bytes_as_the_sdk_encoder() -> None:
    spans = sdk_spans()
    for dropped in ("dropped_attributes", "dropped_events", "dropped_links"):
        assert any(getattr(s, dropped) for s in spans), f"no span with {dropped}"
    assert encode_spans(spans) == sdk_encode(spans).SerializePartialToString()


def test_same_bytes_for_values_the_sdk_span_never_holds() -> None:
    """A ReadableSpan made directly (as a processor or a test may): bytes, maps, tuples,
    no scope, several resources, and values protobuf cannot hold (left out, as the SDK does)."""
    context = SpanContext(1, 2, is_remote=False)
    scoped = InstrumentationScope("s", "1", "https://example/scope", {"k": [1, 2]})

    def make(
        resource: Resource, scope: InstrumentationScope | None, **attrs: object
    ) -> ReadableSpan:
        return ReadableSpan(
            name="direct",
            context=context,
            resource=resource,
            attributes=attrs,
            events=[Event("e", {"m": {"nested": {"deep": [True]}}}, timestamp=5)],
            instrumentation_scope=scope,
            start_time=1,
            end_time=2,
        )

    first = Resource({"r": 1}, schema_url="https://example/resource")
    second = Resource({"r": 2})
    spans = [
        make(first, scoped, raw=b"\x00\xff", pair=("a", "b"), table={"x": 1, "y": ["z"]}),
        make(second, None, too_big=2**64, fine="kept", weird=object()),
        make(first, None, again=1.5),
    ]
    assert encode_spans(spans) == sdk_encode(spans).SerializePartialToString()


def test_the_lean_exporter_is_used_on_the_pinned_sdk() -> None:
    """If the SDK's private members it relies on moved, the hook would quietly fall back."""
    exporter = lean_or_sdk()
    try:
        assert isinstance(exporter, LeanOTLPSpanExporter)
    finally:
        exporter.shutdown()


def _moved(*args: object, **kwargs: object) -> object:
    raise ImportError("moved")


@pytest.mark.parametrize("what_moved", ["exporter members", "urllib3 transport"])
def test_an_sdk_that_moved_falls_back_to_its_exporter_counted(
    monkeypatch: pytest.MonkeyPatch, what_moved: str
) -> None:
    import llm_otel.lean_exporter

    if what_moved == "exporter members":
        monkeypatch.setattr(LeanOTLPSpanExporter, "supported", lambda self: False)
    else:
        monkeypatch.setattr(llm_otel.lean_exporter, "urllib3_transport", _moved)
    monkeypatch.setattr(TOUCHPOINTS, "missing", Counter())
    exporter = lean_or_sdk()
    try:
        assert type(exporter) is OTLPSpanExporter
        assert list(TOUCHPOINTS.missing) == [
            "opentelemetry-exporter-otlp-proto-http.OTLPSpanExporter._client"
        ]
    finally:
        exporter.shutdown()


@contextmanager
def running_collector(
    workdir: Path, receiver: dict[str, object] | None = None
) -> Iterator[collector_process.Collector]:
    """The shipped collector configuration with the harness's file exporters, no ClickHouse;
    `receiver`: settings merged into its OTLP/HTTP receiver."""
    require_collector()
    extra = {"receivers": {"otlp": {"protocols": {"http": receiver}}}} if receiver else None
    collector = collector_process.Collector(
        workdir / "collector",
        NativeStack(workdir).collector_env(),
        collector_process.test_overlay(
            workdir / "collector" / "exported", clickhouse=False, extra=extra
        ),
    )
    collector.start()
    try:
        yield collector
    finally:
        collector.stop()


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[collector_process.Collector]:
    with running_collector(tmp_path_factory.mktemp("lean-exporter")) as collector:
        yield collector


def test_the_real_collector_reads_what_was_sent(collector: collector_process.Collector) -> None:
    spans = sdk_spans()
    exporter = LeanOTLPSpanExporter(endpoint=f"{collector.otlp_http_url}/v1/traces", timeout=10)
    try:
        assert exporter.export(spans) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()

    def received() -> dict[str, otlp.Span]:
        got = {s.span_id: s for s in otlp.spans(collector.exported("traces"))}
        return got if len(got) >= len(spans) else {}

    got = wait_for(received)
    for sent in spans:
        context = sent.get_span_context()
        assert context is not None
        stored = got[f"{context.span_id:016x}"]
        assert stored.trace_id == f"{context.trace_id:032x}"
        assert stored.name == sent.name
        assert stored.kind == sent.kind.value + 1
        assert (stored.start_ns, stored.end_ns) == (sent.start_time, sent.end_time)
        assert stored.parent_span_id == (f"{sent.parent.span_id:016x}" if sent.parent else "")
        assert stored.status_code == sent.status.status_code.value
        assert stored.attributes == {
            k: list(v) if isinstance(v, tuple) else v for k, v in (sent.attributes or {}).items()
        }
        assert stored.resource["service.name"] == "lean"
        assert [(e.name, e.time_ns) for e in stored.events] == [
            (e.name, e.timestamp) for e in sent.events
        ]
    first = got[f"{spans[0].get_span_context().span_id:016x}"]  # type: ignore[union-attr]
    assert (first.scope, first.scope_version, first.schema_url) == (
        "llm_otel",
        "0.2.0",
        "https://example/s/1.0",
    )
    assert first.status_message == "RateLimitError"
    assert first.events[0].attributes == {"n": 1, "error.type": "RateLimitError"}


def test_spans_never_go_through_the_providers_proxy(
    collector: collector_process.Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy set for the gateway's provider traffic (HTTP(S)_PROXY) does not carry its spans:
    here a dead one, which `requests` would have used."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{collector.otlp_http_url}/v1/traces")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "3")
    exporter = lean_or_sdk()
    try:
        assert exporter.export(sdk_spans()[:1]) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()


def test_tls_as_the_otel_variables_say(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lean exporter's transport takes the CA the SDK would (OTEL_EXPORTER_OTLP_*
    CERTIFICATE) and refuses a collector it cannot verify."""
    cert = make_server_certificate(tmp_path / "tls")
    tls = {"tls": {"cert_file": str(cert.cert_file), "key_file": str(cert.key_file)}}
    with running_collector(tmp_path, tls) as collector:
        https = collector.otlp_http_url.replace("http://", "https://")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{https}/v1/traces")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "3")
        spans = sdk_spans()

        unverified = lean_or_sdk()
        try:
            assert unverified.export(spans[:1]) is SpanExportResult.FAILURE
        finally:
            unverified.shutdown()

        monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", str(cert.ca_file))
        verified = lean_or_sdk()
        try:
            assert isinstance(verified, LeanOTLPSpanExporter)
            assert verified.export(spans) is SpanExportResult.SUCCESS
        finally:
            verified.shutdown()
        wait_for(lambda: {s.span_id: s for s in otlp.spans(collector.exported("traces"))})


def wait_for(
    probe: Callable[[], dict[str, otlp.Span]], timeout: float = 20.0
) -> dict[str, otlp.Span]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := probe():
            return found
        time.sleep(0.2)
    raise AssertionError("the collector did not export the spans")
