"""Interleaved rounds: off, hook, builtin, off, hook, builtin, ... Each mode's turn in a round is
a closed loop of a fixed number of requests, a short settle (its last spans leave within the
window: both exporters send every 0.5 s) and then, outside the CPU window, a sequential probe
of latency at concurrency 1."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from . import procstat
from .load import closed_loop, sequential
from .proxies import Bench


@dataclass
class RoundSettings:
    rounds: int
    requests: int
    concurrency: int
    max_seconds: float
    settle: float
    probe_requests: int


@dataclass
class ModeRound:
    requests: int
    errors: int
    loop_seconds: float
    window_seconds: float  # the loop and the settle: what the CPU figures cover
    latencies: list[float]  # under load, seconds
    cpu_seconds: float  # the proxy's process group
    others_cpu_seconds: float  # load generator, upstream, collector, ClickHouse, sink
    pipeline_cpu_seconds: float  # collector + ClickHouse adapter alone
    probe_latencies: list[float] = field(default_factory=list)  # concurrency 1, seconds

    @property
    def rps(self) -> float:
        return self.requests / self.loop_seconds if self.loop_seconds > 0 else 0.0

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.cpu_seconds / max(1, self.requests)

    @property
    def others_busy(self) -> float:
        """The other processes' CPU as a share of one core over the window."""
        return self.others_cpu_seconds / self.window_seconds if self.window_seconds > 0 else 0.0

    @property
    def pipeline_ms_per_request(self) -> float:
        return 1000 * self.pipeline_cpu_seconds / max(1, self.requests)


def run_mode(bench: Bench, mode: str, settings: RoundSettings) -> ModeRound:
    stack = bench.stacks[mode]
    proxy = bench.proxy_pids(mode)
    pipeline = [pid for pids in bench.pipeline_pids().values() for pid in pids]
    others = bench.other_pids()
    started = time.perf_counter()
    before = [procstat.sample_cpu(pids) for pids in (proxy, others, pipeline)]
    loop = closed_loop(
        stack.proxy_url, stack.auth(), settings.requests, settings.concurrency, settings.max_seconds
    )
    time.sleep(settings.settle)
    after = [procstat.sample_cpu(pids) for pids in (proxy, others, pipeline)]
    window = time.perf_counter() - started
    cpu, others_cpu, pipeline_cpu = (
        procstat.cpu_seconds_between(b, a) for b, a in zip(before, after, strict=True)
    )
    result = ModeRound(
        loop.requests,
        loop.errors,
        loop.seconds,
        window,
        loop.latencies,
        cpu,
        others_cpu,
        pipeline_cpu,
    )
    if settings.probe_requests:
        probe = sequential(stack.proxy_url, stack.auth(), settings.probe_requests)
        result.probe_latencies = probe.latencies
        bench.served[mode] += probe.requests - probe.errors
    bench.served[mode] += loop.requests - loop.errors
    return result


def warm_up(bench: Bench, settings: RoundSettings) -> None:
    """Imports, connection pools, first-call caches: out of the way before anything counts."""
    for mode in bench.modes:
        stack = bench.stacks[mode]
        loop = closed_loop(stack.proxy_url, stack.auth(), 100, settings.concurrency, 30)
        probe = sequential(stack.proxy_url, stack.auth(), 10)
        bench.served[mode] += loop.requests - loop.errors + probe.requests - probe.errors


@dataclass
class Machine:
    """Who else used the machine while the rounds ran, as shares of one core."""

    foreign: float  # processes that are not this bench's (another user's tests, say)
    steal: float  # time the hypervisor gave to other guests
    seconds: float


def run_rounds(
    bench: Bench, settings: RoundSettings, progress: Callable[[str], None]
) -> tuple[dict[str, list[ModeRound]], Machine]:
    results: dict[str, list[ModeRound]] = {mode: [] for mode in bench.modes}
    ours = [os.getpid(), *procstat.descendants(os.getpid())]
    started = time.perf_counter()
    busy_before, steal_before = procstat.machine_cpu_seconds()
    ours_before = procstat.sample_cpu(ours)
    for number in range(settings.rounds):
        for mode in bench.modes:
            results[mode].append(run_mode(bench, mode, settings))
        progress(
            f"round {number + 1}/{settings.rounds}: "
            + ", ".join(
                f"{mode} {results[mode][-1].rps:.0f} req/s "
                f"{results[mode][-1].cpu_ms_per_request:.2f} ms CPU/req"
                for mode in bench.modes
            )
        )
    seconds = time.perf_counter() - started
    busy, steal = procstat.machine_cpu_seconds()
    ours_cpu = procstat.cpu_seconds_between(ours_before, procstat.sample_cpu(ours))
    machine = Machine(
        foreign=max(0.0, busy - busy_before - ours_cpu) / seconds,
        steal=(steal - steal_before) / seconds,
        seconds=seconds,
    )
    return results, machine
