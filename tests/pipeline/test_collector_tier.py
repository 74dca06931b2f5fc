"""The collector tier (issue #13): an agent collector from otel-collector/agent.yaml forwards to a
gateway collector running the repository's config.yaml, which writes the ClickHouse engine.
Spans sent to the agent arrive exactly once, also across a gateway outage with an agent restart
in the middle, and the metrics docs/SCALING.md tells operators to scale on exist."""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import yaml

from scripts.native_stack.collector import Collector
from scripts.native_stack.harness import Secrets, clean_env
from scripts.native_stack.paths import COLLECTOR_BIN, COLLECTOR_DIR
from tests.conftest import require_collector

# Runs the collector binary (the tier: an agent and a gateway collector, started per module).
pytestmark = pytest.mark.stack

AGENT_CONFIG = COLLECTOR_DIR / "agent.yaml"
# What docs/SCALING.md tells operators to watch, as each tier's Prometheus endpoint names them at
# v0.161.0 (no `_total` suffix). Counters that only appear after their first event are left out:
# otelcol_exporter_send_failed_spans, otelcol_exporter_enqueue_failed_spans,
# otelcol_processor_memory_limiter_refused_spans.
SCALING_METRICS = (
    "otelcol_exporter_queue_size",
    "otelcol_exporter_queue_capacity",
    "otelcol_exporter_sent_spans",
    "otelcol_receiver_accepted_spans",
    "otelcol_receiver_refused_spans",
    "otelcol_processor_memory_limiter_accepted_spans",
)
DEADLINE = 180.0  # generous: CI shares the machine, nothing here is a timing assertion


class Agent(Collector):
    """The agent template exactly as shipped: agent.yaml alone, no repository overlays."""

    def argv(self) -> list[str]:
        return [str(COLLECTOR_BIN), f"--config={AGENT_CONFIG}"]


@dataclass
class Tier:
    clickhouse: Any
    gateway: Collector
    agent: Agent

    def stored(self, service: str) -> tuple[int, int]:
        """(rows, distinct span ids) of `service` in otel.otel_traces."""
        row = (
            self.clickhouse.client("otel_reader")
            .query(
                "SELECT count(), uniqExact(SpanId) FROM otel_traces WHERE ServiceName = {s:String}",
                parameters={"s": service},
            )
            .result_rows[0]
        )
        return int(row[0]), int(row[1])


def wait_for(check: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"not within {timeout:.0f}s: {what}")


def scrape(collector: Collector) -> list[tuple[str, str, float]]:
    """(name, labels, value) of every series on the collector's Prometheus endpoint."""
    out = []
    for line in httpx.get(collector.metrics_url, timeout=5).text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        name, _, labels = series.partition("{")
        out.append((name, labels, float(value)))
    return out


def metric(collector: Collector, name: str, label: str = "") -> float:
    """The sum of `name` over its series whose labels contain `label`."""
    return sum(v for n, labels, v in scrape(collector) if n == name and label in labels)


def traces_queued(collector: Collector) -> float:
    """Requests in the traces exporter's queue, those being sent or retried included."""
    return metric(collector, "otelcol_exporter_queue_size", 'data_type="traces"')


