"""What happens after the proxy: the pipeline's CPU per stored call, spans stored per request,
freshness, the collector's own ingest, and the report's speed over many rows."""

from __future__ import annotations

import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from scripts import report
from scripts.native_stack.harness import PROVIDER_MODEL
from scripts.span_contract import contract

from . import procstat
from .load import closed_loop
from .proxies import (
    BUILTIN_SERVICE,
    HOOK_SERVICE,
    Bench,
    deep_merge,
    shipped_collector_config,
    shipped_exporters,
)


def reader(bench: Bench) -> Any:
    return bench.pipeline_stack.clickhouse.client("otel_reader")


def llm_calls_stored(bench: Bench) -> int:
    return int(
        reader(bench)
        .query(
            "SELECT count() FROM llm_calls WHERE service = {s:String}",
            parameters={"s": HOOK_SERVICE},
        )
        .result_rows[0][0]
    )


def spans_stored_by_service(bench: Bench) -> dict[str, int]:
    rows = reader(bench).query("SELECT ServiceName, count() FROM otel_traces GROUP BY ServiceName")
    return {name: int(count) for name, count in rows.result_rows}


def wait_until(probe: Any, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def wait_for_quiet_pipeline(bench: Bench, timeout: float = 60, quiet: float = 1.5) -> None:
    """Until every span count stops moving for `quiet` seconds (all exported and inserted)."""
    last: dict[str, int] = {}
    since = time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = spans_stored_by_service(bench)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.25)


# ---- (b) the pipeline's cost per stored call ---------------------------------------------------
@dataclass
class PipelineCost:
    calls: int  # LLM rows stored by the measured load
    spans_per_call: float
    seconds: float
    cpu_seconds: dict[str, float]  # per component, idle CPU over the same time subtracted
    idle_cpu_per_second: dict[str, float]

    def ms_per_call(self, component: str) -> float:
        return 1000 * self.cpu_seconds[component] / max(1, self.calls)

    def as_json(self) -> dict[str, Any]:
        return {
            "stored_llm_calls": self.calls,
            "spans_per_call": round(self.spans_per_call, 3),
            **{f"{c}_cpu_ms_per_call": round(self.ms_per_call(c), 4) for c in self.cpu_seconds},
            "total_cpu_ms_per_call": round(sum(self.ms_per_call(c) for c in self.cpu_seconds), 4),
            "idle_cpu_per_second": {c: round(v, 4) for c, v in self.idle_cpu_per_second.items()},
        }


def pipeline_cost(
    bench: Bench, requests: int, concurrency: int, idle_seconds: float = 2.0
) -> PipelineCost:
    """Collector and ClickHouse adapter CPU from the first request of a hook-only load until
    its last LLM row is queryable and the pipeline is quiet again, minus their idle CPU."""
    wait_for_quiet_pipeline(bench)
    components = bench.pipeline_pids()
    idle_before = {c: procstat.sample_cpu(p) for c, p in components.items()}
    time.sleep(idle_seconds)
    idle_after = {c: procstat.sample_cpu(p) for c, p in components.items()}
    idle = {
        c: procstat.cpu_seconds_between(idle_before[c], idle_after[c]) / idle_seconds
        for c in components
    }
    calls_before = llm_calls_stored(bench)
    spans_before = spans_stored_by_service(bench).get(HOOK_SERVICE, 0)
    stack = bench.stacks["hook"]
    started = time.perf_counter()
    before = {c: procstat.sample_cpu(p) for c, p in components.items()}
    loop = closed_loop(stack.proxy_url, stack.auth(), requests, concurrency, 60)
    bench.served["hook"] += loop.requests - loop.errors
    expected = calls_before + loop.requests - loop.errors
    wait_until(lambda: llm_calls_stored(bench) >= expected, 60)
    wait_for_quiet_pipeline(bench, quiet=1.0)
    after = {c: procstat.sample_cpu(p) for c, p in components.items()}
    seconds = time.perf_counter() - started
    calls = llm_calls_stored(bench) - calls_before
    spans = spans_stored_by_service(bench).get(HOOK_SERVICE, 0) - spans_before
    cpu = {
        c: max(0.0, procstat.cpu_seconds_between(before[c], after[c]) - idle[c] * seconds)
        for c in components
    }
    return PipelineCost(calls, spans / max(1, calls), seconds, cpu, idle)


