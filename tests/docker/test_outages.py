"""Outages on the real engine, under load, and what `make verify` says about them.

Every answered call must have exactly one row in `llm_calls` once the stack is whole again:
through a collector restart and a 30 s ClickHouse stop. Then faults a user can cause, each
named by the right verify hop with a command that helps.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import pytest

from tests.docker.stack import ComposeStack

pytestmark = pytest.mark.timeout(900)


def under_load(stack: ComposeStack, calls: int, during: Callable[[], None],
               pause: float = 0.0) -> list[tuple[str, int]]:
    """Run `during` while `calls` calls are in flight; every call must be answered."""
    results: list[tuple[str, int]] = []
    worker = threading.Thread(target=lambda: results.extend(
        stack.load(calls, concurrency=8, pause=pause)))
    worker.start()
    time.sleep(1.0)
    during()
    worker.join(timeout=600)
    assert not worker.is_alive(), "load did not finish"
    statuses = [status for _, status in results]
    assert statuses == [200] * calls, f"not every call was answered: {sorted(set(statuses))}"
    return results


def assert_exactly_one_row_each(stack: ComposeStack, results: list[tuple[str, int]],
                                timeout: float) -> None:
    trace_ids = [trace_id for trace_id, _ in results]
    counts = stack.wait_for_rows(trace_ids, timeout=timeout)
    missing = [t for t in trace_ids if t not in counts]
    doubled = {t: n for t, n in counts.items() if n != 1}
    assert not missing and not doubled, f"{len(missing)} calls missing, {len(doubled)} not once"


def verify_json(stack: ComposeStack, *hops: str) -> dict[str, dict[str, object]]:
    run = stack.make(f"verify ARGS='--json --timeout 5 {' '.join(hops)}'", timeout=180)
    doc = json.loads(run.stdout)
    # make exits 2 when `scripts.verify` exits 1 (a hop failed), 0 otherwise.
    assert (run.code != 0) == any(h["state"] == "fail" for h in doc["hops"]), run.out[-2000:]
    return {hop["name"]: hop for hop in doc["hops"]}


def test_collector_restart_under_load(running: ComposeStack) -> None:
    results = under_load(running, 200,
                         lambda: running.compose("restart", "otel-collector").ok())
    assert_exactly_one_row_each(running, results, timeout=120)


def test_clickhouse_stopped_30s_under_load(running: ComposeStack) -> None:
    def outage() -> None:
        running.compose("stop", "clickhouse").ok()
        time.sleep(30)
        running.compose("start", "clickhouse").ok()

    results = under_load(running, 240, outage, pause=0.2)
    # The exporter retries with backoff up to 30 s: allow it a few rounds after the return.
    assert_exactly_one_row_each(running, results, timeout=180)


def test_verify_names_a_stopped_collector(running: ComposeStack) -> None:
    running.compose("stop", "otel-collector").ok()
    try:
        hops = verify_json(running)
        assert hops["gateway"]["state"] == "ok"  # the gateway keeps serving
        assert hops["collector"]["state"] == "fail" and hops["collector"]["hint"], hops
        assert hops["containers"]["state"] == "fail", hops["containers"]
        assert "otel-collector" in json.dumps(hops["containers"])
    finally:
        running.compose("start", "otel-collector").ok()


def test_verify_names_a_stopped_clickhouse(running: ComposeStack) -> None:
    running.compose("stop", "clickhouse").ok()
    try:
        hops = verify_json(running)
        assert hops["llm-call"]["state"] == "ok"  # telemetry down, the gateway serves
        assert hops["clickhouse"]["state"] == "fail" and hops["clickhouse"]["hint"], hops
    finally:
        running.compose("start", "clickhouse").ok()


def test_verify_names_a_master_key_changed_after_start(running: ComposeStack) -> None:
    key = running.env["LITELLM_MASTER_KEY"]
    running.set_env({"LITELLM_MASTER_KEY": key[:-4] + "beef"})
    try:
        hops = verify_json(running, "settings", "auth")
        assert hops["auth"]["state"] == "fail", hops["auth"]
        assert "docker compose up -d" in str(hops["auth"]["hint"]), hops["auth"]
    finally:
        running.set_env({"LITELLM_MASTER_KEY": key})


def test_whole_again_verify_is_green(running: ComposeStack) -> None:
    deadline = time.monotonic() + 120
    while True:
        hops = verify_json(running)
        bad = {name: hop["state"] for name, hop in hops.items()
               if hop["state"] not in ("ok", "skip")}
        if not bad or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert not bad, hops
