"""W3C traceparent headers for test calls, so a test can find its call's spans by trace id."""

from __future__ import annotations

import secrets


def traceparent(trace_id: str) -> str:
    """The header of a sampled call whose parent is a new span in trace `trace_id`."""
    return f"00-{trace_id}-{secrets.token_hex(8)}-01"


def new_traceparent() -> tuple[str, str]:
    """(trace id, traceparent header) of a sampled call in a new trace."""
    trace_id = secrets.token_hex(16)
    return trace_id, traceparent(trace_id)
