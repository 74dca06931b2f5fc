"""`make bench`: what telemetry costs the gateway, measured on the native harness.

Three proxies, one worker each, all calling the same fake upstream (its own process, fixed
latency) and exporting to the same collector -> ClickHouse engine:
  off      OTEL_SDK_DISABLED=true
  hook     this repository's in-process hook (the default image)
  builtin  the hook off, LiteLLM's own `otel` callback on
Load runs interleaved over rounds (off, hook, builtin, off, ...), each a bounded closed loop on
127.0.0.1; medians across rounds are reported. Then: spans stored per request served, freshness
(response -> row queryable in `llm_calls`), the report's queries over 1 M synthetic LLM spans,
and the collector's own ingest: the shipped pipeline (acknowledged once in the on-disk queue)
against the former one (a batch processor in front of the queue, acknowledged from memory).
Prints a table; the last line is one JSON object with the ratios against `off`.
Figures, never assertions: this is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from rich.console import Console
from rich.table import Table

from scripts import report
from scripts.native_stack.harness import PROVIDER_MODEL, NativeStack, StackOptions
from scripts.native_stack.paths import COLLECTOR_CONFIGS, LITELLM_CONFIG
from scripts.native_stack.procs import ManagedProcess, free_port, wait_for_http
from scripts.span_contract import contract

MODES = ("off", "hook", "builtin")
# The harness shortens export intervals so tests see data fast; measure what ships instead.
PRODUCTION_TIMING: dict[str, str | None] = {
    "OTEL_BSP_SCHEDULE_DELAY": None,
    "OTEL_METRIC_EXPORT_INTERVAL": None,
}
CLK_TCK = os.sysconf("SC_CLK_TCK")
COLLECTOR_CONFIG = COLLECTOR_CONFIGS[0]


# ---- process figures from /proc ---------------------------------------------------------------
def group_cpu_seconds(pgid: int) -> float:
    """User+system CPU of every process in a process group (the proxy's supervisor + workers)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # field 5 (pgrp), counted after the command name
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLK_TCK


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


# ---- load ---------------------------------------------------------------------------------------
@dataclass
class RoundResult:
    requests: int
    errors: int
    seconds: float
    latencies: list[float]
    cpu_seconds: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.cpu_seconds / max(1, self.requests)


async def closed_loop(
    url: str, headers: dict[str, str], requests: int, concurrency: int, max_seconds: float
) -> tuple[int, int, list[float], float]:
    payload = {"model": PROVIDER_MODEL, "messages": [{"role": "user", "content": "bench"}]}
    latencies: list[float] = []
    errors = 0
    remaining = requests
    deadline = time.monotonic() + max_seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def worker() -> None:
            nonlocal remaining, errors
            while remaining > 0 and time.monotonic() < deadline:
                remaining -= 1
                started = time.perf_counter()
                try:
                    r = await client.post(url, json=payload, headers=headers)
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - started)
                errors += 0 if ok else 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return len(latencies), errors, latencies, elapsed


def run_round(
    stack: NativeStack, requests: int, concurrency: int, max_seconds: float
) -> RoundResult:
    assert stack.proxy is not None
    cpu_before = group_cpu_seconds(stack.proxy.pid)
    done, errors, latencies, seconds = asyncio.run(
        closed_loop(
            f"{stack.proxy_url}/v1/chat/completions",
            stack.auth(),
            requests,
            concurrency,
            max_seconds,
        )
    )
    cpu = group_cpu_seconds(stack.proxy.pid) - cpu_before
    return RoundResult(done, errors, seconds, latencies, cpu)


