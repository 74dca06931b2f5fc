"""Where things are in the repository, and where the built collector lives."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LITELLM_DIR = REPO / "litellm"
HOOK_DIR = LITELLM_DIR / "hook"
LITELLM_CONFIG = LITELLM_DIR / "config.yaml"
COLLECTOR_DIR = REPO / "otel-collector"
# What the compose command loads, in order, overlay slots empty (a compose test checks).
COLLECTOR_CONFIGS = (
    COLLECTOR_DIR / "config.yaml",
    COLLECTOR_DIR / "config.none.yaml",
    COLLECTOR_DIR / "config.none.yaml",
    COLLECTOR_DIR / "config.extras.yaml",
)
COLLECTOR_MANIFEST = COLLECTOR_DIR / "builder-config.yaml"
COLLECTOR_BIN = Path(os.environ.get("OTELCOL_BIN", COLLECTOR_DIR / "_build" / "otelcol"))
CLICKHOUSE_DIR = REPO / "clickhouse"
# Builds and installs kept between runs, where scripts/build-collector.sh and
# tests/docker/build-compose.sh keep theirs.
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "llm-gateway"


def venv_bin(name: str) -> Path:
    """A console script of the interpreter running the tests (the repo's .venv)."""
    import sys

    return Path(sys.executable).parent / name
