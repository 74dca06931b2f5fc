"""Several gateways behind the load-balancer overlay (loadbalancer/compose.yaml, issue #13 item 3)
on a real Docker engine: `make up` with `LITELLM_REPLICAS=3` from .env, calls through HAProxy,
one replica stopped mid-load (SIGTERM: every answered call has exactly one LLM row) or killed
(SIGKILL: no call twice, and only what it answered in its last export window is lost), the
balancer keeps answering, `make verify` checks every replica, Redis holds the replicas' shared
counters, and `service.instance.id` tells the replicas apart.

The HAProxy and Redis stand-ins (tests/docker/standins/build-scale.sh) are selected by .env alone,
like the other stand-ins.
"""

from __future__ import annotations

import contextlib
import json
import queue
import re
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest

from tests.docker.stack import ComposeStack

pytestmark = pytest.mark.timeout(1500)

REPLICAS = 3
CONCURRENCY = 6
# The hook batches spans for OTEL_BSP_SCHEDULE_DELAY (500 ms) in memory: a SIGKILL loses what a
# replica answered just before it died, and nothing else.
SIGKILL_LOSS_WINDOW_S = 2.0


@dataclass
class Call:
    trace_id: str
    status: int
    started: float
    ended: float


@pytest.fixture(scope="module")
def timings() -> Iterator[dict[str, float]]:
    measured: dict[str, float] = {}
    yield measured
    print(
        "\ntest_replicas timings (s): " + json.dumps({k: round(v, 1) for k, v in measured.items()})
    )


@pytest.fixture(scope="module")
def replicas_stack(
    fresh_clone: tuple[ComposeStack, dict[str, str]],
    standins: dict[str, str],
    timings: dict[str, float],
) -> ComposeStack:
    """`make init`, the overlay and three replicas in .env, `make up`."""
    stack, settings = fresh_clone
    images = {key: standins[key] for key in ("LOADBALANCER_IMAGE", "LITELLM_REDIS_IMAGE")}
    stack.make("init").ok()
    stack.set_env(
        {
            **settings,
            **images,
            "COMPOSE_FILE": "docker-compose.yml:loadbalancer/compose.yaml",
            "LITELLM_REPLICAS": str(REPLICAS),
        }
    )
    started = time.monotonic()
    stack.make("up", UP_TIMEOUT="600", timeout=900).ok()
    timings["make_up"] = time.monotonic() - started
    return stack


