"""`make verify` through its CLI, every hop against a real local server; the hook's backlog and
health as the gateway log reports them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from scripts.native_stack.http_double import App, LocalServer
from scripts.verify import __main__ as cli
from scripts.verify.hops import ALL
from scripts.verify.results import State
from tests.doubles.verify_peers import (
    NATIVE_ALL_GREEN,
    FakeCollector,
    FakeLiteLLM,
)
from tests.verify.verify_context import (
    ClickHouse,
    env_values,
)

# --- the whole chain through the CLI, every hop against a real local server ---------------------


def test_full_chain_passes(
    clickhouse_adapter: ClickHouse,
    serve: Callable[[App], LocalServer],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    otelcol = FakeCollector()

    def export(trace_id: str, usage: dict[str, int], cost: float) -> None:
        # What the hook + collector do: the span lands in ClickHouse, the counters move.
        clickhouse_adapter.insert_llm_span(trace_id)
        otelcol.bump()

    proxy = serve(FakeLiteLLM(on_chat=export))
    health, metrics = serve(otelcol), serve(otelcol)  # one fake collector behind both ports
    values = env_values(
        LITELLM_PORT=proxy.port,
        OTEL_COLLECTOR_HEALTH_PORT=health.port,
        OTEL_COLLECTOR_METRICS_PORT=metrics.port,
        CLICKHOUSE_HTTP_PORT=clickhouse_adapter.port,
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