# ---- the three proxies -------------------------------------------------------------------------
@dataclass
class Bench:
    workdir: Path
    upstream_latency: float
    stacks: dict[str, NativeStack] = field(default_factory=dict)
    upstream: ManagedProcess | None = None
    served: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MODES, 0))

    def start(self) -> None:
        port = free_port()
        self.upstream = ManagedProcess(
            "fake-upstream",
            [
                sys.executable,
                "-m",
                "scripts.native_stack.fake_upstream",
                "--port",
                str(port),
                "--latency",
                str(self.upstream_latency),
            ],
            log_path=self.workdir / "upstream.log",
        )
        wait_for_http(f"http://127.0.0.1:{port}/v1/models", 20, proc=self.upstream)
        upstream_url = f"http://127.0.0.1:{port}/v1"
        hook = NativeStack(
            self.workdir / "hook",
            StackOptions(
                clickhouse=True, upstream_base_url=upstream_url, proxy_env=dict(PRODUCTION_TIMING)
            ),
        )
        self.stacks["hook"] = hook.start()
        assert hook.collector is not None
        otlp = hook.collector.otlp_http_url
        builtin_config = self.workdir / "litellm-builtin-otel.yaml"
        config = yaml.safe_load(LITELLM_CONFIG.read_text())
        config.setdefault("litellm_settings", {})["callbacks"] = ["otel"]
        builtin_config.write_text(yaml.safe_dump(config))
        others = {
            "off": StackOptions(
                collector=False,
                upstream_base_url=upstream_url,
                proxy_env={"OTEL_SDK_DISABLED": "true", **PRODUCTION_TIMING},
            ),
            "builtin": StackOptions(
                collector=False,
                upstream_base_url=upstream_url,
                litellm_config=builtin_config,
                proxy_env={
                    "LLM_OTEL_ACTIVE": "0",  # our hook stays out
                    "OTEL_EXPORTER_OTLP_ENDPOINT": otlp,
                    "OTEL_SERVICE_NAME": "litellm-builtin",
                    **PRODUCTION_TIMING,
                },
            ),
        }
        for mode, options in others.items():
            self.stacks[mode] = NativeStack(self.workdir / mode, options).start()

    def stop(self) -> None:
        for stack in self.stacks.values():
            stack.stop()
        if self.upstream is not None:
            self.upstream.stop()

    def load(self, mode: str, requests: int, concurrency: int, max_seconds: float) -> RoundResult:
        result = run_round(self.stacks[mode], requests, concurrency, max_seconds)
        self.served[mode] += result.requests - result.errors
        return result


# ---- what reached ClickHouse ---------------------------------------------------------------------
def clickhouse_reader(bench: Bench) -> Any:
    return bench.stacks["hook"].clickhouse.client("otel_reader")


def spans_stored(bench: Bench, served: dict[str, int], timeout: float = 60) -> dict[str, Any]:
    reader = clickhouse_reader(bench)
    llm = f"SpanAttributes['{contract.GEN_AI_OPERATION_NAME}'] != '' OR SpanName LIKE 'litellm%%'"
    sql = f"SELECT ServiceName, count(), countIf({llm}) FROM otel_traces GROUP BY ServiceName"
    services = {"hook": "litellm-proxy", "builtin": "litellm-builtin"}
    deadline = time.monotonic() + timeout
    while True:
        rows = {name: (total, llm) for name, total, llm in reader.query(sql).result_rows}
        hook_llm = reader.query(
            "SELECT count() FROM llm_calls WHERE service = 'litellm-proxy'"
        ).result_rows[0][0]
        if hook_llm >= served["hook"] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    out: dict[str, Any] = {}
    for mode, service in services.items():
        total, _ = rows.get(service, (0, 0))
        out[mode] = {"spans_per_request": total / max(1, served[mode]), "served": served[mode]}
    out["hook"]["llm_spans_stored"] = hook_llm
    return out


def freshness(bench: Bench, samples: int) -> list[float]:
    """Seconds from a response to its row being queryable in llm_calls."""
    stack = bench.stacks["hook"]
    reader = clickhouse_reader(bench)
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
        while time.perf_counter() - answered < 30:
            found = reader.query(
                "SELECT count() FROM llm_calls WHERE trace_id = {t:String}",
                parameters={"t": trace_id},
            ).result_rows[0][0]
            if found:
                delays.append(time.perf_counter() - answered)
                break
            time.sleep(0.02)
    return delays


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

    hook = bench.stacks["hook"]
    base = yaml.safe_load(COLLECTOR_CONFIG.read_text())["service"]["pipelines"]["traces"]
    legacy = {
        **BATCH_PROCESSOR_PIPELINE,
        "service": {"pipelines": {"traces": {"processors": [*base["processors"], "batch"]}}},
    }
    out = {}
    for mode, extra in (("durable", None), ("batch-processor", legacy)):
        workdir = bench.workdir / f"ingest-{mode}"
        overlay = test_overlay(workdir / "exported", clickhouse=True, extra=extra)
        overlay["service"]["pipelines"]["traces"]["exporters"] = ["clickhouse"]
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
            cpu_before = group_cpu_seconds(collector.process.pid)
            started = time.perf_counter()
            with ThreadPoolExecutor(senders) as pool:
                list(pool.map(exporter.export, batches))
            acked = time.perf_counter() - started
            total = 512 * len(batches)
            reader = clickhouse_reader(bench)
            while time.perf_counter() - started < 120:
                stored = reader.query(
                    "SELECT count() FROM otel_traces WHERE ServiceName = {s:String}",
                    parameters={"s": service},
                ).result_rows[0][0]
                if stored >= total:
                    break
                time.sleep(0.1)
            # The collector's own CPU time: spans per CPU-second is spans/s per core it would use.
            cpu = group_cpu_seconds(collector.process.pid) - cpu_before
            out[mode] = {
                "ack_spans_per_s": total / acked,
                "stored_spans_per_s": total / (time.perf_counter() - started),
                "spans_per_collector_cpu_s": total / max(cpu, 1e-9),
            }
        finally:
            collector.stop()
    return out


