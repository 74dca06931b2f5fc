"""Thin wrapper around `docker compose` for the containers hop and the preflight port check."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.envfile.parser import EnvFile

DEFAULT_COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")


class ComposeError(Exception):
    pass


@dataclass(frozen=True)
class Container:
    service: str
    name: str
    state: str  # running | exited | restarting | created | paused | dead
    health: str  # "" (no healthcheck) | healthy | unhealthy | starting
    exit_code: int = 0
    status: str = ""  # human text, e.g. "Up 2 minutes (healthy)"
    published_ports: tuple[int, ...] = field(default=())


def docker_cli() -> str | None:
    return shutil.which("docker")


def compose_files(root: Path, listed: str | None) -> list[Path]:
    """The files `docker compose` reads for this COMPOSE_FILE value (its default without one)."""
    names = [p.strip() for p in re.split(r"[:;]", listed or "") if p.strip()]
    if names:
        return [root / name for name in names]
    return [root / name for name in DEFAULT_COMPOSE_FILES if (root / name).is_file()][:1]


def native_reason(
    root: Path, env: EnvFile, env_file: Path, expect_containers: bool = True
) -> str | None:
    """Why this looks like a native (no containers) setup, or None for Docker mode.

    expect_containers=False (preflight, before `make up`) does not count an empty project as native.
    """
    if docker_cli() is None:
        return "no docker CLI on PATH"
    files = compose_files(root, env.get("COMPOSE_FILE"))
    if not files or not all(f.is_file() for f in files):
        return "no compose file in " + str(root)
    try:
        run_compose(root, env_file, "version", env_file_flag=False, timeout_s=10.0)
    except ComposeError:
        return "the docker compose plugin is not available"
    try:
        containers = list_containers(root, env_file)
    except ComposeError as exc:
        return f"docker compose unavailable: {exc}"
    if expect_containers and not containers:
        return "no containers in this compose project; after `make up` they are checked"
    return None


def run_compose(
    root: Path, env_file: Path, *args: str, env_file_flag: bool = True, timeout_s: float = 20.0
) -> str:
    docker = docker_cli()
    if docker is None:
        raise ComposeError("docker CLI not found on PATH")
    cmd = [docker, "compose"]
    if env_file_flag and env_file.is_file():
        cmd += ["--env-file", str(env_file.resolve())]
    cmd += list(args)
    try:
        done = subprocess.run(
            cmd, cwd=root, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        raise ComposeError(
            f"`docker compose {' '.join(args)}` did not finish within {timeout_s:g}s"
        ) from None
    if done.returncode != 0:
        lines = [line.strip() for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        what = f"`docker compose {' '.join(args)}` exited with {done.returncode}"
        raise ComposeError(lines[0] if lines else what)
    return done.stdout


def engine_versions(root: Path, env_file: Path) -> tuple[str, str]:
    """(Docker Engine version, Compose version), e.g. ("20.10.24+dfsg1", "2.40.3")."""
    docker = docker_cli()
    if docker is None:
        raise ComposeError("docker CLI not found on PATH")
    try:
        done = subprocess.run(
            [docker, "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ComposeError("`docker version` did not answer within 20 s") from None
    if done.returncode != 0:
        raise ComposeError((done.stderr or done.stdout).strip().splitlines()[0])
    compose = run_compose(root, env_file, "version", "--short", env_file_flag=False)
    return done.stdout.strip(), compose.strip()


# What the gateway's hook logs when it starts and stops holding spans (llm_otel.resilient_export).
HOOK_HOLDING = "llm_otel: collector unreachable; holding"
HOOK_CAUGHT_UP = "llm_otel: collector reachable again"


def hook_holding_since(root: Path, env_file: Path, service: str = "litellm") -> str | None:
    """When the gateway's hook last said it holds spans the collector did not take, if it has
    not said since that it caught up: the log line's timestamp, else None."""
    return holding_since(
        run_compose(
            root,
            env_file,
            "logs",
            "--no-color",
            "--timestamps",
            "--tail",
            "2000",
            service,
            timeout_s=20.0,
        )
    )


def holding_since(log_text: str) -> str | None:
    """The pure part of hook_holding_since: read `docker compose logs --timestamps` text."""
    holding = None
    for line in log_text.splitlines():
        if HOOK_HOLDING in line:
            holding = holding or _log_time(line)
        elif HOOK_CAUGHT_UP in line:
            holding = None
    return holding


def _log_time(line: str) -> str:
    # "litellm-1  | 2026-11-29T16:30:01.123456789Z llm_otel: ..." -> "2026-11-29T16:30:01Z"
    match = re.search(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)", line)
    return f"{match.group(1)}Z" if match else "an earlier log line"


def list_containers(root: Path, env_file: Path) -> list[Container]:
    return parse_ps_json(run_compose(root, env_file, "ps", "--all", "--format", "json"))


def list_services(root: Path, env_file: Path) -> list[str]:
    return [s for s in run_compose(root, env_file, "config", "--services").split() if s]


def one_shot_services(root: Path, env_file: Path) -> frozenset[str]:
    """Services meant to run once and exit (`restart: "no"`), e.g. the volume init job: for
    them an exit with code 0 is success; for any other service it means it was stopped."""
    config = json.loads(run_compose(root, env_file, "config", "--format", "json"))
    return frozenset(
        name
        for name, service in (config.get("services") or {}).items()
        if str(service.get("restart") or "no") == "no"
    )


def replica_counts(root: Path, env_file: Path) -> dict[str, int]:
    """Services that run several containers (`deploy.replicas` > 1), e.g. the gateways behind the
    load-balancer overlay: each replica must be up, not only one of them."""
    config = json.loads(run_compose(root, env_file, "config", "--format", "json"))
    counts = {
        name: int(((service.get("deploy") or {}).get("replicas")) or service.get("scale") or 1)
        for name, service in (config.get("services") or {}).items()
    }
    return {name: count for name, count in counts.items() if count > 1}


def parse_ps_json(text: str) -> list[Container]:
    """Compose v2 prints one JSON object per line (newer) or one JSON array (older); accept both."""
    text = text.strip()
    if not text:
        return []
    if text.startswith("["):
        rows = json.loads(text)
    else:
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [_container(row) for row in rows]


def _container(row: dict[str, Any]) -> Container:
    publishers = row.get("Publishers") or []
    # Docker lists a port once per address family (0.0.0.0 and ::); a set keeps it once.
    published = {
        int(p["PublishedPort"])
        for p in publishers
        if isinstance(p, dict) and p.get("PublishedPort")
    }
    ports = tuple(sorted(published))
    return Container(
        service=str(row.get("Service", "")),
        name=str(row.get("Name", "")),
        state=str(row.get("State", "")).lower(),
        health=str(row.get("Health", "")).lower(),
        exit_code=int(str(row.get("ExitCode") or 0)),
        status=str(row.get("Status", "")),
        published_ports=ports,
    )
