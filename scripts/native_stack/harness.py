"""The native stack: fake upstream -> real LiteLLM proxy (with the hook) -> real collector
(-> ClickHouse engine through the test adapter). Reused by the tests, `make verify`'s tests and
`make bench`. Everything binds 127.0.0.1 on free ports; only what was started is stopped.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from . import otlp
from .collector import Collector, test_overlay
from .compose_project import dockerfile_env, load_project, service_environment
from .fake_upstream import FakeUpstream
from .paths import HOOK_DIR, LITELLM_CONFIG, LITELLM_DIR, venv_bin
from .procs import ManagedProcess, free_port, wait_for_http

PROVIDER_MODEL = "fake/upstream-model"  # the OpenRouter model name the tests configure
MOCK_MODEL = "verify-mock"

# Variables of the developer's shell that must not leak into the processes under test.
_SCRUBBED_PREFIXES = ("OTEL_", "LITELLM_", "OPENROUTER_", "LLM_OTEL_", "CLICKHOUSE_")

T = TypeVar("T")


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}
    env.update(extra or {})
    return env


@dataclass
class StackOptions:
    workers: int = 1
    clickhouse: bool = False
    collector: bool = True
    upstream_latency: float = 0.0
    proxy_env: dict[str, str | None] = field(default_factory=dict)
    collector_overlay: dict[str, Any] | None = None
    litellm_config: Path | None = None  # default: the repository's litellm/config.yaml
    upstream_base_url: str | None = None  # an upstream already running (else one in-process)


@dataclass
class Secrets:
    master_key: str = field(default_factory=lambda: f"sk-test-{secrets.token_hex(16)}")
    provider_key: str = field(default_factory=lambda: f"sk-or-test-{secrets.token_hex(16)}")
    writer_password: str = field(default_factory=lambda: secrets.token_hex(12))
    reader_password: str = field(default_factory=lambda: secrets.token_hex(12))
    admin_password: str = field(default_factory=lambda: secrets.token_hex(12))

    def values(self) -> list[str]:
        return [
            self.master_key,
            self.provider_key,
            self.writer_password,
            self.reader_password,
            self.admin_password,
        ]


class NativeStack:
    def __init__(self, workdir: Path, options: StackOptions | None = None) -> None:
        self.workdir = workdir
        self.options = options or StackOptions()
        self.secrets = Secrets()
        self.proxy_port = free_port()
        self.upstream: FakeUpstream | None = None
        self.collector: Collector | None = None
        self.proxy: ManagedProcess | None = None
        self.clickhouse: Any = None
        self._started: list[Callable[[], None]] = []
        self._project: dict[str, Any] | None = None

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> NativeStack:
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            if self.options.upstream_base_url is None:
                self.upstream = FakeUpstream(latency=self.options.upstream_latency).start()
                self._started.append(self.upstream.stop)
            if self.options.clickhouse:
                self._start_clickhouse()
            # Each stop is registered before its start: a process that starts but never turns
            # ready (and, for the proxy, its spawned workers) must be stopped too.
            if self.options.collector:
                self.collector = Collector(
                    self.workdir / "collector", self.collector_env(), self._overlay()
                )
                self._started.append(self.stop_collector)
                self.collector.start()
            self._started.append(self.stop_proxy)
            self.start_proxy()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        while self._started:
            stop = self._started.pop()
            with contextlib.suppress(Exception):  # keep stopping the rest
                stop()

    def __enter__(self) -> NativeStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start_clickhouse(self) -> None:
        from .clickhouse import start_clickhouse  # only when asked: it needs chdb

        self.clickhouse = start_clickhouse(self.workdir / "clickhouse", self.secrets)
        self._started.append(self.clickhouse.stop)

    def _overlay(self) -> dict[str, Any]:
        return test_overlay(
            self.workdir / "collector" / "exported",
            clickhouse=self.options.clickhouse,
            extra=self.options.collector_overlay,
        )

    def _compose(self) -> dict[str, Any]:
        """docker-compose.yml as compose evaluates it with this stack's .env."""
        if self._project is None:
            self._project = load_project(self.write_env_file(self.workdir / "compose.env"))
        return self._project

    def collector_env(self) -> dict[str, str]:
        env = service_environment(self._compose(), "otel-collector")
        # The one container address in it: ClickHouse on the compose network.
        env["CLICKHOUSE_ENDPOINT"] = (
            self.clickhouse.endpoint if self.clickhouse else "http://127.0.0.1:9"
        )
        return clean_env(env)

    def proxy_env(self) -> dict[str, str]:
        """The litellm container's environment: image ENV, then compose's, then test tweaks."""
        env = dockerfile_env(LITELLM_DIR / "Dockerfile")
        env.update(service_environment(self._compose(), "litellm"))
        env.pop("HOME", None)
        env.update(
            {
                "PYTHONPATH": str(HOOK_DIR),  # /opt/llm-otel in the image
                "OTEL_EXPORTER_OTLP_ENDPOINT": (
                    self.collector.otlp_http_url if self.collector else "http://127.0.0.1:9"
                ),
                "OPENROUTER_API_BASE": (
                    self.upstream.base_url
                    if self.upstream
                    else self.options.upstream_base_url or ""
                ),
                # Short intervals so tests see data quickly; production keeps the SDK defaults.
                "OTEL_BSP_SCHEDULE_DELAY": "200",
                "OTEL_METRIC_EXPORT_INTERVAL": "1000",
            }
        )
        env = clean_env(env)
        for key, value in self.options.proxy_env.items():
            if value is None:  # None removes a variable, e.g. to get an SDK default back
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def start_proxy(self, timeout: float = 90.0) -> None:
        config = self.options.litellm_config or LITELLM_CONFIG
        argv = [
            str(venv_bin("litellm")),
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.proxy_port),
        ]
        if self.options.workers > 1:
            argv += ["--num_workers", str(self.options.workers)]
        self.proxy = ManagedProcess(
            "litellm",
            argv,
            env=self.proxy_env(),
            log_path=self.workdir / "litellm.log",
            cwd=self.workdir,
        )
        wait_for_http(f"{self.proxy_url}/health/readiness", timeout, proc=self.proxy)

    def stop_proxy(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()

    def stop_collector(self) -> None:
        if self.collector is not None:
            self.collector.stop()

    def restart_collector(self) -> None:
        assert self.collector is not None
        self.collector.start()

    # ---- using it --------------------------------------------------------------------------
    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}"

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secrets.master_key}"}

    def chat(
        self,
        model: str = MOCK_MODEL,
        content: str = "hello",
        *,
        stream: bool = False,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        **body: Any,
    ) -> httpx.Response:
        payload = {
            "model": model,
            "messages": [{"role": "user", "content": content}],
            "stream": stream,
            **body,
        }
        with httpx.Client(timeout=timeout) as client:
            response = client.post(
                f"{self.proxy_url}/v1/chat/completions",
                json=payload,
                headers={**self.auth(), **(headers or {})},
            )
            response.read()
            return response

    def post(
        self,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        **request: Any,
    ) -> httpx.Response:
        """POST to any proxy route with the master key (`json=`, or `files=`/`data=` for a
        multipart form); the whole body is read, streams included."""
        with httpx.Client(timeout=timeout) as client:
            response = client.post(
                f"{self.proxy_url}{path}", headers={**self.auth(), **(headers or {})}, **request
            )
            response.read()
            return response

    def spans(self) -> list[otlp.Span]:
        assert self.collector is not None
        return otlp.spans(self.collector.exported("traces"))

    def content_spans(self) -> list[otlp.Span]:
        """What the collector sends to the captured-content table (redacted, content only)."""
        assert self.collector is not None
        return otlp.spans(self.collector.exported("content"))

    def llm_spans(self) -> list[otlp.Span]:
        return [s for s in self.spans() if s.is_llm]

    def metrics(self) -> list[otlp.Metric]:
        assert self.collector is not None
        return otlp.metrics(self.collector.exported("metrics"))

    def wait_for(
        self, probe: Callable[[], T | None], timeout: float = 20.0, what: str = "condition"
    ) -> T:
        deadline = time.monotonic() + timeout
        while True:
            result = probe()
            if result:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(0.2)

    def wait_for_llm_spans(
        self, count: int, timeout: float = 20.0, where: Callable[[otlp.Span], bool] = lambda s: True
    ) -> list[otlp.Span]:
        def probe() -> list[otlp.Span] | None:
            found = [s for s in self.llm_spans() if where(s)]
            return found if len(found) >= count else None

        return self.wait_for(probe, timeout, f"{count} LLM span(s)")

    def write_env_file(self, path: Path | None = None, **overrides: str) -> Path:
        """A .env describing this stack, as `make verify` / `make report` would read it."""
        path = path or self.workdir / ".env"
        values = {
            "BIND_ADDRESS": "127.0.0.1",
            "LITELLM_PORT": str(self.proxy_port),
            "LITELLM_MASTER_KEY": self.secrets.master_key,
            "OPENROUTER_API_KEY": self.secrets.provider_key,
            "OPENROUTER_MODEL_NAME": PROVIDER_MODEL,
            "CLICKHOUSE_DATABASE": "otel",
            "CLICKHOUSE_ADMIN_USER": "admin",
            "CLICKHOUSE_ADMIN_PASSWORD": self.secrets.admin_password,
            "CLICKHOUSE_WRITER_USER": "otel_writer",
            "CLICKHOUSE_WRITER_PASSWORD": self.secrets.writer_password,
            "CLICKHOUSE_READER_USER": "otel_reader",
            "CLICKHOUSE_READER_PASSWORD": self.secrets.reader_password,
        }
        if self.collector is not None:
            ports = self.collector.ports
            values.update(
                {
                    "OTEL_COLLECTOR_GRPC_PORT": str(ports.grpc),
                    "OTEL_COLLECTOR_HTTP_PORT": str(ports.http),
                    "OTEL_COLLECTOR_HEALTH_PORT": str(ports.health),
                    "OTEL_COLLECTOR_METRICS_PORT": str(ports.metrics),
                }
            )
        if self.clickhouse is not None:
            values["CLICKHOUSE_HTTP_PORT"] = str(self.clickhouse.port)
            values["CLICKHOUSE_TCP_PORT"] = str(free_port())  # no native protocol here
        values.update(overrides)
        path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
        return path