def containers(stack: ComposeStack, service: str) -> list[dict[str, str]]:
    out = stack.compose("ps", "--all", "--format", "json", service).ok().stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def hostname(container_id: str) -> str:
    done = subprocess.run(
        ["docker", "inspect", "-f", "{{.Config.Hostname}}", container_id],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def bring_back(stack: ComposeStack, victim: str) -> None:
    """Start the stopped replica again and wait until every replica is healthy. Docker counts a
    `docker kill` as a manual stop, so `restart: unless-stopped` does not do it."""
    subprocess.run(["docker", "start", victim], check=True, capture_output=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        health = [c["Health"] for c in containers(stack, "litellm")]
        if health == ["healthy"] * REPLICAS:
            return
        time.sleep(2)
    raise AssertionError(f"replicas not healthy again: {health}")


def load(stack: ComposeStack, calls: int, on_progress: threading.Event | None = None) -> list[Call]:
    """`calls` verify-mock calls through the balancer, each with its own trace id; `on_progress`
    is set once a third of them are answered (the moment to kill a replica)."""
    done = 0
    lock = threading.Lock()

    def one(_: int) -> Call:
        nonlocal done
        trace_id = secrets.token_hex(16)
        started = time.monotonic()
        try:
            status = stack.chat("verify-mock", trace_id=trace_id, timeout=120).status_code
        except httpx.HTTPError:
            status = 0
        call = Call(trace_id, status, started, time.monotonic())
        with lock:
            done += 1
            if on_progress is not None and done >= calls // 3:
                on_progress.set()
        return call

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        return list(pool.map(one, range(calls)))


def instance_ids(stack: ComposeStack, trace_ids: list[str]) -> dict[str, int]:
    """service.instance.id of the LLM spans of these traces -> number of spans."""
    result = stack.clickhouse().query(
        "SELECT ResourceAttributes['service.instance.id'] AS instance, count() "
        "FROM otel_traces WHERE TraceId IN {ids:Array(String)} "
        "AND TraceId IN (SELECT trace_id FROM llm_calls WHERE trace_id IN {ids:Array(String)}) "
        "AND SpanAttributes['gen_ai.request.model'] != '' GROUP BY instance",
        parameters={"ids": trace_ids},
    )
    return {str(i): int(n) for i, n in result.result_rows}


def test_three_replicas_behind_the_balancer(replicas_stack: ComposeStack) -> None:
    replicas = containers(replicas_stack, "litellm")
    assert len(replicas) == REPLICAS, replicas
    assert all((c["State"], c["Health"]) == ("running", "healthy") for c in replicas), replicas
    assert not [c for c in replicas if c.get("Publishers") and c["Publishers"][0]["PublishedPort"]]
    for service in ("loadbalancer", "litellm-redis"):
        [box] = containers(replicas_stack, service)
        assert (box["State"], box["Health"]) == ("running", "healthy"), box
    [redis] = containers(replicas_stack, "litellm-redis")
    assert not [p for p in redis.get("Publishers") or [] if p.get("PublishedPort")], redis


def test_a_killed_replica_costs_no_row_and_no_answer(
    replicas_stack: ComposeStack, timings: dict[str, float]
) -> None:
    victim = containers(replicas_stack, "litellm")[1]["ID"]
    progress = threading.Event()
    killed_at: list[float] = []

    def kill() -> None:
        progress.wait(timeout=300)
        killed_at.append(time.monotonic())
        subprocess.run(["docker", "kill", victim], check=True, capture_output=True)
        killed_at.append(time.monotonic())

    killer = threading.Thread(target=kill)
    killer.start()
    started = time.monotonic()
    calls = load(replicas_stack, 300, progress)
    timings["load_300_calls_with_kill"] = time.monotonic() - started
    killer.join()
    try:
        _check_the_kill(replicas_stack, calls, killed_at, timings)
    finally:  # a dead replica must not fail the tests after this one
        bring_back(replicas_stack, victim)


def _check_the_kill(
    stack: ComposeStack, calls: list[Call], killed_at: list[float], timings: dict[str, float]
) -> None:
    # The kill lands between the moment `docker kill` is called and the moment it returns
    # (which takes a while on a busy machine): every window below is widened by that span.
    kill_start, kill_time = killed_at

    answered = [c for c in calls if c.status == 200]
    failed = [c for c in calls if c.status != 200]
    timings["failed_calls"] = len(failed)
    # Only calls in flight on the killed replica may fail: a connection that failed is retried
    # on another replica, a request the replica had received is not.
    assert len(failed) <= CONCURRENCY, [(c.status, c.started - kill_time) for c in failed]
    assert all(c.started <= kill_time and kill_start <= c.ended + 0.5 for c in failed), failed
    assert all(c.status == 200 for c in calls if c.started > kill_time), "balancer stopped"

    # Wait for the rows that must come (calls outside the kill's export window), then count all.
    sure = [
        c.trace_id
        for c in answered
        if not kill_start - SIGKILL_LOSS_WINDOW_S <= c.ended <= kill_time + 0.5
    ]
    started = time.monotonic()
    stack.wait_for_rows(sure, timeout=180)
    rows = stack.rows_per_trace({c.trace_id for c in answered})
    timings["rows_after_load"] = time.monotonic() - started
    assert not {t: n for t, n in rows.items() if n > 1}, "a call was recorded twice"
    missing = [c for c in answered if rows.get(c.trace_id, 0) == 0]
    timings["rows_lost_to_sigkill"] = len(missing)
    # What the victim answered in its last export window died with it (SIGKILL: no flush);
    # every other answered call has its row.
    late = [
        c.ended - kill_time
        for c in missing
        if not kill_start - SIGKILL_LOSS_WINDOW_S <= c.ended <= kill_time + 0.5
    ]
    assert not late, f"rows missing outside the kill's export window: {late}"

    # `make verify` names the dead replica while it is down.
    verdict = stack.make("verify ARGS=containers", timeout=180)
    assert verdict.code != 0 and "2 of 3 replicas running" in verdict.out, verdict.out

    # The balancer keeps answering while the killed replica is down or restarting.
    after = load(stack, 60)
    assert [c.status for c in after] == [200] * len(after)
    assert set(stack.wait_for_rows([c.trace_id for c in after]).values()) == {1}


def test_a_terminated_replica_costs_nothing(
    replicas_stack: ComposeStack, timings: dict[str, float]
) -> None:
    """A replica stopped by SIGTERM (a scale-down, a rolling restart) finishes its calls and
    flushes its spans: every answered call has exactly one row."""
    victim = containers(replicas_stack, "litellm")[2]["ID"]
    progress = threading.Event()

    def terminate() -> None:
        progress.wait(timeout=300)
        subprocess.run(
            ["docker", "kill", "--signal", "TERM", victim], check=True, capture_output=True
        )

    killer = threading.Thread(target=terminate)
    killer.start()
    started = time.monotonic()
    calls = load(replicas_stack, 300, progress)
    timings["load_300_calls_with_sigterm"] = time.monotonic() - started
    killer.join()
    try:
        answered = [c.trace_id for c in calls if c.status == 200]
        timings["failed_calls_sigterm"] = len(calls) - len(answered)
        assert len(calls) - len(answered) <= CONCURRENCY
        rows = replicas_stack.wait_for_rows(answered, timeout=180)
        assert {t: rows.get(t, 0) for t in answered if rows.get(t, 0) != 1} == {}
    finally:
        bring_back(replicas_stack, victim)


def test_instance_id_tells_the_replicas_apart(replicas_stack: ComposeStack) -> None:
    calls = load(replicas_stack, 30)
    assert [c.status for c in calls] == [200] * len(calls)
    trace_ids = [c.trace_id for c in calls]
    assert set(replicas_stack.wait_for_rows(trace_ids).values()) == {1}
    ids = instance_ids(replicas_stack, trace_ids)
    hosts = {hostname(c["ID"]) for c in containers(replicas_stack, "litellm")}
    by_host = {i.rsplit("-", 1)[0] for i in ids}
    assert "" not in ids, f"LLM spans without service.instance.id: {ids}"
    # Round robin over three replicas: each answered some of the 30 calls.
    assert by_host == hosts, f"instance ids {ids} vs replica hostnames {hosts}"


# LiteLLM's rate limiter (litellm/proxy/hooks/parallel_request_limiter_v3.py, 1.108.7) adds
# every answered call's tokens to per-key counters in the coordination Redis, e.g.
# `{api_key:<key alias>}:tokens`, from its success callback: after the answer is sent, in a
# window of LITELLM_RATE_LIMIT_WINDOW_SIZE (60 s) whose TTL is set once and never refreshed.
# A scan after the calls can therefore find nothing (callback not run yet under load, or the
# window just expired); Redis's MONITOR sees each write as it happens, with the writer's address.
SHARED_COUNTER = re.compile(
    r'\[\d+ ([0-9.]+):\d+\] "EVALSHA" "\w+" "\d+" .*"(\{api_key:[^}]+\}:tokens)"'
)


def replica_addresses(stack: ComposeStack) -> set[str]:
    """The IP addresses of the running gateway replicas on the compose network."""
    template = "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}"
    addresses = set()
    for box in containers(stack, "litellm"):
        done = subprocess.run(
            ["docker", "inspect", "-f", template, box["ID"]],
            capture_output=True,
            text=True,
            check=True,
        )
        addresses.update(done.stdout.split())
    return addresses


def test_replicas_share_redis(replicas_stack: ComposeStack) -> None:
    """Every replica adds its calls to the same per-key counter in the shared Redis: the replicas
    count against one limit. Calls go out until each replica's write of that counter is seen."""
    replicas = replica_addresses(replicas_stack)
    assert len(replicas) == REPLICAS, replicas
    monitor = replicas_stack.compose_background(
        "exec", "-T", "litellm-redis", "redis-cli", "-h", "127.0.0.1", "monitor"
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(
        target=lambda: [lines.put(x) for x in monitor.stdout or []], daemon=True
    ).start()
    writers: dict[str, set[str]] = {}
    try:
        assert lines.get(timeout=60).strip() == "OK", "redis-cli monitor did not start"
        deadline = time.monotonic() + 300
        while not replicas <= set(writers) and time.monotonic() < deadline:
            assert [c.status for c in load(replicas_stack, REPLICAS)] == [200] * REPLICAS
            # The counters are written after the answers: read what Redis receives for a while
            # (the healthcheck's PINGs keep the stream going, so by time, not by silence).
            drained = time.monotonic() + 15
            while not replicas <= set(writers) and time.monotonic() < drained:
                with contextlib.suppress(queue.Empty):
                    match = SHARED_COUNTER.search(lines.get(timeout=1))
                    if match:
                        writers.setdefault(match.group(1), set()).add(match.group(2))
    finally:
        monitor.terminate()
        try:
            monitor.wait(timeout=30)
        except subprocess.TimeoutExpired:
            monitor.kill()
    assert set(writers) >= replicas, (
        f"replicas that wrote no shared counter: {replicas - set(writers)}"
    )
    shared = set.intersection(*(writers[address] for address in replicas))
    assert shared, f"no counter written by every replica: {writers}"


def test_make_verify_is_green_with_every_replica_up(replicas_stack: ComposeStack) -> None:
    result = replicas_stack.make("verify ARGS=-v", timeout=180).ok()
    assert result.stdout.count("litellm (") == REPLICAS, result.stdout  # one line per replica
