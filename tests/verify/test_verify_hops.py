"""`make verify`'s hops 1-5 (containers, gateway, auth, llm-call, collector) against small real
HTTP servers on 127.0.0.1 answering like LiteLLM and the collector."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from typing import Any

import pytest

from scripts.native_stack.http_double import App, LocalServer
from scripts.verify.context import CallRecord, Context
from scripts.verify.hops import auth, collector, containers, gateway, llm_call
from scripts.verify.results import State
from tests.doubles.verify_peers import (
    MASTER_KEY,
    TRACEPARENT_RE,
    FakeCollector,
    FakeLiteLLM,
)
from tests.verify.verify_context import (
    free_port,
    make_ctx,
)

# --- hop 2: gateway -------------------------------------------------------------------------------


def test_gateway_ok(serve: Callable[[App], LocalServer]) -> None:
    server = serve(FakeLiteLLM())
    result = gateway.run(make_ctx(LITELLM_PORT=server.port))
    assert result.state is State.OK, result
    assert re.match(r"alive in \d+ ms, ready \(healthy\) in \d+ ms", result.summary)
    assert [r.path for r in server.requests] == ["/health/liveliness", "/health/readiness"]
    assert all("authorization" not in r.headers for r in server.requests)  # no key needed


def test_gateway_connection_refused() -> None:
    port = free_port()
    result = gateway.run(make_ctx(LITELLM_PORT=port))
    assert result.state is State.FAIL
    assert result.summary == f"not running: connection refused on 127.0.0.1:{port}"
    assert result.hint == "make up   # then, if it keeps failing: make logs s=litellm"


def test_gateway_timeout_is_not_refused(silent_port: int) -> None:
    result = gateway.run(make_ctx(LITELLM_PORT=silent_port, http_timeout_s=0.3))
    assert result.state is State.FAIL
    assert "accepted the connection" in result.summary and "no answer within 0.3s" in result.summary
    assert result.hint == "make logs s=litellm"


def test_gateway_not_ready(serve: Callable[[App], LocalServer]) -> None:
    server = serve(FakeLiteLLM(ready_status=503))
    result = gateway.run(make_ctx(LITELLM_PORT=server.port))
    assert result.state is State.FAIL
    assert result.summary == "alive, but not ready: HTTP 503 (shutting_down)"
    assert result.hint == "make logs s=litellm"


def test_gateway_something_else_on_the_port(serve: Callable[[App], LocalServer]) -> None:
    server = serve(FakeCollector())  # answers 404 on /health/liveliness
    result = gateway.run(make_ctx(LITELLM_PORT=server.port))
    assert result.state is State.FAIL
    assert result.summary.startswith("something else answers on LITELLM_PORT")


# --- hop 3: auth ----------------------------------------------------------------------------------


def test_auth_401_without_key_and_200_with_it(serve: Callable[[App], LocalServer]) -> None:
    server = serve(FakeLiteLLM())
    result = auth.run(make_ctx(LITELLM_PORT=server.port))
    assert result.state is State.OK, result
    assert result.summary.startswith("401 without key, 200 with master key; 2 models")
    assert [r.headers.get("authorization") for r in server.requests] == [
        None,
        f"Bearer {MASTER_KEY}",
    ]


@pytest.mark.parametrize("wrong_key_status", [401, 400])
def test_auth_wrong_master_key(serve: Callable[[App], LocalServer], wrong_key_status: int) -> None:
    fake = FakeLiteLLM(master_key="sk-the-container-has-another", wrong_key_status=wrong_key_status)
    server = serve(fake)
    ctx = make_ctx(LITELLM_PORT=server.port)
    assert "LITELLM_MASTER_KEY from the same .env" in auth.run(ctx).hint  # native harness
    ctx.options.native = False
    result = auth.run(ctx)
    assert result.state is State.FAIL
    assert result.summary == f"the master key from .env is rejected (HTTP {wrong_key_status})"
    assert "printenv LITELLM_MASTER_KEY" in result.hint
    assert "docker compose up -d litellm" in result.hint
    assert MASTER_KEY not in "\n".join([result.summary, *result.details, result.hint])


def test_auth_gateway_without_key_protection(serve: Callable[[App], LocalServer]) -> None:
    server = serve(FakeLiteLLM(open_access=True))
    result = auth.run(make_ctx(LITELLM_PORT=server.port))
    assert result.state is State.FAIL
    assert result.summary == "the gateway serves GET /v1/models without a key (HTTP 200)"
    assert result.hint.startswith("set LITELLM_MASTER_KEY in .env")


def test_auth_verify_mock_missing(serve: Callable[[App], LocalServer]) -> None:
    server = serve(FakeLiteLLM(models=["gpt-x"]))
    result = auth.run(make_ctx(LITELLM_PORT=server.port))
    assert result.state is State.FAIL
    assert result.summary == "model verify-mock not configured (1 models listed)"


# --- hop 4: llm-call ------------------------------------------------------------------------------


def test_llm_call_sends_our_trace_id_and_records_usage(serve: Callable[[App], LocalServer]) -> None:
    fake = FakeLiteLLM()
    server = serve(fake)
    ctx = make_ctx(LITELLM_PORT=server.port)
    result = llm_call.run(ctx)
    assert result.state is State.OK, result
    assert re.match(r"verify-mock: 200 in \d+ ms, 12\+8 tokens, \$2\.4e-05$", result.summary)
    assert ctx.call is not None
    assert ctx.call == CallRecord(ctx.call.trace_id, "verify-mock", 12, 8, 2.4e-05, "call-1234")
    match = TRACEPARENT_RE.match(fake.traceparents[0])
    assert match and match.group(1) == ctx.call.trace_id  # sampled W3C traceparent, our id
    assert f"trace id: {ctx.call.trace_id}" in result.details
    body = server.requests[0].json()
    assert body["model"] == "verify-mock"
    assert server.requests[0].headers["authorization"] == f"Bearer {MASTER_KEY}"


@pytest.mark.parametrize(
    ("cost", "what"), [(None, "no x-litellm-response-cost header"), ("0", "is '0'")]
)
def test_llm_call_without_cost_fails_but_keeps_the_trace(
    serve: Callable[[App], LocalServer], cost: str | None, what: str
) -> None:
    server = serve(FakeLiteLLM(cost=cost))
    ctx = make_ctx(LITELLM_PORT=server.port)
    result = llm_call.run(ctx)
    assert result.state is State.FAIL
    assert what in result.summary
    assert result.hint.startswith("price verify-mock in litellm/config.yaml")
    assert ctx.call is not None  # the call went through: downstream hops still look for it


def test_llm_call_wrong_key(serve: Callable[[App], LocalServer]) -> None:
    server = serve(FakeLiteLLM(master_key="sk-other", wrong_key_status=400))
    ctx = make_ctx(LITELLM_PORT=server.port)
    result = llm_call.run(ctx)
    assert result.state is State.FAIL and "rejected (HTTP 400)" in result.summary
    assert ctx.call is None


def test_llm_call_live_calls_the_provider_model_too(serve: Callable[[App], LocalServer]) -> None:
    fake = FakeLiteLLM()
    server = serve(fake)
    ctx = make_ctx(LITELLM_PORT=server.port)
    ctx.options.live = True
    result = llm_call.run(ctx)
    assert result.state is State.OK, result
    assert [r.json()["model"] for r in server.requests] == [
        "verify-mock",
        "qwen/qwen3-235b-a22b-2507",
    ]
    assert len({TRACEPARENT_RE.match(t).group(1) for t in fake.traceparents}) == 2  # type: ignore[union-attr]


# --- hop 5: collector -----------------------------------------------------------------------------


def collector_ctx(server: LocalServer, **kw: Any) -> Context:
    ports = {"OTEL_COLLECTOR_HEALTH_PORT": server.port, "OTEL_COLLECTOR_METRICS_PORT": server.port}
    ctx = make_ctx(**{**ports, **kw})
    ctx.call = CallRecord(trace_id="ab" * 16, model="verify-mock", input_tokens=12, output_tokens=8)
    return ctx


@pytest.mark.parametrize("total_suffix", [False, True])
def test_collector_delta_ok(serve: Callable[[App], LocalServer], total_suffix: bool) -> None:
    fake = FakeCollector(total_suffix=total_suffix)
    server = serve(fake)
    ctx = collector_ctx(server)
    collector.prepare(ctx)
    assert ctx.collector_baseline is not None
    fake.bump()  # the call's span arrived and was exported
    result = collector.run(ctx)
    assert result.state is State.OK, result
    assert result.summary.startswith("accepted +1, sent +1, failed +0, queue 0 after")
    assert ctx.collector_saw_call is True


def test_collector_waits_for_late_spans(serve: Callable[[App], LocalServer]) -> None:
    fake = FakeCollector()
    server = serve(fake)
    ctx = collector_ctx(server, timeout_s=5)
    progress: list[str] = []
    ctx.progress = progress.append
    collector.prepare(ctx)
    threading.Timer(0.4, fake.bump).start()  # the SDK's batch processor exports a bit later
    result = collector.run(ctx)
    assert result.state is State.OK, result
    assert progress and progress[0].startswith("collector: waiting for spans")


def test_collector_exporter_failing(serve: Callable[[App], LocalServer]) -> None:
    fake = FakeCollector()
    server = serve(fake)
    ctx = collector_ctx(server)
    collector.prepare(ctx)
    fake.accepted += 1
    fake.failed += 1
    result = collector.run(ctx)
    assert result.state is State.FAIL
    assert result.summary.startswith("exporter failing: 1 spans failed to send")
    assert result.hint == "make logs s=otel-collector"
    assert "send failures by exporter (total): clickhouse=1" in result.details


def test_collector_queue_not_draining_warns(serve: Callable[[App], LocalServer]) -> None:
    fake = FakeCollector()
    server = serve(fake)
    ctx = collector_ctx(server, timeout_s=0.4)
    collector.prepare(ctx)
    fake.accepted += 1
    fake.queue = 2
    result = collector.run(ctx)
    assert result.state is State.WARN
    assert result.summary.startswith("accepted but not yet stored (queue 2;")
    assert result.hint == "make logs s=otel-collector"


def test_collector_nothing_accepted(serve: Callable[[App], LocalServer]) -> None:
    server = serve(FakeCollector())
    ctx = collector_ctx(server, timeout_s=0.3)
    collector.prepare(ctx)
    result = collector.run(ctx)
    assert result.state is State.FAIL
    assert result.summary.startswith("no spans accepted since the call")
    assert result.hint.startswith("make logs s=litellm")
    assert ctx.collector_saw_call is False


def test_collector_unhealthy_and_refused(serve: Callable[[App], LocalServer]) -> None:
    server = serve(FakeCollector(health_status=503))
    result = collector.run(collector_ctx(server))
    assert result.state is State.FAIL
    assert result.summary == "health_check answered HTTP 503: Server not available"
    port = free_port()
    ctx = collector_ctx(server, OTEL_COLLECTOR_HEALTH_PORT=port)
    refused = collector.run(ctx)
    assert refused.summary == f"not running: connection refused on 127.0.0.1:{port}"
    assert refused.hint.endswith("make logs s=otel-collector")
    assert ctx.collector_saw_call is False  # the clickhouse hop will not wait for the span


def test_collector_without_a_call_reports_totals(serve: Callable[[App], LocalServer]) -> None:
    server = serve(FakeCollector())
    ctx = make_ctx(OTEL_COLLECTOR_HEALTH_PORT=server.port, OTEL_COLLECTOR_METRICS_PORT=server.port)
    result = collector.run(ctx)
    assert result.state is State.OK
    assert result.summary == (
        "healthy (Server available); totals: accepted 5, sent 5, failed 0, queue 0"
    )


# --- hop 1: containers (pure judgement of `docker compose ps --format json`) ---------------------


def test_containers_assessment() -> None:
    from scripts.verify.compose import parse_ps_json

    ps = "\n".join(
        json.dumps(row)
        for row in [
            {"Service": "litellm", "Name": "a", "State": "running", "Health": "healthy"},
            {"Service": "otel-collector-init", "Name": "b", "State": "exited", "ExitCode": 0},
            {
                "Service": "clickhouse",
                "Name": "c",
                "State": "running",
                "Health": "unhealthy",
                "Publishers": [{"URL": "127.0.0.1", "TargetPort": 8123, "PublishedPort": 8124}],
            },
        ]
    )
    parsed = parse_ps_json(ps)
    assert parsed == parse_ps_json(json.dumps([json.loads(line) for line in ps.splitlines()]))
    assert parsed[2].published_ports == (8124,)
    services = ["litellm", "otel-collector", "otel-collector-init", "clickhouse"]
    result = containers.assess(services, parsed, one_shot=frozenset({"otel-collector-init"}))
    assert result.state is State.FAIL
    assert result.hint == "make up"  # the first failure: otel-collector was never created
    text = "\n".join(result.details)
    assert "✗ otel-collector: not created" in text
    assert "✓ otel-collector-init: completed (one-shot job)" in text
    assert "✗ clickhouse: running (unhealthy)" in text
    healthy = containers.assess(["litellm"], parsed[:1])
    assert healthy.state is State.OK and healthy.summary == "1 services: 1 running, 1 healthy"


def test_a_stopped_service_is_not_a_finished_job() -> None:
    """`docker compose stop otel-collector` exits 0 too; only `restart: "no"` jobs may."""
    from scripts.verify.compose import parse_ps_json

    stopped = parse_ps_json(
        json.dumps(
            [
                {
                    "Service": "otel-collector",
                    "Name": "a",
                    "State": "exited",
                    "ExitCode": 0,
                    "Status": "Exited (0) 3 seconds ago",
                }
            ]
        )
    )
    result = containers.assess(["otel-collector"], stopped, one_shot=frozenset({"init"}))
    assert result.state is State.FAIL
    assert result.hint == "docker compose start otel-collector"


def test_every_gateway_replica_is_checked() -> None:
    """Behind the load balancer one healthy replica is not enough: each one is named, a dead
    one fails the hop, and so does a replica that is missing altogether."""
    from scripts.verify.compose import parse_ps_json

    def replica(name: str, state: str, health: str = "healthy", code: int = 0) -> dict[str, object]:
        return {
            "Service": "litellm",
            "Name": name,
            "State": state,
            "Health": health,
            "ExitCode": code,
            "Status": f"{state} ({health})",
        }

    three = [
        replica("gw-litellm-1", "running"),
        replica("gw-litellm-2", "running"),
        replica("gw-litellm-3", "exited", "", 137),
    ]
    result = containers.assess(
        ["litellm"], parse_ps_json(json.dumps(three)), replicas={"litellm": 3}
    )
    assert result.state is State.FAIL
    text = "\n".join(result.details)
    assert "✓ litellm (gw-litellm-1): running (healthy)" in text
    assert "✗ litellm (gw-litellm-3)" in text and "exit code 137" in text
    assert "✗ litellm: 2 of 3 replicas running" in text

    two = parse_ps_json(json.dumps(three[:2]))
    short = containers.assess(["litellm"], two, replicas={"litellm": 3})
    assert short.state is State.FAIL and "2 of 3 replicas running" in short.summary
    assert containers.assess(["litellm"], two, replicas={"litellm": 2}).state is State.OK
    # A finished one-shot job is no missing replica.
    job = parse_ps_json(json.dumps([{"Service": "init", "Name": "i", "State": "exited"}]))
    assert containers.assess(["init"], job, frozenset({"init"}), {"litellm": 3}).state is State.OK


def test_containers_skip_natively() -> None:
    assert containers.run(make_ctx()).summary == "native mode (test)"
