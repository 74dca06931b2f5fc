"""Run the real collector binary with the repository's config plus a test overlay."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .paths import COLLECTOR_BIN, COLLECTOR_CONFIGS
from .procs import ManagedProcess, free_port, wait_for_http


@dataclass
class CollectorPorts:
    grpc: int = field(default_factory=free_port)
    http: int = field(default_factory=free_port)
    health: int = field(default_factory=free_port)
    metrics: int = field(default_factory=free_port)


GENAI_METRICS_CONNECTOR = "signaltometrics/genai"  # otel-collector/config.yaml
CONTENT_PIPELINE = "traces/content"  # otel-collector/config.yaml


def test_overlay(
    out_dir: Path, *, clickhouse: bool, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Add file exporters (what the collector exported, for assertions) beside ClickHouse."""
    exporters: dict[str, Any] = {}
    pipelines: dict[str, Any] = {}
    for signal in ("traces", "metrics", "logs"):
        name = f"file/{signal}"
        # append: a restarted collector must not wipe what it exported before.
        exporters[name] = {
            "path": str(out_dir / f"{signal}.jsonl"),
            "flush_interval": "100ms",
            "append": True,
        }
        pipelines[signal] = {"exporters": (["clickhouse"] if clickhouse else []) + [name]}
    # The base config's traces pipeline also feeds the GenAI metrics connector: keep it.
    pipelines["traces"]["exporters"].append(GENAI_METRICS_CONNECTOR)
    # Captured content leaves through a pipeline of its own (ClickHouse's content table).
    exporters["file/content"] = {**exporters["file/traces"], "path": str(out_dir / "content.jsonl")}
    pipelines[CONTENT_PIPELINE] = {
        "exporters": (["clickhouse/content"] if clickhouse else []) + ["file/content"]
    }
    overlay: dict[str, Any] = {"exporters": exporters, "service": {"pipelines": pipelines}}
    if extra:
        overlay = _merge(overlay, extra)
    return overlay


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class Collector:
    def __init__(
        self,
        workdir: Path,
        env: Mapping[str, str],
        overlay: dict[str, Any],
        ports: CollectorPorts | None = None,
    ) -> None:
        self.workdir = workdir
        self.ports = ports or CollectorPorts()
        self.out_dir = workdir / "exported"
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.storage_dir = workdir / "file_storage"
        self.overlay_path = workdir / "collector-test-overlay.yaml"
        self.overlay_path.write_text(yaml.safe_dump(overlay))
        self.env = {
            **env,
            "OTELCOL_LISTEN_HOST": "127.0.0.1",
            "OTELCOL_OTLP_GRPC_PORT": str(self.ports.grpc),
            "OTELCOL_OTLP_HTTP_PORT": str(self.ports.http),
            "OTELCOL_HEALTH_PORT": str(self.ports.health),
            "OTELCOL_METRICS_PORT": str(self.ports.metrics),
            "OTELCOL_STORAGE_DIR": str(self.storage_dir),
        }
        self.process: ManagedProcess | None = None

    @property
    def otlp_http_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.http}"

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.health}/"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.metrics}/metrics"

    def argv(self) -> list[str]:
        configs = [*COLLECTOR_CONFIGS, self.overlay_path]
        return [str(COLLECTOR_BIN), *(f"--config={path}" for path in configs)]

    def start(self, timeout: float = 30.0) -> Collector:
        if not COLLECTOR_BIN.exists():
            raise FileNotFoundError(f"{COLLECTOR_BIN} is missing: run `make collector`")
        self.storage_dir.mkdir(parents=True, exist_ok=True)
        self.process = ManagedProcess(
            "otelcol", self.argv(), env=self.env, log_path=self.workdir / "otelcol.log"
        )
        wait_for_http(self.health_url, timeout, proc=self.process)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def exported(self, signal: str) -> Iterator[dict[str, Any]]:
        """Every OTLP/JSON document the file exporter wrote for `signal`."""
        path = self.out_dir / f"{signal}.jsonl"
        if not path.exists():
            return
        # Only newline-terminated lines: the exporter may be mid-way through writing the last one.
        for line in path.read_text().splitlines(keepends=True):
            if line.endswith("\n") and line.strip():
                yield json.loads(line)

    def log_text(self) -> str:
        path = self.workdir / "otelcol.log"
        return path.read_text(errors="replace") if path.exists() else ""
