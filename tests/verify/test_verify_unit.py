"""`make verify` (scripts/verify): the runner and CLI, the Prometheus parser, and hops 2-6 against
small real servers on 127.0.0.1: HTTP servers answering like LiteLLM and the collector, and the
ClickHouse engine (chdb) behind the repository's ClickHouse HTTP adapter with the real schema."""

from __future__ import annotations

import io
import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from llm_otel.contract import (
    GEN_AI_OPERATION_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_USAGE_COST_AMOUNT,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
)
from scripts.envfile.parser import parse_env_text
from scripts.envfile.spec import CONTRACT_DEFAULTS, KeySpec
from scripts.native_stack.http_double import App, LocalServer
from scripts.verify import __main__ as cli
from scripts.verify.context import ROOT, CallRecord, Context, NeedsSetting, Options
from scripts.verify.hop import Hop
from scripts.verify.hops import ALL, auth, clickhouse, collector, containers, gateway, llm_call
from scripts.verify.prom import PromParseError, metric_by_label, metric_sum, parse_prometheus_text
from scripts.verify.render import ProgressDisplay, print_hop, summary_line
from scripts.verify.results import Report, Result, State, worst
from scripts.verify.runner import run_hops
from tests.doubles.verify_peers import (
    MASTER_KEY,
    NATIVE_ALL_GREEN,
    TRACEPARENT_RE,
    FakeCollector,
    FakeLiteLLM,
)

READER_PASSWORD = "reader-" + "7a" * 8
ADMIN_PASSWORD = "admin-" + "6b" * 8
SPEC = KeySpec(source="test", defaults=dict(CONTRACT_DEFAULTS))


def free_port() -> int:
    """A port nothing listens on (bound and released): connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def serve() -> Iterator[Callable[[App], LocalServer]]:
    servers: list[LocalServer] = []

    def start(app: App) -> LocalServer:
        servers.append(LocalServer(app).start())
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """Accepts connections (kernel backlog) but never answers: a hung service."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


def env_values(**overrides: object) -> dict[str, str]:
    values = dict(CONTRACT_DEFAULTS)
    values.update(
        LITELLM_MASTER_KEY=MASTER_KEY,
        OPENROUTER_API_KEY="sk-or-test-" + "1c" * 10,
        CLICKHOUSE_ADMIN_PASSWORD=ADMIN_PASSWORD,
        CLICKHOUSE_WRITER_PASSWORD="writer-" + "2d" * 8,
        CLICKHOUSE_READER_PASSWORD=READER_PASSWORD,
    )
    ports = [k for k in values if k.endswith("_PORT")]
    values.update({k: str(free_port()) for k in ports})  # all refused unless overridden
    values.update({k: str(v) for k, v in overrides.items()})
    return values


def make_ctx(timeout_s: float = 2.0, http_timeout_s: float = 2.0, **overrides: object) -> Context:
    text = "".join(f"{k}={v}\n" for k, v in env_values(**overrides).items())
    options = Options(
        native=True,
        native_reason="test",
        timeout_s=timeout_s,
        http_timeout_s=http_timeout_s,
        poll_interval_s=0.05,
    )
    return Context(options=options, env=parse_env_text(text), spec=SPEC)


# --- runner: states, exit codes, crashes, needs -------------------------------------------------


def _hop(name: str, result: Result | Exception, needs: tuple[str, ...] = ()) -> Hop:
    def run(ctx: Context) -> Result:
        if isinstance(result, Exception):
            raise result
        return result

    return Hop(name=name, title=name.title(), run=run, needs=needs)


def test_worst_state_reduction() -> None:
    assert worst([]) is State.OK
    assert worst([State.SKIP]) is State.SKIP
    assert worst([State.SKIP, State.OK]) is State.OK
    assert worst([State.OK, State.WARN, State.SKIP]) is State.WARN
    assert worst([State.WARN, State.FAIL, State.OK]) is State.FAIL


