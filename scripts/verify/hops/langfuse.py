"""Hop 7: Langfuse (only when the overlay is enabled). Placeholder: a later issue fills in the
real check (Langfuse health endpoint, then the trace from the llm-call hop via its public API)."""

from __future__ import annotations

from ..context import Context
from ..model import Hop, Result


def run(ctx: Context) -> Result:
    if "langfuse" not in ctx.overlays:
        return Result.skip("overlay not enabled (COMPOSE_FILE in .env does not include langfuse)")
    # TODO(langfuse issue): GET the Langfuse health endpoint, then find ctx.call.trace_id there.
    return Result.skip("overlay enabled, but this check is not implemented yet")


HOP = Hop(name="langfuse", title="Langfuse (optional overlay)", run=run)
