"""Turn FastAPI's own telemetry off: the LLM span is the gateway's record.

FastAPI (0.165) traces natively through any global provider: a SERVER span per request, three
`fastapi.*` internal spans, a span per health probe and two HTTP metrics per request. Measured
with `make bench` (docs/PERFORMANCE.md), the server span alone cost more than the LLM span it
parents. The hook continues the caller's `traceparent` itself, from the request headers LiteLLM
records (`attributes.caller_headers`), so app -> LLM span stays one trace without it; requests
refused before any LLM call (a wrong key) are counted by the hook's `llm_otel.requests.refused`.
"""

from __future__ import annotations

from typing import Any


def turn_off(app: Any) -> bool:
    """Configure a FastAPI app in place; False if this FastAPI has no native telemetry."""
    config = getattr(app, "_telemetry", None)
    if not isinstance(config, dict):
        return False
    config["tracing"] = False
    config["metrics"] = False
    config["logs"] = False
    return True
