"""Hop 2: the LiteLLM proxy answers its unauthenticated liveness and readiness probes."""

from __future__ import annotations

import time

import httpx

from ..compose import ComposeError, hook_holding_since
from ..context import Context
from ..hop import Hop
from ..httpcheck import client, unreachable
from ..results import Result

WHY = "every LLM call and every span starts at the gateway: nothing downstream can work without it"
HINT_LOGS = "make logs s=litellm"


def run(ctx: Context) -> Result:
    live_url = ctx.url("LITELLM_PORT", "/health/liveliness")
    ready_url = ctx.url("LITELLM_PORT", "/health/readiness")
    timeout = ctx.options.http_timeout_s
    with client(ctx) as http:
        try:
            t0 = time.monotonic()
            live = http.get(live_url)
            live_ms = (time.monotonic() - t0) * 1000
        except httpx.HTTPError as exc:
            return unreachable(exc, live_url, "litellm", "LITELLM_PORT", timeout)
        if live.status_code == 404:
            return Result.fail(
                f"something else answers on LITELLM_PORT ({live_url} -> HTTP 404)",
                hint="check LITELLM_PORT in .env, then: docker compose ps",
                why=WHY,
            )
        if live.status_code != 200:
            return Result.fail(
                f"liveliness probe answered HTTP {live.status_code}",
                [f"GET {live_url}", _body(live)],
                hint=HINT_LOGS,
                why=WHY,
            )
        try:
            t0 = time.monotonic()
            ready = http.get(ready_url)
            ready_ms = (time.monotonic() - t0) * 1000
        except httpx.HTTPError as exc:
            return unreachable(exc, ready_url, "litellm", "LITELLM_PORT", timeout)
    info = _json(ready)
    status = str(info.get("status", "?"))
    details = [
        f"{k}: {info[k]}"
        for k in ("status", "db", "litellm_version", "success_callbacks")
        if k in info
    ]
    if ready.status_code != 200:
        return Result.fail(
            f"alive, but not ready: HTTP {ready.status_code} ({status})",
            [f"GET {ready_url}", *details],
            hint=HINT_LOGS,
            why="the proxy refuses traffic until ready (database unreachable, or shutting down)",
        )
    summary = f"alive in {live_ms:.0f} ms, ready ({status}) in {ready_ms:.0f} ms"
    since = _hook_holding_since(ctx)
    if since:
        return Result.warn(
            f"{summary}; its telemetry hook holds spans the collector has not taken "
            f"(since {since})",
            details,
            hint="make verify collector   # then: make logs s=litellm",
            why="held spans are retried and sent once the collector answers; a stop or crash "
            "of the gateway meanwhile loses them",
        )
    return Result.ok(summary, details)


def _hook_holding_since(ctx: Context) -> str | None:
    """Docker mode: the hook's own signal (its log lines); natively there is nothing to read."""
    if ctx.options.native:
        return None
    try:
        return hook_holding_since(ctx.root, ctx.options.env_file)
    except ComposeError:
        return None


def _json(resp: httpx.Response) -> dict[str, object]:
    try:
        data = resp.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _body(resp: httpx.Response) -> str:
    return "body: " + resp.text.strip()[:200]


HOP = Hop(name="gateway", title="Gateway (LiteLLM liveliness)", run=run, why=WHY)