@pytest.mark.parametrize(
    ("results", "state", "code"),
    [
        ([Result.ok("a"), Result.ok("b")], State.OK, 0),
        ([Result.ok("a"), Result.warn("b")], State.WARN, 0),  # warnings never fail the run
        ([Result.skip("a"), Result.ok("b")], State.OK, 0),
        ([Result.warn("a"), Result.fail("b"), Result.ok("c")], State.FAIL, 1),
    ],
)
def test_report_state_and_exit_code(results: list[Result], state: State, code: int) -> None:
    hops = [_hop(f"h{i}", r) for i, r in enumerate(results)]
    report = run_hops(hops, make_ctx())
    assert (report.state, report.exit_code) == (state, code)


def test_a_crashing_check_is_that_hops_fail_and_the_rest_still_run() -> None:
    seen: list[str] = []
    hops = [
        _hop("first", Result.ok("fine")),
        _hop("boom", ValueError("unexpected answer\nsecond line")),
        _hop("after", Result.ok("still ran")),
    ]
    report = run_hops(hops, make_ctx(), on_done=lambda r: seen.append(r.name))
    assert seen == ["first", "boom", "after"]
    crashed = report.hops[1].result
    assert crashed.state is State.FAIL
    assert crashed.summary == "check crashed: ValueError: unexpected answer"
    assert crashed.details[0].startswith("at test_verify_unit.py:")
    assert report.hops[2].state is State.OK
    assert report.exit_code == 1


def test_needs_skip_after_a_failure_but_not_when_unselected() -> None:
    hops = [
        _hop("gateway", Result.fail("down")),
        _hop("auth", Result.ok("x"), needs=("gateway",)),
        _hop("call", Result.ok("x"), needs=("auth",)),
    ]
    report = run_hops(hops, make_ctx())
    assert [(h.state, h.result.summary) for h in report.hops[1:]] == [
        (State.SKIP, "needs: gateway"),
        (State.SKIP, "needs: auth"),  # a skipped need blocks too
    ]
    # Run alone, a hop does not wait for needs nobody asked for.
    alone = run_hops([hops[1]], make_ctx())
    assert alone.hops[0].state is State.OK


def test_missing_setting_is_a_skip_that_names_it() -> None:
    def run(ctx: Context) -> Result:
        ctx.port("LITELLM_PORT")
        return Result.ok("unreachable")

    ctx = make_ctx(LITELLM_PORT="not-a-port")
    report = run_hops([Hop("gateway", "Gateway", run)], ctx)
    assert report.hops[0].state is State.SKIP
    assert report.hops[0].result.summary == (
        "needs: settings (LITELLM_PORT is not a port number (1-65535))"
    )
    with pytest.raises(NeedsSetting):
        make_ctx(LITELLM_MASTER_KEY="").setting("LITELLM_MASTER_KEY")
    assert make_ctx().setting("CLICKHOUSE_READER_USER") == "otel_reader"  # documented default


def test_prepare_runs_before_any_hop_and_its_crash_is_recorded() -> None:
    order: list[str] = []

    def prepare(ctx: Context) -> None:
        order.append("prepare")
        raise ConnectionError("metrics down")

    def run(ctx: Context) -> Result:
        order.append("run")
        return Result.ok(ctx.prepare_errors.get("late", ""))

    hops = [Hop("early", "Early", run), Hop("late", "Late", run, prepare=prepare)]
    report = run_hops(hops, make_ctx())
    assert order == ["prepare", "run", "run"]
    assert report.hops[1].result.summary == "ConnectionError: metrics down"


def test_render_failure_shows_what_why_and_fix_without_traceback() -> None:
    out = io.StringIO()
    console = Console(file=out, width=300, soft_wrap=True)
    hops = [_hop("ok", Result.ok("3 ms", ["hidden detail"])), _hop("boom", RuntimeError("kaput"))]
    report = run_hops(hops, make_ctx())
    for hop_report in report.hops:
        print_hop(console, hop_report)
    text = out.getvalue()
    assert "[✓] Ok: 3 ms" in text
    assert "hidden detail" not in text  # details of passing hops only with -v
    assert "[✗] Boom: check crashed: RuntimeError: kaput" in text
    assert "    why: " in text and "    fix: python -m scripts.verify -v boom" in text
    assert "Traceback" not in text
    assert summary_line(Report(report.hops, 1.25)) == "1 passed, 1 failed in 1.2s"


