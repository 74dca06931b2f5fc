"""The deterministic figure: instructions executed per request by each mode's proxy, counted by
valgrind over a fixed sequence of requests.

Cachegrind (valgrind 3.19 here) counts from the first instruction to the last: LiteLLM's
start-up alone would take minutes under it, and it cannot be told to start counting later (that
arrived in valgrind 3.22). Callgrind counts the same `Ir` event (instructions executed) and can
start without instrumentation (`--instr-atstart=no`, ~4x slower than native instead of ~20-60x)
and be switched on, zeroed and dumped from outside with `callgrind_control`. So each proxy starts
uninstrumented, answers a warm-up, then counts `windows` windows of `requests` sequential
requests each, one dump per window.

What the proxy executes per second whatever the requests (timers, background tasks) is counted
over `idle` seconds first and taken out of each window pro rata of its wall-clock length: it
would otherwise grow with how slowly valgrind ran.

Exports are made deterministic too: the span processor's timer is pushed out of reach
(OTEL_BSP_SCHEDULE_DELAY 1 h; the metric reader's likewise) and a batch leaves each time
`requests` spans are queued (OTEL_BSP_MAX_EXPORT_BATCH_SIZE). With s spans per request, a window
queues s * requests spans: exactly s batches, and the same spans left waiting at its end as at
its start, for any whole s. Each window ends once the receiver has seen no export for a while.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.native_stack.harness import NativeStack
from scripts.native_stack.paths import LITELLM_CONFIG, venv_bin
from scripts.native_stack.procs import ManagedProcess, wait_for_http

from .load import sequential
from .proxies import MODES, mode_options
from .sink import Sink
from .stats import callgrind_total, per_request, spread

TOOLS = ("valgrind", "callgrind_control")
HOUR_MS = "3600000"


@dataclass
class InstructionSettings:
    requests: int  # per window; also the span batch size
    windows: int
    warmup: int
    idle: float = 5.0  # seconds counted with no request at all, before the windows
    start_timeout: float = 900.0
    quiet: float = 2.0  # seconds without an export that end a window


@dataclass
class InstructionCount:
    mode: str
    requests: int
    totals: list[int] = field(default_factory=list)  # Ir per window
    window_seconds: list[float] = field(default_factory=list)  # wall clock, dump to dump
    exports: list[int] = field(default_factory=list)  # POSTs the receiver got per window
    idle_per_second: float = 0.0  # Ir per second with no request (timers, background tasks)
    seconds: float = 0.0

    @property
    def request_driven(self) -> list[float]:
        """Each window's count less what the proxy executes anyway per second of wall clock
        (timers, background tasks): at production request rates that part is negligible per
        request, under valgrind it grows with how long a window took."""
        return [
            total - self.idle_per_second * seconds
            for total, seconds in zip(self.totals, self.window_seconds, strict=True)
        ]

    @property
    def per_request(self) -> float:
        return per_request(self.request_driven, self.requests)

    @property
    def raw_per_request(self) -> float:
        return per_request(self.totals, self.requests)

    @property
    def spread(self) -> float:
        return spread(self.request_driven)

    def as_json(self) -> dict[str, Any]:
        return {
            "per_request": round(self.per_request),
            "raw_per_request": round(self.raw_per_request),
            "windows": self.totals,
            "requests_per_window": self.requests,
            "exports_per_window": self.exports,
            "spread": round(self.spread, 6),
            "window_seconds": [round(x, 2) for x in self.window_seconds],
            "idle_per_second": round(self.idle_per_second),
        }


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def _control(pid: int, *args: str) -> None:
    subprocess.run(
        ["callgrind_control", *args, str(pid)], check=True, capture_output=True, timeout=120
    )


def _wait_quiet(sink: Sink, quiet: float, timeout: float = 300) -> None:
    """Until the receiver has counted no new export for `quiet` seconds."""
    last = sink.count()
    since = time.monotonic()
    deadline = since + timeout
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = sink.count()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return


def count_mode(
    mode: str,
    workdir: Path,
    upstream_url: str,
    builtin_config: Path,
    settings: InstructionSettings,
) -> InstructionCount:
    started = time.perf_counter()
    result = InstructionCount(mode, settings.requests)
    sink = Sink().start()
    try:
        deterministic_exports: dict[str, str | None] = {
            "OTEL_BSP_SCHEDULE_DELAY": HOUR_MS,
            "OTEL_METRIC_EXPORT_INTERVAL": HOUR_MS,
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": str(settings.requests),
        }
        options = mode_options(mode, upstream_url, builtin_config, sink.url, deterministic_exports)
        options.clickhouse = options.collector = False
        stack = NativeStack(workdir, options)
        workdir.mkdir(parents=True, exist_ok=True)
        out = workdir / "callgrind.out"
        argv = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={out}",
            "-q",
            sys.executable,
            str(venv_bin("litellm")),
            "--config",
            str(options.litellm_config or LITELLM_CONFIG),
            "--host",
            "127.0.0.1",
            "--port",
            str(stack.proxy_port),
        ]
        proxy = ManagedProcess(
            f"callgrind-{mode}",
            argv,
            env=stack.proxy_env(),
            log_path=workdir / "litellm.log",
            cwd=workdir,
        )
        try:
            wait_for_http(f"{stack.proxy_url}/health/readiness", settings.start_timeout, proc=proxy)
            sequential(stack.proxy_url, stack.auth(), settings.warmup, timeout=300)
            _wait_quiet(sink, settings.quiet)
            _control(proxy.pid, "--instr=on")
            _control(proxy.pid, "--zero")
            dumps = 0
            if settings.idle:
                idle_started = time.perf_counter()
                time.sleep(settings.idle)
                _control(proxy.pid, "--dump")
                dumps += 1
                idle = callgrind_total(Path(f"{out}.{dumps}").read_text(errors="replace"))
                result.idle_per_second = idle / (time.perf_counter() - idle_started)
            for _ in range(settings.windows):
                posts_before, _ = sink.count()
                window_started = time.perf_counter()
                done = sequential(stack.proxy_url, stack.auth(), settings.requests, timeout=300)
                if done.errors:
                    raise RuntimeError(f"{mode}: {done.errors} failed requests under callgrind")
                _wait_quiet(sink, settings.quiet)
                _control(proxy.pid, "--dump")
                dumps += 1
                result.window_seconds.append(time.perf_counter() - window_started)
                result.exports.append(sink.count()[0] - posts_before)
                dump = Path(f"{out}.{dumps}")
                result.totals.append(callgrind_total(dump.read_text(errors="replace")))
        finally:
            proxy.stop(timeout=30)
    finally:
        sink.stop()
    result.seconds = time.perf_counter() - started
    return result


def count_all(
    workdir: Path, upstream_url: str, builtin_config: Path, settings: InstructionSettings
) -> dict[str, InstructionCount]:
    """All modes at once: counts do not depend on how busy the cores are."""
    with ThreadPoolExecutor(len(MODES)) as pool:
        futures = {
            mode: pool.submit(
                count_mode, mode, workdir / mode, upstream_url, builtin_config, settings
            )
            for mode in MODES
        }
        return {mode: future.result() for mode, future in futures.items()}