def send_spans(
    agent: Agent, service: str, count: int, per_request: int = 100, padding: int = 0
) -> None:
    """OTLP/HTTP from the opentelemetry-sdk exporter (as the hook and the bench send)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExportResult

    tracer = TracerProvider(resource=Resource.create({"service.name": service})).get_tracer("tier")
    exporter = OTLPSpanExporter(endpoint=f"{agent.otlp_http_url}/v1/traces", timeout=30)
    try:
        for start in range(0, count, per_request):
            batch = []
            for i in range(start, min(count, start + per_request)):
                # Random text, as incompressible as real message content.
                filler = secrets.token_urlsafe(padding)[:padding]
                attributes = {"tier.seq": i, "tier.padding": filler}
                span = tracer.start_span("chat tier", attributes=attributes)
                span.end()
                batch.append(span)
            # The agent acknowledges once the spans are in its on-disk queue.
            assert exporter.export(batch) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()


def wait_delivered_once(tier: Tier, service: str, count: int) -> None:
    wait_for(lambda: tier.stored(service)[1] >= count, f"{count} spans of {service} in ClickHouse")
    # Settled: the agent forwarded them all and neither queue holds anything that could replay.
    # (The persistent queue's size counts requests being sent or retried too.)
    wait_for(
        lambda: traces_queued(tier.agent) == 0 and traces_queued(tier.gateway) == 0,
        "both traces queues empty",
    )
    rows, distinct = tier.stored(service)
    assert distinct == count, "a span was lost"
    assert rows == count, "a span was stored twice"


@pytest.fixture(scope="module")
def tier(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tier]:
    require_collector()
    from scripts.native_stack.clickhouse import start_clickhouse  # needs chdb

    workdir = tmp_path_factory.mktemp("collector-tier")
    stack_secrets = Secrets()
    clickhouse = start_clickhouse(workdir / "clickhouse", stack_secrets)
    started: list[Collector] = []
    try:
        gateway_env = {
            "CLICKHOUSE_ENDPOINT": clickhouse.endpoint,
            "CLICKHOUSE_DATABASE": "otel",
            "CLICKHOUSE_WRITER_USER": "otel_writer",
            "CLICKHOUSE_WRITER_PASSWORD": stack_secrets.writer_password,
            "DEPLOYMENT_ENVIRONMENT": "tier-test",
        }
        # The gateway runs what compose runs (config.yaml, empty slots, extras), no test overlay.
        gateway = Collector(workdir / "gateway", clean_env(gateway_env), {})
        started.append(gateway)
        gateway.start()
        agent_env = clean_env({"OTEL_GATEWAY_ENDPOINT": gateway.otlp_http_url})
        agent = Agent(workdir / "agent", agent_env, {})
        started.append(agent)
        agent.start()
        yield Tier(clickhouse=clickhouse, gateway=gateway, agent=agent)
    finally:
        for collector in reversed(started):
            collector.stop()
        clickhouse.stop()


def test_agent_template_validates_with_the_stack_binary() -> None:
    """`otelcol validate` loads every component: one outside builder-config.yaml fails here."""
    require_collector()
    env = clean_env({"OTEL_GATEWAY_ENDPOINT": "http://otel-gateway:4318"})
    ok = subprocess.run(
        [str(COLLECTOR_BIN), "validate", f"--config={AGENT_CONFIG}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    # Without a gateway endpoint the agent refuses to start, naming what is missing.
    missing = subprocess.run(
        [str(COLLECTOR_BIN), "validate", f"--config={AGENT_CONFIG}"],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode != 0
    assert "otlp_http" in missing.stderr and "endpoint" in missing.stderr


def test_agent_template_is_durable() -> None:
    """Acknowledged only once on disk: no batch processor, a persistent queue, endless retry."""
    config = yaml.safe_load(AGENT_CONFIG.read_text())
    for name, pipeline in config["service"]["pipelines"].items():
        assert pipeline["processors"][0] == "memory_limiter", name
        assert not any(p.split("/")[0] == "batch" for p in pipeline["processors"]), name
        assert pipeline["exporters"] == ["otlp_http"], name
    exporter = config["exporters"]["otlp_http"]
    assert exporter["endpoint"] == "${env:OTEL_GATEWAY_ENDPOINT}"
    assert exporter["sending_queue"]["storage"] in config["service"]["extensions"]
    assert exporter["retry_on_failure"]["max_elapsed_time"] in ("0s", 0)


def test_spans_through_the_agent_are_stored_exactly_once(tier: Tier) -> None:
    service = f"tier-{secrets.token_hex(4)}"
    send_spans(tier.agent, service, 2000)
    wait_delivered_once(tier, service, 2000)


def test_large_spans_are_forwarded_in_requests_the_gateway_accepts(tier: Tier) -> None:
    """12 MiB of 40 KiB spans (message capture on) queued during an outage: on replay the agent
    merges its backlog into requests under the gateway's 8 MiB body limit, so none is refused."""
    service = f"tier-large-{secrets.token_hex(4)}"
    tier.gateway.stop()
    try:
        send_spans(tier.agent, service, 300, per_request=50, padding=40 * 1024)
        # Restored from disk, the whole backlog is available to the batcher at once.
        tier.agent.stop()
        tier.agent.start()
    finally:
        tier.gateway.start()
    wait_delivered_once(tier, service, 300)


def test_gateway_outage_and_agent_restart_lose_nothing(tier: Tier) -> None:
    service = f"tier-outage-{secrets.token_hex(4)}"
    tier.gateway.stop()
    try:
        send_spans(tier.agent, service, 1500)  # the agent answers: its queue is on disk
        wait_for(lambda: traces_queued(tier.agent) > 0, "the agent holding the spans")
        # The agent restarts while the gateway is still away: its queue comes back from disk.
        tier.agent.stop()
        tier.agent.start()
        wait_for(lambda: traces_queued(tier.agent) > 0, "the restarted agent's queue restored")
        assert tier.stored(service) == (0, 0)
    finally:
        tier.gateway.start()
    wait_delivered_once(tier, service, 1500)


def test_the_documented_scaling_metrics_exist(tier: Tier) -> None:
    """The names docs/SCALING.md tells operators to watch, on both tiers, after traffic."""
    send_spans(tier.agent, f"tier-metrics-{secrets.token_hex(4)}", 10)
    for role, collector in (("agent", tier.agent), ("gateway", tier.gateway)):
        wait_for(
            lambda collector=collector: metric(collector, "otelcol_receiver_accepted_spans") > 0,
            f"the {role} counting accepted spans",
        )
        names = {name for name, _, _ in scrape(collector)}
        missing = [name for name in SCALING_METRICS if name not in names]
        assert not missing, f"{role} does not expose {missing}"
    # The agent's queue is the forwarding exporter's: the one to compare with its capacity.
    queues = {labels for name, labels, _ in scrape(tier.agent) if name == SCALING_METRICS[0]}
    assert queues and all('exporter="otlp_http"' in labels for labels in queues), queues


def test_the_agents_own_metrics_reach_clickhouse_through_the_gateway(tier: Tier) -> None:
    """The agent's queue is chartable where the gateway's is: same table, told apart by role."""
    reader = tier.clickhouse.client("otel_reader")

    def agent_queue_rows() -> bool:
        return bool(
            reader.query(
                "SELECT count() FROM otel_metrics_gauge WHERE ServiceName = 'otelcol' "
                "AND MetricName = 'otelcol_exporter_queue_size' "
                "AND ResourceAttributes['collector.role'] = 'agent' "
                "AND Attributes['exporter'] = 'otlp_http'"
            ).result_rows[0][0]
        )

    # The agent reports every 15 s; the deadline leaves room for a busy machine.
    wait_for(agent_queue_rows, "the agent's queue size in otel_metrics_gauge")
