"""ClickHouse away, collector restarted meanwhile: the collector's persistent queue delivers
every span once ClickHouse is back (issue #5)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from scripts.native_stack.harness import MOCK_MODEL, NativeStack
from tests.support.traceparent import traceparent

StackFactory = Callable[..., NativeStack]


def test_clickhouse_outage_and_collector_restart_lose_nothing(make_stack: StackFactory) -> None:
    stack = make_stack(clickhouse=True)
    assert stack.clickhouse is not None and stack.collector is not None
    stack.clickhouse.stop()  # ClickHouse down: the exporter queues to disk and retries
    trace_ids = []
    for i in range(40):
        trace_id = secrets.token_hex(16)
        trace_ids.append(trace_id)
        response = stack.chat(
            MOCK_MODEL,
            f"outage {i}",
            headers={"traceparent": traceparent(trace_id)},
        )
        assert response.status_code == 200  # the gateway does not care
    # Every span reached the collector (its file exporter proves acceptance)...
    stack.wait_for_llm_spans(40, timeout=30)
    time.sleep(2)  # ...and sits in the ClickHouse exporter's persistent queue.
    stack.stop_collector()
    stack.restart_collector()
    stack.clickhouse.start()
    reader = stack.clickhouse.client("otel_reader")

    def stored() -> int | None:
        rows = reader.query(
            "SELECT count(), uniqExact(trace_id) FROM llm_calls WHERE has({ids:Array(String)}, "
            "trace_id)",
            parameters={"ids": trace_ids},
        ).result_rows[0]
        return rows[1] if rows[1] == len(trace_ids) else None

    stack.wait_for(stored, timeout=90, what="every queued span in ClickHouse")
    count, distinct = reader.query(
        "SELECT count(), uniqExact(trace_id) FROM llm_calls WHERE has({ids:Array(String)}, "
        "trace_id)",
        parameters={"ids": trace_ids},
    ).result_rows[0]
    assert distinct == len(trace_ids)
    assert count == distinct, "a replayed batch was stored twice"
