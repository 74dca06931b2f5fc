"""Render what the containers get, for the native harness: compose's own loader
(compose-config/) evaluates docker-compose.yml with a .env, and the image's ENV lines come from
litellm/Dockerfile. The harness then swaps only container addresses for 127.0.0.1 ones.
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .paths import REPO

BUILD_SCRIPT = REPO / "scripts" / "native_stack" / "compose-config" / "build.sh"


@functools.cache
def compose_config_bin() -> Path:
    """Build (or reuse) the compose loader tool; its path."""
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], check=True, capture_output=True, text=True, timeout=600
    )
    return Path(result.stdout.strip().splitlines()[-1])


def load_project(
    env_file: Path, files: tuple[str, ...] = ("docker-compose.yml",)
) -> dict[str, Any]:
    argv = [
        str(compose_config_bin()),
        "--project-directory",
        str(REPO),
        "--env-file",
        str(env_file),
        "--format",
        "json",
    ]
    for name in files:
        argv += ["-f", str(REPO / name)]
    # Like `docker compose`, the loader also reads the shell's environment: give it none of
    # the developer's variables, so the .env alone decides.
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/")}
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"compose loader rejected the project: {result.stderr.strip()}")
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def service_environment(project: Mapping[str, Any], service: str) -> dict[str, str]:
    environment = project["services"][service].get("environment") or {}
    return {k: v for k, v in environment.items() if v is not None}


def dockerfile_env(dockerfile: Path) -> dict[str, str]:
    """The `ENV k=v ...` instructions of a Dockerfile (continuations joined)."""
    text = dockerfile.read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.strip().split(None, 1)
        if len(parts) == 2 and parts[0].upper() == "ENV":
            for item in shlex.split(parts[1]):
                key, _, value = item.partition("=")
                env[key] = value
    return env
