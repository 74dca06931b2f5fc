"""LiteLLM internals the hook reads at run time, checked on the payloads themselves.

A LiteLLM upgrade that moves one of them would otherwise degrade the records silently (a missing
`startTime` makes a span start "now"). Each missing touchpoint is logged once per process and
counted (`llm_otel.touchpoints.missing`, by name), so `make verify` and the pipeline-health
dashboard can show it. The list and the tests that pin each one: docs/LITELLM_TOUCHPOINTS.md.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("llm_otel")

# Keys of kwargs["standard_logging_object"] every LLM call's payload carries in LiteLLM 1.108.
PAYLOAD_KEYS = ("call_type", "status", "startTime", "endTime", "trace_id", "metadata")


class Touchpoints:
    def __init__(self) -> None:
        self.missing: Counter[str] = Counter()
        self._lock = threading.Lock()

    def check_payload(self, payload: Mapping[str, Any]) -> None:
        for key in PAYLOAD_KEYS:
            if key not in payload:
                self.report(f"standard_logging_object.{key}")

    def report(self, name: str) -> None:
        with self._lock:
            first = name not in self.missing
            self.missing[name] += 1
        if first:
            log.error(
                "llm_otel: LiteLLM no longer provides %s; records lose what depends on it "
                "(docs/LITELLM_TOUCHPOINTS.md says which test pins it)",
                name,
            )


TOUCHPOINTS = Touchpoints()
