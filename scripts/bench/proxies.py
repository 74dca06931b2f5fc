"""The three proxies under test, the fake upstream they share, where their spans go, and which
core everything runs on."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from scripts.native_stack.harness import NativeStack, StackOptions, clean_env
from scripts.native_stack.paths import COLLECTOR_CONFIGS, LITELLM_CONFIG
from scripts.native_stack.procs import ManagedProcess, free_port, wait_for_http

from . import procstat

MODES = ("off", "hook", "builtin")
# With --check-competition: the hook again, exporting to a receiver that keeps nothing, so that
# hook and hook-sink differ only in the pipeline work their spans cause while they are measured.
HOOK_SINK = "hook-sink"
# With --check-noise: a second, identical `off` proxy. off-again against off is the noise floor:
# whatever interval it gets, no claim about a smaller difference can be made on this machine.
OFF_AGAIN = "off-again"
HOOK_SERVICE = "litellm-proxy"
BUILTIN_SERVICE = "litellm-builtin"
# The harness shortens export intervals so tests see data fast; measure what ships instead.
PRODUCTION_TIMING: dict[str, str | None] = {
    "OTEL_BSP_SCHEDULE_DELAY": None,
    "OTEL_METRIC_EXPORT_INTERVAL": None,
}
# LiteLLM's callback would batch spans for the SDK's default 5 s; it gets the hook's 0.5 s so
# that the spans of a round are exported (and their CPU counted) within that round's window.
# At bench load it fills 512-span batches well before either delay anyway.
BUILTIN_SCHEDULE_DELAY_MS = "500"
PROXY_CPU = 1  # the proxy under test; everything else runs on the other core(s)


def deep_merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Maps merged key by key, anything else replaced: how the collector merges its configs."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def shipped_collector_config() -> dict[str, Any]:
    """The collector's configuration as shipped: its files merged in compose's order."""
    config: dict[str, Any] = {}
    for path in COLLECTOR_CONFIGS:
        config = deep_merge(config, yaml.safe_load(path.read_text()) or {})
    return config


def shipped_exporters() -> dict[str, Any]:
    """A collector overlay giving back each pipeline its shipped exporters. The harness's own
    overlay adds file exporters (for the tests' assertions): measured, they are not shipped."""
    pipelines = shipped_collector_config()["service"]["pipelines"]
    return {
        "service": {
            "pipelines": {
                signal: {"exporters": list(pipelines[signal]["exporters"])}
                for signal in ("traces", "metrics", "logs")
                if signal in pipelines
            }
        }
    }


def mode_env(mode: str, otlp_endpoint: str | None) -> dict[str, str | None]:
    """A mode's proxy variables on top of the harness's (None removes one).
    `otlp_endpoint`: where spans go (None: the stack's own collector)."""
    endpoint = {} if otlp_endpoint is None else {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint}
    if mode in ("off", OFF_AGAIN):
        return {"OTEL_SDK_DISABLED": "true", **PRODUCTION_TIMING}
    if mode in ("hook", HOOK_SINK):
        return {**PRODUCTION_TIMING, **endpoint}
    if mode == "builtin":
        return {
            **PRODUCTION_TIMING,
            "LLM_OTEL_ACTIVE": "0",  # our hook stays out
            "OTEL_SERVICE_NAME": BUILTIN_SERVICE,
            "OTEL_BSP_SCHEDULE_DELAY": BUILTIN_SCHEDULE_DELAY_MS,
            **endpoint,
        }
    raise ValueError(f"unknown mode {mode!r}")


def write_builtin_config(path: Path) -> Path:
    """The repository's LiteLLM config with LiteLLM's own `otel` callback switched on."""
    config = yaml.safe_load(LITELLM_CONFIG.read_text())
    config.setdefault("litellm_settings", {})["callbacks"] = ["otel"]
    path.write_text(yaml.safe_dump(config))
    return path


def mode_options(
    mode: str,
    upstream_url: str,
    builtin_config: Path,
    otlp_endpoint: str | None,
    extra_env: Mapping[str, str | None] | None = None,
) -> StackOptions:
    env = {**mode_env(mode, otlp_endpoint), **(extra_env or {})}
    return StackOptions(
        clickhouse=mode == "hook",  # the hook's stack carries the pipeline everyone exports to
        collector=mode == "hook",
        upstream_base_url=upstream_url,
        litellm_config=builtin_config if mode == "builtin" else None,
        proxy_env=env,
        collector_overlay=shipped_exporters() if mode == "hook" else None,
    )


def start_upstream(workdir: Path, latency: float) -> tuple[ManagedProcess, str]:
    """The fake upstream as its own process (its own interpreter lock); returns its /v1 URL."""
    port = free_port()
    env = {k: v for k, v in clean_env().items() if not k.startswith("FAKE_UPSTREAM_")}
    upstream = ManagedProcess(
        "fake-upstream",
        [
            sys.executable,
            "-m",
            "scripts.native_stack.fake_upstream",
            "--port",
            str(port),
            "--latency",
            str(latency),
        ],
        env=env,
        log_path=workdir / "upstream.log",
    )
    wait_for_http(f"http://127.0.0.1:{port}/v1/models", 20, proc=upstream)
    return upstream, f"http://127.0.0.1:{port}/v1"


@dataclass
class Bench:
    """Three proxies (one uvicorn worker each), one fake upstream, one pipeline (collector ->
    ClickHouse engine, in the hook's stack). `receiver="sink"`: the proxies export to a
    receiver that keeps nothing, so no pipeline work runs while they are measured."""

    workdir: Path
    upstream_latency: float
    receiver: str = "collector"
    modes: tuple[str, ...] = MODES
    stacks: dict[str, NativeStack] = field(default_factory=dict)
    upstream: ManagedProcess | None = None
    upstream_url: str = ""
    sink: ManagedProcess | None = None
    builtin_config: Path = field(init=False)
    served: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.builtin_config = self.workdir / "litellm-builtin-otel.yaml"
        self.served = dict.fromkeys(self.modes, 0)

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        write_builtin_config(self.builtin_config)
        self.upstream, self.upstream_url = start_upstream(self.workdir, self.upstream_latency)
        needs_sink = self.receiver == "sink" or HOOK_SINK in self.modes
        sink_url = self._start_sink() if needs_sink else None
        self.stacks = {
            mode: NativeStack(
                self.workdir / mode,
                mode_options(
                    mode,
                    self.upstream_url,
                    self.builtin_config,
                    sink_url if self.receiver == "sink" or mode == HOOK_SINK else None,
                ),
            )
            for mode in self.modes
        }
        # Start them all at once; the built-in callback needs the collector's address first.
        with ThreadPoolExecutor(len(self.modes)) as pool:
            hook = pool.submit(self.stacks["hook"].start)
            futures = [hook]
            for mode in self.modes:
                if mode == "builtin":
                    futures.append(
                        pool.submit(
                            self._start_builtin, hook, sink_url if self.receiver == "sink" else None
                        )
                    )
                elif mode != "hook":
                    futures.append(pool.submit(self.stacks[mode].start))
            for future in futures:
                future.result()

    def _start_builtin(self, hook: Future[NativeStack], sink_url: str | None) -> NativeStack:
        stack = self.stacks["builtin"]
        if sink_url is None:
            collector_stack = self.stacks["hook"]
            deadline = time.monotonic() + 120
            while collector_stack.collector is None or collector_stack.collector.process is None:
                if hook.done() or time.monotonic() > deadline:
                    hook.result()  # raises what stopped the hook's stack, if anything
                    break
                time.sleep(0.1)
            collector = collector_stack.collector
            assert collector is not None
            wait_for_http(collector.health_url, 60)
            stack.options.proxy_env["OTEL_EXPORTER_OTLP_ENDPOINT"] = collector.otlp_http_url
        return stack.start()

    def _start_sink(self) -> str:
        port = free_port()
        self.sink = ManagedProcess(
            "otlp-sink",
            [sys.executable, "-m", "scripts.bench.sink", "--port", str(port)],
            env=clean_env(),
            log_path=self.workdir / "sink.log",
        )
        url = f"http://127.0.0.1:{port}"
        wait_for_http(url + "/count", 20, proc=self.sink)
        return url

    def stop_proxies(self) -> None:
        for stack in self.stacks.values():
            stack.stop_proxy()

    def stop(self) -> None:
        for stack in self.stacks.values():
            stack.stop()
        for process in (self.sink, self.upstream):
            if process is not None:
                process.stop()

    # ---- processes -------------------------------------------------------------------------
    @property
    def pipeline_stack(self) -> NativeStack:
        return self.stacks["hook"]

    def proxy_pids(self, mode: str) -> list[int]:
        proxy = self.stacks[mode].proxy
        assert proxy is not None
        return procstat.group_pids(proxy.pid)

    def pipeline_pids(self) -> dict[str, list[int]]:
        """The collector's and the ClickHouse adapter's processes."""
        stack = self.pipeline_stack
        collector = (
            []
            if stack.collector is None or stack.collector.process is None
            else (procstat.group_pids(stack.collector.process.pid))
        )
        adapter = [
            pid
            for pid in procstat.descendants(os.getpid())
            if "scripts.native_stack.chdb_server" in procstat.cmdline(pid)
        ]
        return {"collector": collector, "clickhouse": adapter}

    def all_proxy_pids(self) -> set[int]:
        return {pid for mode in self.stacks for pid in self.proxy_pids(mode)}

    def other_pids(self) -> list[int]:
        """Everything of the bench but the proxies: this process (the load generator), the
        upstream, the collector, the ClickHouse adapter, the sink."""
        proxies = self.all_proxy_pids()
        return [os.getpid()] + [p for p in procstat.descendants(os.getpid()) if p not in proxies]

    def pin(self) -> str | None:
        """The proxies on one core, everything else on the others. None when it cannot be done
        (fewer than two cores), else a description."""
        cpus = sorted(procstat.ALL_CPUS)
        if len(cpus) < 2:
            return None
        proxy_cpu = PROXY_CPU if PROXY_CPU in cpus else cpus[-1]
        rest = [c for c in cpus if c != proxy_cpu]
        procstat.pin(self.all_proxy_pids(), {proxy_cpu})
        procstat.pin(self.other_pids(), set(rest))
        return f"proxies on cpu {proxy_cpu}; load generator, upstream and pipeline on cpu " + (
            ",".join(map(str, rest))
        )

    def unpin(self) -> None:
        procstat.pin([os.getpid(), *procstat.descendants(os.getpid())], procstat.ALL_CPUS)