def test_plain_progress_line_when_not_a_terminal() -> None:
    out = io.StringIO()
    progress = ProgressDisplay(Console(file=out, width=200))
    progress.start(_hop("x", Result.ok("")))
    progress.update("waiting for trace (1s of 20s)")
    progress.update("waiting for trace (2s of 20s)")  # throttled: CI logs stay short
    progress.stop()
    assert out.getvalue().strip().splitlines() == ["… waiting for trace (1s of 20s)"]


# --- CLI ------------------------------------------------------------------------------------------


def test_list_via_python_m() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "scripts.verify", "--list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    names = [line.split()[0] for line in done.stdout.splitlines()]
    assert names == [
        "settings",
        "containers",
        "gateway",
        "auth",
        "llm-call",
        "collector",
        "clickhouse",
        "langfuse",
        "grafana",
        "agentops",
    ]


@pytest.mark.parametrize(
    "argv",
    [["no-such-hop"], ["--preflight", "gateway"], ["--timeout", "-1"], ["--bogus-flag"]],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2


def test_json_document_and_single_hop_selection(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env_values().items()))
    # Names in any order run in chain order; only those run.
    code = cli.main(["--json", "--native", "--env-file", str(env_file), "auth", "gateway"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1
    assert set(doc) == {
        "state",
        "exit_code",
        "elapsed_s",
        "counts",
        "env_file",
        "mode",
        "trace_id",
        "hops",
    }
    assert (doc["state"], doc["exit_code"], doc["mode"]) == ("fail", 1, "native")
    assert doc["counts"] == {"skip": 1, "ok": 0, "warn": 0, "fail": 1}
    assert [h["name"] for h in doc["hops"]] == ["gateway", "auth"]
    gw = doc["hops"][0]
    assert set(gw) == {"name", "title", "state", "summary", "details", "hint", "why", "elapsed_s"}
    assert gw["state"] == "fail" and gw["summary"].startswith("not running: connection refused")
    assert gw["hint"].startswith("make up")
    assert doc["hops"][1] | {"elapsed_s": 0} == {
        "name": "auth",
        "title": "Auth (master key)",
        "state": "skip",
        "summary": "needs: gateway",
        "details": [],
        "hint": "",
        "why": "",
        "elapsed_s": 0,
    }


def test_cli_crash_is_reported_and_other_hops_still_print(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    hops = (_hop("alpha", KeyError("model")), _hop("beta", Result.warn("slow", hint="wait")))
    monkeypatch.setattr(cli, "ALL", hops)
    monkeypatch.setattr(cli, "BY_NAME", {h.name: h for h in hops})
    code = cli.main(["--native", "--env-file", str(tmp_path / "none.env")])
    out = capsys.readouterr().out
    assert code == 1
    assert "[✗] Alpha: check crashed: KeyError: 'model'" in out
    assert "[!] Beta: slow" in out and "fix: wait" in out
    assert "Traceback" not in out
    assert re.search(r"1 warning, 1 failed in \d+\.\ds", out)


# --- Prometheus text (captured from otelcol 0.161 with an exporter pointed at a dead endpoint) ---

COLLECTOR_METRICS = r"""
# HELP otelcol_exporter_enqueue_size_bytes Number of bytes in the request added to the sending queue. Only available on detailed level. [Development]
# TYPE otelcol_exporter_enqueue_size_bytes histogram
otelcol_exporter_enqueue_size_bytes_bucket{exporter="otlphttp/dead",le="128"} 3
otelcol_exporter_enqueue_size_bytes_bucket{exporter="otlphttp/dead",le="+Inf"} 3
otelcol_exporter_enqueue_size_bytes_sum{exporter="otlphttp/dead"} 333
otelcol_exporter_enqueue_size_bytes_count{exporter="otlphttp/dead"} 3
# HELP otelcol_exporter_queue_capacity Fixed capacity of the retry queue (in batches). [Alpha]
# TYPE otelcol_exporter_queue_capacity gauge
otelcol_exporter_queue_capacity{data_type="traces",exporter="otlphttp/dead"} 1000
# HELP otelcol_exporter_queue_size Current size of the retry queue (in batches). [Alpha]
# TYPE otelcol_exporter_queue_size gauge
otelcol_exporter_queue_size{data_type="traces",exporter="otlphttp/dead"} 0
# HELP otelcol_exporter_send_failed_spans Number of spans in failed attempts to send to destination. At detailed telemetry level, includes attributes: error.type (semantic convention), error.permanent. [Alpha]
# TYPE otelcol_exporter_send_failed_spans counter
otelcol_exporter_send_failed_spans{error_permanent="false",error_type="_OTHER",exporter="otlphttp/dead",server_address="127.0.0.1",server_port="1",url_path="/v1/traces"} 3
# HELP otelcol_exporter_sent_spans Number of spans successfully sent to destination. [Alpha]
# TYPE otelcol_exporter_sent_spans counter
otelcol_exporter_sent_spans{exporter="debug"} 3
otelcol_exporter_sent_spans{exporter="otlphttp/dead",server_address="127.0.0.1",server_port="1",url_path="/v1/traces"} 0
# HELP otelcol_process_uptime Uptime of the process [Alpha]
# TYPE otelcol_process_uptime counter
otelcol_process_uptime 5.032206655
# HELP otelcol_receiver_accepted_spans Number of spans successfully pushed into the pipeline. [Alpha]
# TYPE otelcol_receiver_accepted_spans counter
otelcol_receiver_accepted_spans{receiver="otlp",transport="http"} 3
# HELP otelcol_receiver_refused_spans Number of spans that could not be pushed into the pipeline. [Alpha]
# TYPE otelcol_receiver_refused_spans counter
otelcol_receiver_refused_spans{receiver="otlp",transport="http"} 0
# HELP target_info Target metadata
# TYPE target_info gauge
target_info{service_instance_id="a93a30ff-fdc3-4e94-8247-5bf464395aa2",service_name="otelcol",service_version="0.161.0"} 1
"""  # noqa: E501 - verbatim scrape


def test_prometheus_parser_on_real_collector_text() -> None:
    samples = parse_prometheus_text(COLLECTOR_METRICS)
    assert len(samples) == 13
    assert metric_sum(samples, "otelcol_receiver_accepted_spans") == 3
    assert metric_sum(samples, "otelcol_exporter_sent_spans") == 3  # summed over exporters
    assert metric_sum(samples, "otelcol_exporter_send_failed_spans") == 3
    assert metric_sum(samples, "otelcol_exporter_queue_size") == 0
    assert metric_sum(samples, "otelcol_process_uptime") == pytest.approx(5.032206655)
    assert metric_sum(samples, "otelcol_receiver_failed_spans") is None  # absent
    failed = metric_by_label(samples, "otelcol_exporter_send_failed_spans", "exporter")
    assert failed == {"otlphttp/dead": 3}
    bucket = next(s for s in samples if s.labels.get("le") == "+Inf")
    assert bucket.name == "otelcol_exporter_enqueue_size_bytes_bucket" and bucket.value == 3
    info = samples[-1]
    assert info.labels["service_version"] == "0.161.0"


def test_prometheus_parser_total_suffix_escapes_and_timestamps() -> None:
    text = (
        'otelcol_receiver_accepted_spans_total{receiver="otlp",transport="grpc"} 7 1700000000000\n'
        'otelcol_receiver_accepted_spans_total{receiver="a\\"b,c}",transport="x\\\\y\\n"} 2\n'
        "otelcol_exporter_queue_size NaN\n"
        "otelcol_weird_gauge +Inf\n"
    )
    samples = parse_prometheus_text(text)
    assert metric_sum(samples, "otelcol_receiver_accepted_spans") == 9
    assert samples[1].labels == {"receiver": 'a"b,c}', "transport": "x\\y\n"}
    assert metric_sum(samples, "otelcol_exporter_queue_size") is None  # NaN is not a value
    assert metric_sum(samples, "otelcol_weird_gauge") == float("inf")


@pytest.mark.parametrize(
    "bad", ['metric{label="open 1\n', 'metric{="x"} 1\n', "metric\n", "{} 1\n"]
)
def test_prometheus_parser_rejects_garbage_with_line_number(bad: str) -> None:
    with pytest.raises(PromParseError, match=r"^line 2: "):
        parse_prometheus_text("# ok\n" + bad)


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


# --- hop 6: clickhouse (chdb engine behind the repository's ClickHouse HTTP adapter) ------------


@dataclass
class ClickHouse:
    port: int
    admin: Any

    def insert_llm_span(self, trace_id: str, **attributes: object) -> None:
        from tests.support.span_rows import exporter_span_row, insert_span_rows

        attrs: dict[str, object] = {
            GEN_AI_OPERATION_NAME: "chat",
            GEN_AI_REQUEST_MODEL: "verify-mock",
            GEN_AI_USAGE_INPUT_TOKENS: 12,
            GEN_AI_USAGE_OUTPUT_TOKENS: 8,
            GEN_AI_USAGE_COST_AMOUNT: 2.4e-05,
        }
        attrs.update(attributes)
        attrs = {k: v for k, v in attrs.items() if v is not None}
        row = exporter_span_row(
            start_ns=time.time_ns(),
            duration_ns=5_000_000,
            name="chat verify-mock",
            attributes=attrs,
            trace_id=trace_id,
        )
        insert_span_rows(self.admin.command, [row])


@pytest.fixture(scope="module")
def ch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouse]:
    pytest.importorskip("chdb")
    adapter = pytest.importorskip("scripts.native_stack.chdb_server")
    schema = pytest.importorskip("scripts.clickhouse_schema.files")
    import clickhouse_connect

    users = {
        "admin": ADMIN_PASSWORD,
        "otel_reader": {"password": READER_PASSWORD, "readonly": True},
    }
    proc = adapter.start_adapter(tmp_path_factory.mktemp("chdb") / "data", users=users)
    try:
        admin = clickhouse_connect.get_client(
            host="127.0.0.1",
            port=proc.port,
            username="admin",
            password=ADMIN_PASSWORD,
            compress=False,
        )
        schema.apply_schema(admin.command)
        admin.command("CREATE DATABASE IF NOT EXISTS verify_empty")
        yield ClickHouse(proc.port, admin)
    finally:
        proc.stop()


def ch_ctx(ch: ClickHouse, trace_id: str | None, **kw: Any) -> Context:
    ctx = make_ctx(CLICKHOUSE_HTTP_PORT=ch.port, **kw)
    if trace_id is not None:
        ctx.call = CallRecord(trace_id, "verify-mock", 12, 8, 2.4e-05)
    return ctx


def new_trace_id() -> str:
    return llm_call.new_trace_id()


def test_clickhouse_finds_the_trace_with_tokens_and_cost(ch: ClickHouse) -> None:
    trace_id = new_trace_id()
    ch.insert_llm_span(trace_id)
    result = clickhouse.run(ch_ctx(ch, trace_id))
    assert result.state is State.OK, result
    assert re.match(
        r"found after \d\.\ds: 1 span\(s\); verify-mock, 12\+8 tokens, \$2\.4e-05$",
        result.summary,
    ), result.summary
    assert f"trace {trace_id}" in result.details
    assert re.match(r"clock skew [+-]\d+\.\ds$", result.details[-1])


def test_clickhouse_polls_until_the_row_arrives(ch: ClickHouse) -> None:
    trace_id = new_trace_id()
    ctx = ch_ctx(ch, trace_id, timeout_s=10)
    progress: list[str] = []
    ctx.progress = progress.append
    timer = threading.Timer(0.5, ch.insert_llm_span, args=(trace_id,))
    timer.start()
    result = clickhouse.run(ctx)
    timer.join()
    assert result.state is State.OK, result
    assert progress[0].startswith(
        f"clickhouse: waiting for trace {trace_id[:8]}… (spans 0, rows 0)"
    )


def test_clickhouse_trace_missing_after_the_deadline(ch: ClickHouse) -> None:
    ctx = ch_ctx(ch, new_trace_id(), timeout_s=0.3)
    result = clickhouse.run(ctx)
    assert result.state is State.FAIL
    assert re.match(r"trace [0-9a-f]{32} not in otel_traces after 0\.\ds", result.summary)
    assert result.hint == "make logs s=otel-collector"


def test_clickhouse_missing_but_collector_still_queues(
    ch: ClickHouse, serve: Callable[[App], LocalServer]
) -> None:
    server = serve(FakeCollector(queue=3))
    ctx = ch_ctx(ch, new_trace_id(), timeout_s=0.2, OTEL_COLLECTOR_METRICS_PORT=server.port)
    result = clickhouse.run(ctx)
    assert result.state is State.WARN
    assert "the collector still queues 3 batch(es)" in result.summary


def test_clickhouse_does_not_wait_when_the_collector_saw_nothing(ch: ClickHouse) -> None:
    ctx = ch_ctx(ch, new_trace_id(), timeout_s=30)
    ctx.collector_saw_call = False
    started = time.monotonic()
    result = clickhouse.run(ctx)
    assert time.monotonic() - started < 5
    assert result.state is State.FAIL
    assert "the collector is down or never received the span (see the collector hop)" in (
        result.details
    )


def test_clickhouse_span_without_llm_calls_row(ch: ClickHouse) -> None:
    trace_id = new_trace_id()
    ch.insert_llm_span(trace_id, **{GEN_AI_OPERATION_NAME: None})  # not an LLM span to the view
    result = clickhouse.run(ch_ctx(ch, trace_id, timeout_s=0.3))
    assert result.state is State.FAIL
    assert "but llm_calls has no row for it" in result.summary
    assert result.hint.startswith("make schema")


def test_clickhouse_row_without_cost(ch: ClickHouse) -> None:
    trace_id = new_trace_id()
    ch.insert_llm_span(trace_id, **{GEN_AI_USAGE_COST_AMOUNT: None})
    result = clickhouse.run(ch_ctx(ch, trace_id))
    assert result.state is State.FAIL
    assert "cost_usd is 0.0: the span has no gen_ai.usage.cost" in result.summary


def test_clickhouse_wrong_password(ch: ClickHouse) -> None:
    result = clickhouse.run(ch_ctx(ch, None, CLICKHOUSE_READER_PASSWORD="not-the-server-password"))
    assert result.state is State.FAIL
    assert result.summary == "ClickHouse rejected otel_reader's password (code 516)"
    assert result.hint.startswith("docker compose up -d --force-recreate clickhouse")
    assert "Authentication failed" in result.details[0]


def test_clickhouse_table_missing(ch: ClickHouse) -> None:
    result = clickhouse.run(ch_ctx(ch, None, CLICKHOUSE_DATABASE="verify_empty"))
    assert result.state is State.FAIL
    assert result.summary == "table or view otel_traces is missing (code 60)"
    assert result.hint.startswith("make schema")


def test_clickhouse_unknown_database(ch: ClickHouse) -> None:
    result = clickhouse.run(ch_ctx(ch, None, CLICKHOUSE_DATABASE="no_such_db"))
    assert result.state is State.FAIL
    assert "no_such_db" in result.summary and result.hint.startswith("make schema")


def test_clickhouse_refused_and_without_a_call(ch: ClickHouse) -> None:
    port = free_port()
    refused = clickhouse.run(make_ctx(CLICKHOUSE_HTTP_PORT=port))
    assert refused.summary == f"not running: connection refused on 127.0.0.1:{port}"
    assert refused.hint.endswith("make logs s=clickhouse")
    result = clickhouse.run(ch_ctx(ch, None))
    assert result.state is State.OK
    assert result.summary.startswith("connected as otel_reader, otel_traces and llm_calls readable")


def test_clickhouse_timeout_is_not_refused(silent_port: int) -> None:
    ctx = make_ctx(CLICKHOUSE_HTTP_PORT=silent_port, http_timeout_s=0.5)
    result = clickhouse.run(ctx)
    assert result.state is State.FAIL
    assert result.summary == f"no answer from 127.0.0.1:{silent_port} within 0.5s"
    assert result.hint == "make logs s=clickhouse"


@pytest.mark.parametrize(
    ("skew", "state"),
    [(0.4, State.OK), (-59.0, State.OK), (95.0, State.WARN), (-3600.0, State.FAIL)],
)
def test_clock_skew(skew: float, state: State) -> None:
    assert clickhouse.assess_skew(skew)[0] is state
    assert "behind" in clickhouse.assess_skew(-120)[1]


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


# --- the whole chain through the CLI, every hop against a real local server ---------------------


def test_full_chain_passes(
    ch: ClickHouse,
    serve: Callable[[App], LocalServer],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    otelcol = FakeCollector()

    def export(trace_id: str, usage: dict[str, int], cost: float) -> None:
        # What the hook + collector do: the span lands in ClickHouse, the counters move.
        ch.insert_llm_span(trace_id)
        otelcol.bump()

    proxy = serve(FakeLiteLLM(on_chat=export))
    health, metrics = serve(otelcol), serve(otelcol)  # one fake collector behind both ports
    values = env_values(
        LITELLM_PORT=proxy.port,
        OTEL_COLLECTOR_HEALTH_PORT=health.port,
        OTEL_COLLECTOR_METRICS_PORT=metrics.port,
        CLICKHOUSE_HTTP_PORT=ch.port,
    )
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    code = cli.main(["--json", "--native", "--timeout", "5", "--env-file", str(env_file)])
    doc = json.loads(capsys.readouterr().out)
    states = {h["name"]: h["state"] for h in doc["hops"]}
    assert states == NATIVE_ALL_GREEN, doc
    assert (code, doc["state"], doc["exit_code"]) == (0, "ok", 0)
    assert doc["trace_id"] and f"trace id: {doc['trace_id']}" in doc["hops"][4]["details"]
    assert [h["name"] for h in doc["hops"]] == [h.name for h in ALL]


def test_hook_backlog_is_read_from_the_gateway_log() -> None:
    from scripts.verify.compose import holding_since

    held = (
        "litellm-1  | 2026-11-29T16:30:01.123456789Z llm_otel: collector unreachable; "
        "holding up to 16384 spans until it is back"
    )
    more = "litellm-1  | 2026-11-29T16:30:09.000000000Z INFO: 200 OK"
    back = (
        "litellm-1  | 2026-11-29T16:31:00.000000000Z llm_otel: collector reachable again; "
        "buffered spans sent"
    )
    assert holding_since("\n".join([held, more])) == "2026-11-29T16:30:01Z"
    assert holding_since("\n".join([held, more, back])) is None
    assert holding_since("\n".join([held, back, held])) == "2026-11-29T16:30:01Z"
    assert holding_since(more) is None


def test_hook_health_names_each_instance_that_holds_or_dropped() -> None:
    from scripts.span_contract import contract
    from scripts.verify.hook_health import assess
    from scripts.verify.results import State

    held, dropped = contract.LLM_OTEL_SPANS_HELD, contract.LLM_OTEL_SPANS_DROPPED
    healthy = [("gw-1", held, 0.0), ("gw-1", dropped, 0.0), ("gw-2", held, 0.0)]
    assert assess(healthy).state is State.OK
    assert "2 instance(s)" in assess(healthy).summary
    result = assess([("gw-1", held, 0.0), ("gw-2", held, 12.0), ("gw-2", dropped, 3.0)])
    assert result.state is State.WARN
    assert "gw-2 holds 12 spans" in result.summary and "gw-2 dropped 3 spans" in result.summary
    assert "gw-1" not in result.summary  # the healthy replica is not blamed
    assert assess([]).state is State.OK
    moved = assess([("gw-3", contract.LLM_OTEL_TOUCHPOINTS_MISSING, 4.0)])
    assert moved.state is State.WARN and "gw-3 misses a LiteLLM internal" in moved.summary
