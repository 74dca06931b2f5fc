"""Hop 7: Langfuse (only when the overlay is enabled): healthy, and the llm-call hop's trace
visible through Langfuse's public API as a generation with model, tokens and cost."""

from __future__ import annotations

from scripts import langfuse_env
from scripts.verify_langfuse import Expected, check

from ..context import Context
from ..model import Hop, Result, State

MIN_TIMEOUT_S = 60.0  # Langfuse ingests asynchronously (web queues, worker writes)
WHY = "Langfuse should show the same LLM calls as ClickHouse; its exporter may be failing"


def run(ctx: Context) -> Result:
    if "langfuse" not in ctx.overlays:
        return Result.skip("overlay not enabled (COMPOSE_FILE in .env does not include langfuse)")
    call = ctx.call
    outcome = check(
        ctx.url("LANGFUSE_PORT", ""),
        ctx.setting("LANGFUSE_INIT_PROJECT_PUBLIC_KEY"),
        ctx.setting("LANGFUSE_INIT_PROJECT_SECRET_KEY"),
        call.trace_id if call else None,
        expected=(Expected(call.input_tokens, call.output_tokens, call.cost_usd) if call else None),
        timeout_s=max(ctx.options.timeout_s, MIN_TIMEOUT_S),
        poll_interval_s=ctx.options.poll_interval_s,
        http_timeout_s=ctx.options.http_timeout_s,
        metrics_url=ctx.url("OTEL_COLLECTOR_METRICS_PORT", "/metrics"),
        auth_problem=langfuse_env.basic_auth_mismatch(ctx.env.values),
        progress=ctx.progress,
    )
    return Result(
        State(outcome.state),
        outcome.summary,
        tuple(outcome.details),
        outcome.hint,
        WHY if outcome.state in ("warn", "fail") else "",
    )


HOP = Hop(name="langfuse", title="Langfuse (optional overlay)", run=run, why=WHY)
