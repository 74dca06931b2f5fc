"""Hop 1 (Docker mode only): every compose service is running and healthy."""

from __future__ import annotations

from ..compose import (
    ComposeError,
    Container,
    list_containers,
    list_services,
    one_shot_services,
    replica_counts,
)
from ..context import Context
from ..hop import Hop
from ..results import Result, State, worst

WHY = "a stopped or unhealthy container breaks the chain at that hop; the hops below will fail too"


def run(ctx: Context) -> Result:
    if ctx.options.native:
        return Result.skip(f"native mode ({ctx.options.native_reason or '--native'})")
    try:
        services = list_services(ctx.root, ctx.options.env_file)
        containers = list_containers(ctx.root, ctx.options.env_file)
        one_shot = one_shot_services(ctx.root, ctx.options.env_file)
        replicas = replica_counts(ctx.root, ctx.options.env_file)
    except ComposeError as exc:
        return Result.fail(
            f"docker compose failed: {exc}",
            hint="docker compose ps   # is the Docker engine running? (or run with --native)",
            why=WHY,
        )
    return assess(services, containers, one_shot, replicas)


def assess(
    services: list[str],
    containers: list[Container],
    one_shot: frozenset[str] = frozenset(),
    replicas: dict[str, int] | None = None,
) -> Result:
    """Pure part of the hop: judge `docker compose ps --all` against the configured services."""
    lines: list[tuple[State, str, str]] = []  # (state, detail, hint)
    for service in services or sorted({c.service for c in containers}):
        mine = [c for c in containers if c.service == service]
        if not mine:
            lines.append((State.FAIL, f"{service}: not created", "make up"))
        wanted = (replicas or {}).get(service, 1)
        for c in mine:
            lines.append(_judge(c, c.service in one_shot, named=wanted > 1))
        up = sum(1 for c in mine if c.state == "running")
        if mine and wanted > 1 and up < wanted:
            missing = f"{service}: {up} of {wanted} replicas running"
            lines.append((State.FAIL, missing, f"docker compose up -d --wait {service}"))
    running = sum(1 for c in containers if c.state == "running")
    healthy = sum(1 for c in containers if c.health == "healthy")
    summary = f"{len(services) or len(lines)} services: {running} running, {healthy} healthy"
    state = worst([State.OK, *(s for s, _, _ in lines)])
    details = [f"{s.symbol} {text}" for s, text, _ in lines]
    if state is State.OK:
        return Result.ok(summary, details)
    bad = next(line for line in lines if line[0] is state)
    return Result(state, f"{summary}; {bad[1]}", tuple(details), bad[2], WHY)


def _judge(c: Container, one_shot: bool, named: bool = False) -> tuple[State, str, str]:
    who = f"{c.service} ({c.name})" if named else c.service
    label = f"{who}: {c.status or c.state}"
    logs = f"make logs s={c.service}"
    if c.state == "running":
        if c.health in ("", "healthy"):
            return State.OK, label, ""
        if c.health == "starting":
            return (
                State.WARN,
                label + " (health check still starting)",
                f"wait a little, then: make verify   # or: {logs}",
            )
        return State.FAIL, label + f" ({c.health})", logs
    if c.state == "exited" and c.exit_code == 0 and one_shot:
        return State.OK, f"{c.service}: completed (one-shot job)", ""
    if c.state == "exited" and c.exit_code == 0:
        # `docker compose stop` (or a clean exit) of a service that should keep running.
        return State.FAIL, label + " (stopped)", f"docker compose start {c.service}"
    if c.state in ("exited", "dead", "restarting"):
        return State.FAIL, label + f" (exit code {c.exit_code})", logs
    return State.FAIL, label, "make up"


HOP = Hop(name="containers", title="Containers (docker compose ps)", run=run, why=WHY)
