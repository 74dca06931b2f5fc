"""`make verify`'s hop 6 (clickhouse) against the ClickHouse engine (chdb) behind the
repository's ClickHouse HTTP adapter with the real schema."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from llm_otel.contract import (
    GEN_AI_OPERATION_NAME,
    GEN_AI_USAGE_COST_AMOUNT,
)
from scripts.native_stack.http_double import App, LocalServer
from scripts.verify.context import CallRecord, Context
from scripts.verify.hops import clickhouse, llm_call
from scripts.verify.results import State
from tests.doubles.verify_peers import (
    FakeCollector,
)
from tests.verify.verify_context import (
    ClickHouse,
    free_port,
    make_ctx,
)

# --- hop 6: clickhouse (chdb engine behind the repository's ClickHouse HTTP adapter) ------------


def ch_ctx(ch: ClickHouse, trace_id: str | None, **kw: Any) -> Context:
    ctx = make_ctx(CLICKHOUSE_HTTP_PORT=ch.port, **kw)
    if trace_id is not None:
        ctx.call = CallRecord(trace_id, "verify-mock", 12, 8, 2.4e-05)
    return ctx


def new_trace_id() -> str:
    return llm_call.new_trace_id()


def test_clickhouse_finds_the_trace_with_tokens_and_cost(clickhouse_adapter: ClickHouse) -> None:
    trace_id = new_trace_id()
    clickhouse_adapter.insert_llm_span(trace_id)
    result = clickhouse.run(ch_ctx(clickhouse_adapter, trace_id))
    assert result.state is State.OK, result
    assert re.match(
        r"found after \d\.\ds: 1 span\(s\); verify-mock, 12\+8 tokens, \$2\.4e-05$",
        result.summary,
    ), result.summary
    assert f"trace {trace_id}" in result.details
    assert re.match(r"clock skew [+-]\d+\.\ds$", result.details[-1])


def test_clickhouse_polls_until_the_row_arrives(clickhouse_adapter: ClickHouse) -> None:
    trace_id = new_trace_id()
    ctx = ch_ctx(clickhouse_adapter, trace_id, timeout_s=10)
    progress: list[str] = []
    ctx.progress = progress.append
    timer = threading.Timer(0.5, clickhouse_adapter.insert_llm_span, args=(trace_id,))
    timer.start()
    result = clickhouse.run(ctx)
    timer.join()
    assert result.state is State.OK, result
    assert progress[0].startswith(
        f"clickhouse: waiting for trace {trace_id[:8]}… (spans 0, rows 0)"
    )


def test_clickhouse_trace_missing_after_the_deadline(clickhouse_adapter: ClickHouse) -> None:
    ctx = ch_ctx(clickhouse_adapter, new_trace_id(), timeout_s=0.3)
    result = clickhouse.run(ctx)
    assert result.state is State.FAIL
    assert re.match(r"trace [0-9a-f]{32} not in otel_traces after 0\.\ds", result.summary)
    assert result.hint == "make logs s=otel-collector"


def test_clickhouse_missing_but_collector_still_queues(
    clickhouse_adapter: ClickHouse, serve: Callable[[App], LocalServer]
) -> None:
    server = serve(FakeCollector(queue=3))
    ctx = ch_ctx(
        clickhouse_adapter, new_trace_id(), timeout_s=0.2, OTEL_COLLECTOR_METRICS_PORT=server.port
    )
    result = clickhouse.run(ctx)
    assert result.state is State.WARN
    assert "the collector still queues 3 batch(es)" in result.summary


def test_clickhouse_does_not_wait_when_the_collector_saw_nothing(
    clickhouse_adapter: ClickHouse,
) -> None:
    ctx = ch_ctx(clickhouse_adapter, new_trace_id(), timeout_s=30)
    ctx.collector_saw_call = False
    started = time.monotonic()
    result = clickhouse.run(ctx)
    assert time.monotonic() - started < 5
    assert result.state is State.FAIL
    assert "the collector is down or never received the span (see the collector hop)" in (
        result.details
    )


def test_clickhouse_span_without_llm_calls_row(clickhouse_adapter: ClickHouse) -> None:
    trace_id = new_trace_id()
    clickhouse_adapter.insert_llm_span(
        trace_id, **{GEN_AI_OPERATION_NAME: None}
    )  # not an LLM span to the view
    result = clickhouse.run(ch_ctx(clickhouse_adapter, trace_id, timeout_s=0.3))
    assert result.state is State.FAIL
    assert "but llm_calls has no row for it" in result.summary
    assert result.hint.startswith("make schema")


def test_clickhouse_row_without_cost(clickhouse_adapter: ClickHouse) -> None:
    trace_id = new_trace_id()
    clickhouse_adapter.insert_llm_span(trace_id, **{GEN_AI_USAGE_COST_AMOUNT: None})
    result = clickhouse.run(ch_ctx(clickhouse_adapter, trace_id))
    assert result.state is State.FAIL
    assert "cost_usd is 0.0: the span has no gen_ai.usage.cost" in result.summary


def test_clickhouse_wrong_password(clickhouse_adapter: ClickHouse) -> None:
    result = clickhouse.run(
        ch_ctx(clickhouse_adapter, None, CLICKHOUSE_READER_PASSWORD="not-the-server-password")
    )
    assert result.state is State.FAIL
    assert result.summary.endswith("rejected user 'otel_reader' (code 516)")
    assert result.hint.startswith("docker compose up -d --force-recreate clickhouse")
    assert "Authentication failed" in result.details[0]


def test_clickhouse_table_missing(clickhouse_adapter: ClickHouse) -> None:
    result = clickhouse.run(ch_ctx(clickhouse_adapter, None, CLICKHOUSE_DATABASE="verify_empty"))
    assert result.state is State.FAIL
    assert result.summary.startswith("table or view otel_traces is missing on ")
    assert result.summary.endswith(" (code 60)")
    assert result.hint.startswith("make schema")


def test_clickhouse_unknown_database(clickhouse_adapter: ClickHouse) -> None:
    result = clickhouse.run(ch_ctx(clickhouse_adapter, None, CLICKHOUSE_DATABASE="no_such_db"))
    assert result.state is State.FAIL
    assert "no_such_db" in result.summary and result.hint.startswith("make schema")


def test_clickhouse_refused_and_without_a_call(clickhouse_adapter: ClickHouse) -> None:
    port = free_port()
    refused = clickhouse.run(make_ctx(CLICKHOUSE_HTTP_PORT=port))
    expected = f"ClickHouse is not running: connection refused on 127.0.0.1:{port}"
    assert refused.summary == expected
    assert refused.hint.endswith("make logs s=clickhouse")
    result = clickhouse.run(ch_ctx(clickhouse_adapter, None))
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
