"""Outages on the real engine, under load, and what `make verify` says about them.

Every answered call must have exactly one row in `llm_calls` once the stack is whole again:
through a collector restart and a 30 s ClickHouse stop. Then faults a user can cause, each
named by the right verify hop with a command that helps.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from tests.docker.stack import ComposeStack

pytestmark = pytest.mark.timeout(900)


def under_load(
    stack: ComposeStack, calls: int, during: Callable[[], None], pause: float = 0.0
) -> list[tuple[str, int]]:
    """Run `during` while `calls` calls are in flight; every call must be answered."""
    results: list[tuple[str, int]] = []
    worker = threading.Thread(
        target=lambda: results.extend(stack.load(calls, concurrency=8, pause=pause))
    )
    worker.start()
    time.sleep(1.0)
    during()
    worker.join(timeout=600)
    assert not worker.is_alive(), "load did not finish"
    statuses = [status for _, status in results]
    assert statuses == [200] * calls, f"not every call was answered: {sorted(set(statuses))}"
    return results


def assert_exactly_one_row_each(
    stack: ComposeStack, results: list[tuple[str, int]], timeout: float
) -> None:
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
    results = under_load(running, 200, lambda: running.compose("restart", "otel-collector").ok())
    assert_exactly_one_row_each(running, results, timeout=120)


def test_clickhouse_stopped_30s_under_load(running: ComposeStack) -> None:
    def outage() -> None:
        running.compose("stop", "clickhouse").ok()
        time.sleep(30)
        running.compose("start", "clickhouse").ok()

    results = under_load(running, 240, outage, pause=0.2)
    # The exporter retries with backoff up to 30 s: allow it a few rounds after the return.
    assert_exactly_one_row_each(running, results, timeout=180)


def crash(stack: ComposeStack, service: str) -> None:
    """SIGKILL the service's process from the host, the way the engine sees a crash (`docker
    kill` would count as a manual stop, and `restart: unless-stopped` would not restart it)."""
    container = stack.compose("ps", "-q", service).ok().stdout.strip()
    pid = stack.sh(f"docker inspect -f '{{{{.State.Pid}}}}' {container}").ok().stdout.strip()
    assert pid.isdigit() and pid != "0", pid
    stack.sh(f"kill -KILL {pid}").ok()


def restarts(stack: ComposeStack, service: str) -> int:
    container = stack.compose("ps", "-q", service).ok().stdout.strip()
    return int(stack.sh(f"docker inspect -f '{{{{.RestartCount}}}}' {container}").ok().stdout)


def test_collector_crash_under_load_loses_nothing_acknowledged(running: ComposeStack) -> None:
    """The collector answers an OTLP request only once the spans are in its on-disk queue, and
    the hook keeps what was not answered: a SIGKILL in the middle of load costs no call."""
    before = restarts(running, "otel-collector")
    results = under_load(running, 400, lambda: crash(running, "otel-collector"))
    assert restarts(running, "otel-collector") == before + 1  # the engine restarted it
    assert_exactly_one_row_each(running, results, timeout=120)


def test_quiet_gateway_delivers_held_spans_once_the_collector_is_back(
    running: ComposeStack,
) -> None:
    """Collector away for 30 s under load, then no traffic at all: every held span still
    arrives within seconds of the collector's return."""
    running.compose("stop", "otel-collector").ok()
    try:
        results = running.load(120, concurrency=4, pause=0.2)
        assert [status for _, status in results] == [200] * 120  # the gateway kept serving
        time.sleep(5)  # traffic has stopped: nothing will carry the backlog
        gateway = verify_json(running, "gateway")["gateway"]
        assert gateway["state"] == "warn" and "holds spans" in str(gateway["summary"]), gateway
    finally:
        running.compose("start", "otel-collector").ok()
    running.sh(
        "until curl -sf http://127.0.0.1:13133/ >/dev/null; do sleep 0.2; done", timeout=60
    ).ok()
    returned = time.monotonic()
    trace_ids = [trace_id for trace_id, _ in results]
    counts = running.wait_for_rows(trace_ids, timeout=60)
    took = time.monotonic() - returned
    assert set(counts) == set(trace_ids) and set(counts.values()) == {1}
    assert took < 10 + 3, f"held spans took {took:.1f} s after the collector was back"
    logs = running.compose("logs", "litellm").ok().out
    assert "collector reachable again" in logs
    assert verify_json(running, "gateway")["gateway"]["state"] == "ok"


def test_clickhouse_down_60s_and_collector_restarted_meanwhile(running: ComposeStack) -> None:
    def outage() -> None:
        running.compose("stop", "clickhouse").ok()
        time.sleep(20)
        running.compose("restart", "otel-collector").ok()  # the queue on disk must survive
        time.sleep(40)
        running.compose("start", "clickhouse").ok()

    results = under_load(running, 300, outage, pause=0.2)
    assert_exactly_one_row_each(running, results, timeout=240)


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


def test_gateway_crash_costs_at_most_the_export_delay(running: ComposeStack) -> None:
    """SIGKILL of the gateway loses the spans it had not exported yet: those of the last
    moments (the hook exports every 0.5 s). Everything answered well before is stored."""
    answered: list[tuple[str, float]] = []
    stop = threading.Event()

    def steady_load() -> None:
        while not stop.is_set():
            trace_id = secrets.token_hex(16)
            try:
                if running.chat(trace_id=trace_id, timeout=10).status_code == 200:
                    answered.append((trace_id, time.monotonic()))
            except httpx.HTTPError:
                time.sleep(0.2)  # the gateway is down or restarting
            time.sleep(0.05)

    before = restarts(running, "litellm")
    worker = threading.Thread(target=steady_load)
    worker.start()
    time.sleep(8)
    killed_at = time.monotonic()
    crash(running, "litellm")
    stop.set()
    worker.join(timeout=60)
    running.sh(
        "until curl -sf http://127.0.0.1:4000/health/liveliness >/dev/null; do sleep 0.5; done",
        timeout=180,
    ).ok()
    assert restarts(running, "litellm") == before + 1
    before_kill = [(t, at) for t, at in answered if at < killed_at]
    counts = running.wait_for_rows([t for t, _ in before_kill], timeout=30)
    lost = [(t, at) for t, at in before_kill if t not in counts]
    window = max((killed_at - at for _, at in lost), default=0.0)
    print(
        f"\ngateway SIGKILL: {len(lost)} of {len(before_kill)} answered calls lost, all "
        f"answered within {window:.2f} s before the kill"
    )
    assert all(killed_at - at < 5.0 for _, at in lost), lost  # 10x the export delay
    assert set(counts.values()) <= {1}


def test_whole_again_verify_is_green(running: ComposeStack) -> None:
    deadline = time.monotonic() + 120
    while True:
        hops = verify_json(running)
        bad = {
            name: hop["state"] for name, hop in hops.items() if hop["state"] not in ("ok", "skip")
        }
        if not bad or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert not bad, hops
