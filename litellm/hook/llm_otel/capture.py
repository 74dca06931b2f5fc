"""Which calls may carry their prompt and answer: everywhere, or only named apps and keys.

`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true` captures every call (as before);
`LLM_OTEL_CAPTURE_CONTENT_APPS` and `LLM_OTEL_CAPTURE_CONTENT_KEYS` (comma-separated `app:` tag
values, key aliases or key hashes) capture only those. The decision reads the attributes the
hook built anyway: one set lookup per call, and none at all when capture is off everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import contract

APPS_ENV = "LLM_OTEL_CAPTURE_CONTENT_APPS"
KEYS_ENV = "LLM_OTEL_CAPTURE_CONTENT_KEYS"


def names(raw: str | None) -> frozenset[str]:
    """`a, b,,c` -> {a, b, c}."""
    return frozenset(part.strip() for part in (raw or "").split(",") if part.strip())


@dataclass(frozen=True)
class CapturePolicy:
    everywhere: bool = False
    apps: frozenset[str] = frozenset()
    keys: frozenset[str] = frozenset()

    @property
    def selective(self) -> bool:
        """Only some calls are captured: each call must be looked at."""
        return not self.everywhere and bool(self.apps or self.keys)

    @property
    def anywhere(self) -> bool:
        """Some call may carry content (LiteLLM must then hand the hook the messages)."""
        return self.everywhere or bool(self.apps or self.keys)

    def allows(self, attributes: Mapping[str, Any]) -> bool:
        """This call's content may be recorded (its app tag, key alias or key hash is named)."""
        if self.everywhere:
            return True
        if self.apps and attributes.get(contract.LITELLM_APP) in self.apps:
            return True
        return bool(self.keys) and (
            attributes.get(contract.LITELLM_API_KEY_ALIAS) in self.keys
            or attributes.get(contract.LITELLM_API_KEY_HASH) in self.keys
        )

    def describe(self) -> str:
        if self.everywhere:
            return "captured"
        if not self.anywhere:
            return "not captured"
        named = [f"app {a}" for a in sorted(self.apps)] + [f"key {k}" for k in sorted(self.keys)]
        return f"captured only for {', '.join(named)}"
