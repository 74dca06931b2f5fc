"""Compose's own loader (scripts/native_stack/compose-config) for the tests that check compose
files: built once per session; under CI a missing Go fails, on a developer machine it skips."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from scripts.native_stack.compose_project import BUILD_SCRIPT
from scripts.native_stack.paths import REPO
from tests.support.ci import missing_tool


def build_compose_config() -> Path:
    """Path to the compose-config binary, built (or reused) by build.sh."""
    go = shutil.which(os.environ.get("GO", "go"))
    if go is None and Path("/usr/local/go/bin/go").is_file():
        go = "/usr/local/go/bin/go"  # the official tarball's place, often not on a CI PATH
    if go is None:
        missing_tool("Go is not installed: cannot build scripts/native_stack/compose-config")
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)],
        cwd=REPO,
        env={**os.environ, "GO": str(go)},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if result.returncode != 0:
        # A broken build is a real failure, with or without CI.
        pytest.fail(f"building compose-config failed:\n{result.stderr}\n{result.stdout}")
    binary = Path(result.stdout.strip().splitlines()[-1])
    assert binary.is_file(), f"build.sh reported {binary}, which does not exist"
    return binary


def run_loader(
    tool: Path, args: list[str], cwd: Path = REPO, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs compose-config with only PATH/HOME from the outer environment, so a variable set in
    the developer's shell (BIND_ADDRESS, COMPOSE_FILE, ...) cannot change what is tested."""
    clean = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
    }
    clean.update(env or {})
    return subprocess.run(
        [str(tool), *args],
        cwd=cwd,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def load_env_file(tool: Path, env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`docker compose config` in the repository with this .env (COMPOSE_FILE included)."""
    return run_loader(tool, ["--env-file", str(env_file), *args])