# ---- what reached ClickHouse ---------------------------------------------------------------------
def spans_stored(bench: Bench, timeout: float = 60) -> dict[str, Any]:
    """Spans stored per request served, per mode, and the hook's LLM rows against requests."""
    wait_until(lambda: llm_calls_stored(bench) >= bench.served["hook"], timeout)
    wait_for_quiet_pipeline(bench)
    by_service = spans_stored_by_service(bench)
    out: dict[str, Any] = {}
    for mode, service in (("hook", HOOK_SERVICE), ("builtin", BUILTIN_SERVICE)):
        served = bench.served[mode]
        out[mode] = {
            "spans_per_request": by_service.get(service, 0) / max(1, served),
            "served": served,
        }
    out["hook"]["llm_spans_stored"] = llm_calls_stored(bench)
    return out


def freshness(bench: Bench, samples: int) -> list[float]:
    """Seconds from a response to its row being queryable in llm_calls."""
    stack = bench.stacks["hook"]
    client = reader(bench)
    delays = []
    for _ in range(samples):
        trace_id = secrets.token_hex(16)
        response = stack.chat(
            PROVIDER_MODEL,
            "fresh",
            headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"},
        )
        answered = time.perf_counter()
        if response.status_code != 200:
            continue
        bench.served["hook"] += 1
        while time.perf_counter() - answered < 30:
            found = client.query(
                "SELECT count() FROM llm_calls WHERE trace_id = {t:String}",
                parameters={"t": trace_id},
            ).result_rows[0][0]
            if found:
                delays.append(time.perf_counter() - answered)
                break
            time.sleep(0.02)
    return delays


# ---- the collector alone ----------------------------------------------------------------------
# The pipeline before durable acknowledgement, for comparison: a batch processor in front of the
# exporter's queue answers the sender as soon as the spans are in its memory.
BATCH_PROCESSOR_PIPELINE: dict[str, Any] = {
    "processors": {
        "batch": {"timeout": "1s", "send_batch_size": 1024, "send_batch_max_size": 4096}
    },
}


