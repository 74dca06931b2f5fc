"""Message content stays out of every record unless capture is on, at no cost per call.

LiteLLM's global `turn_off_message_logging` redacts prompts and answers for every logger, but by
deep-copying each call's payload and response, and it also strips the ids and finish reasons the
hook reads from some responses (text completions). The hook itself never reads content with
capture off, so the global switch is needed only when another logger that ships content is
configured (a named integration such as `langfuse` or `otel`, or a custom callback). This
decides after the proxy loaded its config, before it serves: such a logger present -> the switch
is on (as before); none -> off, and nothing is copied.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# LiteLLM's own proxy hooks and router callbacks (rate limits, cost, cooldowns) send no content.
_INTERNAL_PREFIXES = ("litellm.proxy.", "litellm.router", "litellm.litellm_core_utils.")
_CALLBACK_LISTS = (
    "callbacks",
    "success_callback",
    "failure_callback",
    "_async_success_callback",
    "_async_failure_callback",
    "input_callback",
)


def content_loggers(litellm: Any, ours: object) -> list[str]:
    """The configured loggers other than the hook that could record content, by name."""
    found: list[str] = []
    for name in _CALLBACK_LISTS:
        for callback in getattr(litellm, name, None) or ():
            label = _label(callback, ours)
            if label and label not in found:
                found.append(label)
    return found


def _label(callback: object, ours: object) -> str | None:
    if callback is ours:
        return None
    if isinstance(callback, str):
        return callback  # a named integration (langfuse, otel, datadog, ...)
    module = getattr(callback, "__module__", None) or type(callback).__module__
    if module.startswith(_INTERNAL_PREFIXES):
        return None
    name = getattr(callback, "__qualname__", None) or type(callback).__qualname__
    return f"{module}.{name}"


def guard(litellm: Any, ours: object, capture_content: bool) -> Iterable[str]:
    """Set LiteLLM's global switch as the configured loggers need; returns those loggers."""
    others = content_loggers(litellm, ours)
    litellm.turn_off_message_logging = bool(others) and not capture_content
    return others