# The hook's span attributes on each synthetic LLM span, as ClickHouse expressions of `number`.
SYNTHETIC_ATTRIBUTES = {
    contract.GEN_AI_OPERATION_NAME: "'chat'",
    contract.GEN_AI_REQUEST_MODEL: "concat('model-', toString(number % 12))",
    contract.GEN_AI_PROVIDER_NAME: "'openrouter'",
    contract.GEN_AI_USAGE_INPUT_TOKENS: "toString(100 + number % 900)",
    contract.GEN_AI_USAGE_OUTPUT_TOKENS: "toString(20 + number % 300)",
    contract.GEN_AI_USAGE_COST_AMOUNT: "toString((number % 1000) / 1e6)",
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
    admin = bench.stacks["hook"].clickhouse.client("admin")
    started = time.perf_counter()
    admin.command(synthetic_rows_sql(rows))
    timings = {"insert_s": time.perf_counter() - started}
    reader = clickhouse_reader(bench)
    for by in ("model", "team", "key"):
        sql = report.build_report_sql(by, 86400)
        reader.query(sql)  # warm
        started = time.perf_counter()
        reader.query(sql)
        timings[f"report_by_{by}_s"] = time.perf_counter() - started
    started = time.perf_counter()
    reader.query(report.build_totals_sql(86400))
    timings["report_totals_s"] = time.perf_counter() - started
    return timings


# ---- output -------------------------------------------------------------------------------
def render_ingest(console: Console, ingest: dict[str, dict[str, float]]) -> dict[str, Any]:
    for mode, f in ingest.items():
        console.print(
            f"collector ingest ({mode}): {f['ack_spans_per_s']:,.0f} spans/s "
            f"acknowledged, {f['stored_spans_per_s']:,.0f} spans/s stored, "
            f"{f['spans_per_collector_cpu_s']:,.0f} spans per collector CPU-second"
        )
    return ingest


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summarise(rounds: dict[str, list[RoundResult]], bench: Bench) -> dict[str, dict[str, float]]:
    figures = {}
    for mode, results in rounds.items():

        def median(f: Callable[[RoundResult], float], results=results) -> float:
            return statistics.median(f(r) for r in results)

        assert bench.stacks[mode].proxy is not None
        figures[mode] = {
            "rps": median(lambda r: r.rps),
            "cpu_ms_per_request": median(lambda r: r.cpu_ms_per_request),
            "p50_ms": median(lambda r: 1000 * percentile(r.latencies, 0.50)),
            "p99_ms": median(lambda r: 1000 * percentile(r.latencies, 0.99)),
            "errors": sum(r.errors for r in results),
            "peak_rss_mib": peak_rss_mib(bench.stacks[mode].proxy.pid),  # type: ignore[union-attr]
        }
    return figures


def render(
    console: Console,
    figures: dict[str, dict[str, float]],
    stored: dict[str, Any],
    fresh: list[float],
    speed: dict[str, float],
    args: argparse.Namespace,
) -> dict[str, Any]:
    table = Table(
        title=f"Gateway overhead: {args.rounds} interleaved rounds x {args.requests} "
        f"requests, concurrency {args.concurrency}, upstream "
        f"{args.upstream_latency * 1000:.0f} ms, medians"
    )
    for heading in (
        "mode",
        "req/s",
        "CPU ms/req",
        "p50 ms",
        "p99 ms",
        "peak RSS MiB",
        "errors",
        "spans/req",
    ):
        table.add_column(heading, justify="right")
    for mode in MODES:
        f = figures[mode]
        spans = stored.get(mode, {}).get("spans_per_request")
        table.add_row(
            mode,
            f"{f['rps']:.1f}",
            f"{f['cpu_ms_per_request']:.2f}",
            f"{f['p50_ms']:.1f}",
            f"{f['p99_ms']:.1f}",
            f"{f['peak_rss_mib']:.0f}",
            str(int(f["errors"])),
            "-" if spans is None else f"{spans:.1f}",
        )
    console.print(table)
    off = figures["off"]
    ratios = {
        mode: {
            "rps": figures[mode]["rps"] / off["rps"],
            "cpu_per_request": figures[mode]["cpu_ms_per_request"] / off["cpu_ms_per_request"],
        }
        for mode in ("hook", "builtin")
    }
    hook_overhead = ratios["hook"]["cpu_per_request"] - 1
    builtin_overhead = ratios["builtin"]["cpu_per_request"] - 1
    console.print(
        f"hook:    {100 * (ratios['hook']['rps'] - 1):+.1f} % req/s, "
        f"{100 * hook_overhead:+.1f} % CPU/request vs off"
    )
    console.print(
        f"builtin: {100 * (ratios['builtin']['rps'] - 1):+.1f} % req/s, "
        f"{100 * builtin_overhead:+.1f} % CPU/request vs off"
    )
    hook_stored = stored["hook"]
    console.print(
        f"LLM spans stored (hook): {hook_stored['llm_spans_stored']} for "
        f"{hook_stored['served']} requests served"
    )
    console.print(
        f"freshness response -> llm_calls row: p50 {percentile(fresh, 0.5):.2f} s, "
        f"p95 {percentile(fresh, 0.95):.2f} s ({len(fresh)} samples)"
    )
    console.print(
        f"report over {args.synthetic_rows:,} synthetic LLM spans: "
        + ", ".join(f"{k} {v:.3f} s" for k, v in speed.items())
    )
    return {
        "hook_vs_off": ratios["hook"],
        "builtin_vs_off": ratios["builtin"],
        "overhead_ratio_builtin_over_hook": (
            builtin_overhead / hook_overhead if hook_overhead > 0 else None
        ),
        "llm_spans_lost": hook_stored["served"] - hook_stored["llm_spans_stored"],
        "freshness_p50_s": percentile(fresh, 0.5),
        "freshness_p95_s": percentile(fresh, 0.95),
        "report_max_s": max(v for k, v in speed.items() if k.startswith("report")),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=600, help="per round and mode")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--max-seconds", type=float, default=30, help="cap per round and mode")
    parser.add_argument("--upstream-latency", type=float, default=0.02, help="seconds")
    parser.add_argument("--freshness-samples", type=int, default=40)
    parser.add_argument("--synthetic-rows", type=int, default=1_000_000)
    parser.add_argument(
        "--ingest-spans",
        type=int,
        default=51_200,
        help="spans sent straight to each collector pipeline",
    )
    args = parser.parse_args(argv)
    console = Console()
    with tempfile.TemporaryDirectory(prefix="llm-gateway-bench-") as tmp:
        bench = Bench(Path(tmp), args.upstream_latency)
        try:
            console.print("starting three proxies, the collector and the ClickHouse engine...")
            bench.start()
            for mode in MODES:  # warm-up: imports, connection pools, first-call caches
                bench.load(mode, 50, 8, 30)
            rounds: dict[str, list[RoundResult]] = {mode: [] for mode in MODES}
            for number in range(args.rounds):
                for mode in MODES:
                    console.print(f"round {number + 1}/{args.rounds}: {mode}")
                    rounds[mode].append(
                        bench.load(mode, args.requests, args.concurrency, args.max_seconds)
                    )
            figures = summarise(rounds, bench)
            stored = spans_stored(bench, bench.served)
            fresh = freshness(bench, args.freshness_samples)
            ingest = collector_ingest(bench, args.ingest_spans)
            speed = report_speed(bench, args.synthetic_rows)
            summary = render(console, figures, stored, fresh, speed, args)
            summary["collector_ingest"] = render_ingest(console, ingest)
        finally:
            bench.stop()
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