def collector_ingest(bench: Bench, spans: int, senders: int = 4) -> dict[str, dict[str, float]]:
    """Spans/s acknowledged to OTLP senders, and stored in ClickHouse, for each pipeline."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    from scripts.native_stack.collector import Collector, test_overlay

    hook = bench.pipeline_stack
    shipped = shipped_exporters()
    base = shipped_collector_config()["service"]["pipelines"]["traces"]
    legacy = deep_merge(
        shipped,
        {
            **BATCH_PROCESSOR_PIPELINE,
            "service": {"pipelines": {"traces": {"processors": [*base["processors"], "batch"]}}},
        },
    )
    out = {}
    for mode, extra in (("durable", shipped), ("batch-processor", legacy)):
        workdir = bench.workdir / f"ingest-{mode}"
        overlay = test_overlay(workdir / "exported", clickhouse=True, extra=extra)
        collector = Collector(workdir, hook.collector_env(), overlay).start()
        try:
            service = f"bench-ingest-{mode}"
            tracer = TracerProvider(resource=Resource.create({"service.name": service})).get_tracer(
                "bench"
            )
            batches = []
            for _ in range(spans // 512):
                batch = []
                for i in range(512):
                    span = tracer.start_span(
                        "chat bench",
                        attributes={
                            contract.GEN_AI_OPERATION_NAME: "chat",
                            contract.GEN_AI_USAGE_INPUT_TOKENS: i,
                        },
                    )
                    span.end()
                    batch.append(span)
                batches.append(batch)
            exporter = OTLPSpanExporter(endpoint=f"{collector.otlp_http_url}/v1/traces")
            assert collector.process is not None
            collector_pids = procstat.group_pids(collector.process.pid)
            cpu_before = procstat.sample_cpu(collector_pids)
            started = time.perf_counter()
            with ThreadPoolExecutor(senders) as pool:
                list(pool.map(exporter.export, batches))
            acked = time.perf_counter() - started
            total = 512 * len(batches)
            client = reader(bench)
            while time.perf_counter() - started < 120:
                stored = client.query(
                    "SELECT count() FROM otel_traces WHERE ServiceName = {s:String}",
                    parameters={"s": service},
                ).result_rows[0][0]
                if stored >= total:
                    break
                time.sleep(0.1)
            # The collector's own CPU time: spans per CPU-second is spans/s per core it would use.
            cpu = procstat.cpu_seconds_between(cpu_before, procstat.sample_cpu(collector_pids))
            out[mode] = {
                "ack_spans_per_s": total / acked,
                "stored_spans_per_s": total / (time.perf_counter() - started),
                "spans_per_collector_cpu_s": total / max(cpu, 1e-9),
            }
        finally:
            collector.stop()
    return out


# ---- the report over many rows ----------------------------------------------------------------
# The cost attribute was renamed (gen_ai.usage.cost -> gen_ai.usage.cost.amount); the views read
# both, the synthetic rows carry the hook's current name.
COST_ATTRIBUTE: str = next(
    getattr(contract, name)
    for name in ("GEN_AI_USAGE_COST_AMOUNT", "GEN_AI_USAGE_COST")
    if hasattr(contract, name)
)
# The hook's span attributes on each synthetic LLM span, as ClickHouse expressions of `number`.
SYNTHETIC_ATTRIBUTES = {
    contract.GEN_AI_OPERATION_NAME: "'chat'",
    contract.GEN_AI_REQUEST_MODEL: "concat('model-', toString(number % 12))",
    contract.GEN_AI_PROVIDER_NAME: "'openrouter'",
    contract.GEN_AI_USAGE_INPUT_TOKENS: "toString(100 + number % 900)",
    contract.GEN_AI_USAGE_OUTPUT_TOKENS: "toString(20 + number % 300)",
    COST_ATTRIBUTE: "toString((number % 1000) / 1e6)",
    contract.GEN_AI_REQUEST_STREAM: "if(number % 3 = 0, 'true', 'false')",
    contract.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: "if(number % 3 = 0, '0.25', '')",
    contract.LITELLM_TEAM_ID: "concat('team-', toString(number % 7))",
    contract.LITELLM_API_KEY_HASH: "concat('hash-', toString(number % 40))",
    contract.ERROR_TYPE: "if(number % 50 = 0, 'InternalServerError', '')",
}
SYNTHETIC_ROWS = """
INSERT INTO otel.otel_traces (Timestamp, TraceId, SpanId, ParentSpanId, SpanName, SpanKind,
    ServiceName, ResourceAttributes, ScopeName, SpanAttributes, Duration, StatusCode)
SELECT now64(9) - toIntervalMillisecond(number % 86400000),
       lower(hex(sipHash128(number))), lower(hex(sipHash64(number))), '', 'chat synthetic',
       'Client', 'bench-synthetic', map('deployment.environment.name', 'bench'), '{scope}',
       map({attributes}),
       (50 + number % 2000) * 1000000, if(number % 50 = 0, 'Error', 'Unset')
FROM numbers({rows})
"""


def synthetic_rows_sql(rows: int) -> str:
    attributes = ",\n           ".join(f"'{k}', {v}" for k, v in SYNTHETIC_ATTRIBUTES.items())
    return SYNTHETIC_ROWS.format(rows=rows, scope=contract.SCOPE_NAME, attributes=attributes)


def report_speed(bench: Bench, rows: int) -> dict[str, float]:
    admin = bench.pipeline_stack.clickhouse.client("admin")
    started = time.perf_counter()
    admin.command(synthetic_rows_sql(rows))
    timings = {"insert_s": time.perf_counter() - started}
    client = reader(bench)
    for by in ("model", "team", "key"):
        sql = report.build_report_sql(by, 86400)
        client.query(sql)  # warm
        started = time.perf_counter()
        client.query(sql)
        timings[f"report_by_{by}_s"] = time.perf_counter() - started
    started = time.perf_counter()
    client.query(report.build_totals_sql(86400))
    timings["report_totals_s"] = time.perf_counter() - started
    return timings
